"""The two scoring protocols: xares-hf (the default) and xares-0.1.3, which reproduces xares 0.1.3's computations."""

import json

import numpy as np
import pytest
import torch

from helpers import CountingEncoder, tone, write_card
from xares_hf import Results, evaluate
from xares_hf.cli import main
from xares_hf.data import clip_key, shard_files, write_shards
from xares_hf.embedding_cache import EmbeddingCache
from xares_hf.encoders import LogMelEncoder, load_encoder
from xares_hf.encoding import SplitEncoder
from xares_hf.probes import knn_predict
from xares_hf.probes.knn import per_dimension_knn_predict
from xares_hf.protocols import BatchSlots, get_protocol
from xares_hf.run_config import RunConfig
from xares_hf.tasks import LabelEncoder, load_task


class LoudnessFrames(torch.nn.Module):
    """Each 20 ms frame's mean absolute amplitude, in 8 equal dims: zero padding gives zero frames."""

    sampling_rate, output_dim, hop_size_in_ms = 16_000, 8, 20

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio[:, : audio.shape[1] // 320 * 320].reshape(audio.shape[0], -1, 320).abs().mean(-1, keepdim=True)
        return (frames * self.scale).expand(-1, -1, 8).contiguous()


def _task(tmp_path, seconds, crop_length=None, batch_size_encode=4):
    samples = [(f"clip{i}", tone(300 + 100 * i, s), 16_000, {"label": ["low", "high"][i % 2]})
               for i, s in enumerate(seconds)]
    for split in ("train", "valid", "test"):
        write_shards(samples, tmp_path / "toy" / f"{split}-%03d.tar")
    data = {"splits": {"train": "train-*.tar", "valid": "valid-*.tar", "test": "test-*.tar"}}
    if crop_length:
        data["crop_length"] = crop_length
    card = load_task(write_card(tmp_path / "toy.yaml", data=data,
                                probe={"epochs": 2, "learning_rate": 0.01, "batch_size": 8,
                                       "batch_size_encode": batch_size_encode}))
    return card, shard_files(card, tmp_path)["train"]


def _encode(card, files, cache_dir, protocol, encoder=None):
    split_encoder = SplitEncoder(load_encoder(encoder or LoudnessFrames()), card, "train", files,
                                 LabelEncoder(card.labels, card.name), EmbeddingCache(cache_dir), RunConfig(protocol=protocol))
    split_encoder.ensure_cached()
    return split_encoder.load()[0]


def test_xares_0_1_3_pools_each_clip_over_its_padded_batch_and_xares_hf_over_its_own_frames(tmp_path):
    seconds = [0.5, 1.0, 0.26, 1.0, 0.5, 0.76]  # whole 20 ms frames; batches of 4 consecutive clips: [0..3] and [4, 5]
    card, files = _task(tmp_path, seconds)
    encoder = LoudnessFrames()
    old = _encode(card, files, tmp_path / "c-old", "xares-0.1.3", encoder)
    new = _encode(card, files, tmp_path / "c-new", "xares-hf", encoder)
    waves = [tone(300 + 100 * i, s) for i, s in enumerate(seconds)]

    def padded_means(batch):
        longest = max(len(waves[i]) for i in batch)
        audio = torch.stack([torch.nn.functional.pad(torch.from_numpy(waves[i]), (0, longest - len(waves[i]))) for i in batch])
        return encoder(audio).mean(1).detach().numpy()

    expected_old = np.concatenate([padded_means([0, 1, 2, 3]), padded_means([4, 5])])
    expected_new = np.stack([encoder(torch.from_numpy(w)[None]).mean(1)[0].detach().numpy() for w in waves])
    order = [new.keys.index(k) for k in old.keys]
    assert old.keys == [f"clip{i}" for i in range(6)]
    np.testing.assert_allclose(old.pooled.numpy(), expected_old, rtol=2e-4)  # the shards hold 16-bit audio
    np.testing.assert_allclose(new.pooled.numpy()[order], expected_new, rtol=2e-4)
    assert old.pooled.numpy()[2, 0] < 0.3 * new.pooled.numpy()[order][2, 0]  # the 0.26 s clip padded to 1 s


def test_xares_0_1_3_keeps_one_crop_per_clip_in_each_encoding_batch_and_says_which_it_left_out(tmp_path):
    # crops of 0.25 s: 4, 2, 2 and 4 of them; places in batches of 4: [a a a a] [b b c c] [d d d d]
    card, files = _task(tmp_path, [1.0, 0.5, 0.5, 1.0], crop_length=0.25)
    old = _encode(card, files, tmp_path / "c-old", "xares-0.1.3")
    new = _encode(card, files, tmp_path / "c-new", "xares-hf")
    assert len(new) == 12 and not new.left_out
    assert [clip_key(k, True) for k in old.keys] == ["clip0", "clip1", "clip2", "clip3"]
    assert old.keys == [new.keys[0], new.keys[4], new.keys[6], new.keys[8]]  # each the first crop of its batch
    assert len(old.left_out) == 8
    assert all("same encoding batch" in entry["reason"] and "xares-0.1.3" in entry["reason"] for entry in old.left_out)


def test_batch_slots_drop_a_crop_only_when_its_clip_is_already_in_the_batch():
    slots = BatchSlots(3)
    kept = [slots.keeps(c) for c in "aabbbcab"]  # batches: [a a b] [b b c] [a b]
    assert kept == [True, False, True, True, False, True, True, True]


def _xares_knn_formula(train, labels, test, num_classes, k=10, t=0.07):
    """xares/trainer.py's KNN written out in numpy: columns of the training matrix to unit norm, rows of the test."""
    train_n = train.T / np.linalg.norm(train.T, axis=1, keepdims=True)
    test_n = test / np.linalg.norm(test, axis=1, keepdims=True)
    sims = test_n @ train_n
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top_sims = np.take_along_axis(sims, top, 1)
    weights = np.exp((top_sims - top_sims.max(1, keepdims=True)) / t)
    weights /= weights.sum(1, keepdims=True)
    votes = np.zeros((len(test), num_classes))
    for row in range(len(test)):
        np.add.at(votes[row], labels[top[row]], weights[row])
    return votes.argmax(1)


def test_per_dimension_knn_is_xares_0_1_3_formula_and_a_loud_training_clip_becomes_everyones_neighbour():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 25)
    train = (centres[labels] + rng.normal(size=(100, 16))).astype(np.float32)
    test_labels = np.repeat(np.arange(4), 10)
    test = (centres[test_labels] + rng.normal(size=(40, 16))).astype(np.float32)
    got = per_dimension_knn_predict(train, labels, test, num_classes=4)
    np.testing.assert_array_equal(got, _xares_knn_formula(train, labels, test, 4))
    assert (knn_predict(train, labels, test) == test_labels).mean() > 0.9
    loud = train.copy()
    loud[labels == 3] *= 50  # one class's training clips far louder: cosine ignores norms, the per-dimension k-NN not
    np.testing.assert_array_equal(knn_predict(loud, labels, test), knn_predict(train, labels, test))
    assert (per_dimension_knn_predict(loud, labels, test, num_classes=4) == 3).mean() > 0.5


def test_unknown_protocol_is_refused_naming_the_known_ones(tiny_suite, tmp_path):
    with pytest.raises(ValueError, match=r"protocol must be one of \['xares-0.1.3', 'xares-hf'\], got 'xares-0.2'"):
        evaluate("log-mel", tasks=[tiny_suite / "cards" / "synth_vowel.yaml"], data_dir=tiny_suite, cache_dir=tmp_path,
                 output_dir=None, protocol="xares-0.2")
    assert get_protocol(None).name == "xares-hf"


def test_results_record_the_protocol_and_protocols_share_no_cache_entry_or_results_folder(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    counting = CountingEncoder(LogMelEncoder())
    new = evaluate(counting, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path / "c", output_dir=tmp_path / "out")
    calls = counting.calls
    old = evaluate(counting, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path / "c", output_dir=tmp_path / "out",
                   protocol="xares-0.1.3")
    assert counting.calls > calls + 2 and old["synth_vowel"].encoded  # encoded again, not the other protocol's entries
    assert (new.protocol, old.protocol) == ("xares-hf", "xares-0.1.3")
    folders = sorted(p.parent.name for p in (tmp_path / "out").glob("*/results.json"))
    assert len(folders) == 2 and folders[1] == folders[0] + "__protocol-xares-0.1.3"
    saved = Results.load(tmp_path / "out" / folders[1] / "results.json")
    assert saved.protocol == "xares-0.1.3" and saved.run["protocol"] == "xares-0.1.3"
    assert "protocol xares-0.1.3" in str(saved).splitlines()[0]
    assert new["synth_vowel"].knn != old["synth_vowel"].knn or new["synth_vowel"].mlp != old["synth_vowel"].mlp


def test_cli_protocol_option_reaches_the_results_file(tiny_suite, tmp_path, capsys):
    code = main(["evaluate", "log-mel", "--tasks", str(tiny_suite / "cards" / "synth_vowel.yaml"), "--data-dir",
                 str(tiny_suite), "--cache-dir", str(tmp_path / "c"), "--output-dir", str(tmp_path / "out"),
                 "--protocol", "xares-0.1.3"])
    assert code == 0
    assert "protocol xares-0.1.3" in capsys.readouterr().out
    [path] = (tmp_path / "out").glob("*/results.json")
    assert json.loads(path.read_text())["run"]["protocol"] == "xares-0.1.3"


def test_hub_exports_name_a_non_default_protocol(tiny_suite, tmp_path):
    from xares_hf.hub_results import eval_result_entries, eval_results

    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    new = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    old = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None, protocol="xares-0.1.3")
    assert not any("protocol" in r.metric_name for r in eval_results(new))
    assert all(r.metric_name.endswith("(protocol xares-0.1.3)") for r in eval_results(old))
    assert all("protocol=xares-0.1.3" in e["notes"] for e in eval_result_entries(old))


def test_frame_probe_of_xares_0_1_3_counts_each_batch_padding_in_its_predictions_and_targets():
    from xares_hf.probes.frame import pad_targets, train_frame_probe

    rng = np.random.default_rng(0)
    lengths = [30, 12, 25, 8]
    frames = [rng.normal(size=(n, 4)).astype(np.float32) for n in lengths]
    targets = [(f[:, :2] > 0).astype(np.float32) for f in frames]
    scores = []

    def score(predictions, refs):
        assert [len(p) for p in predictions] == [len(r) for r in refs]
        scores.append([len(p) for p in predictions])
        return 0.5

    args = dict(num_classes=2, score=score, epochs=1, learning_rate=0.01, batch_size=2)
    padded = train_frame_probe((frames, targets), (frames, targets), frames, padded_batches=True, **args)
    plain = train_frame_probe((frames, targets), (frames, targets), frames, **args)
    assert [len(p) for p in padded.test_predictions] == [30, 30, 25, 25]  # batches of 2 consecutive clips
    assert [len(p) for p in plain.test_predictions] == lengths
    assert scores == [[30, 30, 25, 25], lengths]
    padded_targets = pad_targets(targets, padded.test_predictions)
    assert padded_targets[1].shape == (30, 2) and not padded_targets[1][12:].any()


def test_side_by_side_table_marks_runs_of_another_protocol(tiny_suite, tmp_path):
    from xares_hf.results import leaderboard

    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    new = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    old = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None, protocol="xares-0.1.3")
    table = leaderboard([new, old]).splitlines()
    assert table[0].startswith("protocols differ (xares-0.1.3, xares-hf)")
    assert "xares-hf/log-mel [xares-0.1.3]" in table[1] and not leaderboard([new]).startswith("protocols differ")
