import json

import numpy as np
import pytest
import torch

from helpers import ConstantEncoder, CountingEncoder, tone, write_card
from xares_hf import Results, evaluate
from xares_hf.embedding_cache import EmbeddingCache
from xares_hf.data import write_shards
from xares_hf.encoders import LogMelEncoder
from xares_hf.tasks import LabelError


def _cards(suite):
    return [suite / "cards" / f"{name}.yaml" for name in ("synth_noise", "synth_vowel")]


def test_useful_encoder_far_above_chance_constant_encoder_at_chance(tiny_suite, tmp_path):
    useful = evaluate("log-mel", tasks=_cards(tiny_suite), data_dir=tiny_suite, cache_dir=tmp_path / "c1", output_dir=None)
    constant = evaluate(ConstantEncoder(), tasks=_cards(tiny_suite), data_dir=tiny_suite, cache_dir=tmp_path / "c2", output_dir=None)
    for name, chance in (("synth_noise", 1 / 4), ("synth_vowel", 1 / 5)):
        assert useful[name].mlp >= chance + 0.4, useful[name]
        assert useful[name].knn >= chance + 0.4, useful[name]
        assert constant[name].mlp <= chance + 0.15, constant[name]
        assert constant[name].knn <= chance + 0.15, constant[name]
    assert useful.mlp_average > constant.mlp_average + 0.4


def test_k_fold_task_scores_every_fold(tiny_suite, tmp_path):
    results = evaluate("log-mel", tasks=[tiny_suite / "cards" / "synth_noise.yaml"], data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    task = results["synth_noise"]
    assert sorted(task.folds) == ["fold0", "fold1", "fold2"]
    assert task.mlp == pytest.approx(np.mean([f["mlp"] for f in task.folds.values()]))
    assert task.eval_size == 48  # every clip is scored once, when its fold is held out


def test_second_run_does_no_encoding_and_gives_the_same_scores(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    counting = CountingEncoder(LogMelEncoder())
    first = evaluate(counting, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    calls_after_first = counting.calls
    assert calls_after_first > 2 and first["synth_vowel"].encoded
    second = evaluate(counting, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    assert counting.calls == calls_after_first + 2  # only check_encoder's two probes
    assert not second["synth_vowel"].encoded
    assert second["synth_vowel"].mlp == first["synth_vowel"].mlp and second["synth_vowel"].knn == first["synth_vowel"].knn
    fresh = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path / "fresh", output_dir=None)
    assert fresh["synth_vowel"].mlp == first["synth_vowel"].mlp  # reproducible without the cache too


def test_changed_weights_do_not_reuse_embeddings(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    encoder = ConstantEncoder()
    evaluate(encoder, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    changed = ConstantEncoder()
    changed.bias.data.mul_(2)
    counting = CountingEncoder(changed)
    evaluate(counting, tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    assert counting.calls > 2


def test_results_file_is_versioned_and_round_trips(tiny_suite, tmp_path):
    results = evaluate("log-mel", tasks=_cards(tiny_suite), data_dir=tiny_suite, cache_dir=tmp_path / "c", output_dir=tmp_path / "out")
    path = tmp_path / "out" / "xares-hf__log-mel" / "results.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["xares_hf_version"]
    assert data["encoder"]["id"] == "xares-hf/log-mel" and data["encoder"]["hop_size_in_ms"] == 10
    task = data["tasks"][0]
    assert {"metric", "mlp", "mlp_score", "knn", "knn_score", "eval_weight", "eval_size", "seed", "timings"} <= set(task)
    loaded = Results.load(path)
    assert loaded.mlp_average == pytest.approx(results.mlp_average)
    weights = {t.name: t.eval_weight for t in results.tasks}
    expected = sum(t.mlp_score * weights[t.name] for t in results.tasks) / sum(weights.values())
    assert results.mlp_average == pytest.approx(expected)
    table = str(results)
    assert "Synthetic noise colour" in table and "Weighted average" in table and f"{results.mlp_average:.3f}" in table
    frame = results.to_pandas()
    assert list(frame.index) == ["synth_noise", "synth_vowel"] and frame.loc["synth_vowel", "mlp"] == results["synth_vowel"].mlp


def test_label_outside_the_classes_names_task_split_and_file(tmp_path):
    data = tmp_path / "data" / "toy"
    for split in ("train", "valid", "test"):
        label = "medium" if split == "valid" else "low"
        write_shards([(f"{split}0", tone(300), 16_000, {"label": label})], data / f"{split}-%03d.tar")
    card = write_card(tmp_path / "toy.yaml")
    with pytest.raises(LabelError, match=r"task 'toy', split 'valid', file .*valid-000.tar, sample 'valid0': label 'medium'"):
        evaluate("log-mel", tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "c", output_dir=None)


def test_missing_data_fails_before_the_encoder_loads(tmp_path):
    card = write_card(tmp_path / "toy.yaml")
    with pytest.raises(FileNotFoundError, match="task 'toy': data folder"):
        evaluate("org/not-in-cache", tasks=[card], data_dir=tmp_path / "none", cache_dir=tmp_path, output_dir=None)


class _CausalRecordingEncoder(torch.nn.Module):
    """Frame t is the running mean of the audio up to it (so end-padding cannot change a clip's frames);
    records each batch's clip lengths."""

    sampling_rate, output_dim, hop_size_in_ms = 16_000, 2, 20

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.batches: list[list[int]] = []

    def encode_batch(self, waves):
        self.batches.append([w.shape[0] for w in waves])
        return [self._frames(torch.from_numpy(w)).numpy() for w in waves]

    def _frames(self, wave: torch.Tensor) -> torch.Tensor:
        hop = 320
        n = max(1, wave.shape[0] // hop)
        running = torch.cumsum(wave[: n * hop].abs(), 0)[hop - 1 :: hop] / torch.arange(1, n + 1) / hop
        return torch.stack([running, torch.full_like(running, wave.shape[0] / 16_000)], dim=1) * self.weight.detach()

    def forward(self, audio):
        return torch.stack([self._frames(a) for a in audio])


def test_clips_are_encoded_in_batches_of_similar_length_and_kept_in_split_order(tmp_path):
    from xares_hf.embedding_cache import EmbeddingCache
    from xares_hf.encoders import load_encoder
    from xares_hf.encoding import SORT_WINDOW_BATCHES, SplitEncoder
    from xares_hf.run_config import RunConfig
    from xares_hf.tasks import LabelEncoder, load_task

    rng = np.random.default_rng(0)
    seconds = rng.uniform(0.1, 1.0, size=40).round(2)
    items = [(f"k{i:02d}", tone(300.0, float(s)), 16_000, {"label": "low"}) for i, s in enumerate(seconds)]
    files = write_shards(items, tmp_path / "train-%03d.tar", max_count=15)
    card = load_task(write_card(tmp_path / "toy.yaml"))
    encoder = load_encoder(_CausalRecordingEncoder())
    split_encoder = SplitEncoder(encoder, card, "train", files, LabelEncoder(card.labels, card.name), EmbeddingCache(tmp_path / "c"),
                                 RunConfig())
    encoded = split_encoder.ensure_cached()
    split, _ = split_encoder.load()
    assert encoded and split.keys == [f"k{i:02d}" for i in range(40)]
    np.testing.assert_allclose(split.pooled.numpy()[:, 1], seconds, atol=1e-3)  # each row is its own clip
    alone = [encoder._frames(torch.from_numpy(tone(300.0, float(s)))).mean(0).numpy() for s in seconds]
    np.testing.assert_allclose(split.pooled.numpy(), np.stack(alone), rtol=1e-3, atol=1e-4)
    assert np.allclose(split.durations, seconds, atol=1e-3)
    size = card.probe.batch_size_encode
    assert sorted(sum(encoder.batches, [])) == sorted(int(round(s * 16_000)) for s in seconds)
    flat = sum(encoder.batches, [])
    start = 0
    for shard_size in (15, 15, 10):  # each shard is encoded (and cached) on its own, sorted within windows
        for w in range(0, shard_size, size * SORT_WINDOW_BATCHES):
            window = flat[start + w : start + min(shard_size, w + size * SORT_WINDOW_BATCHES)]
            assert window == sorted(window)
        start += shard_size
    assert all(len(batch) <= size for batch in encoder.batches)


def test_the_audio_waiting_to_be_encoded_is_bounded_in_bytes(tmp_path, monkeypatch):
    """Long clips fill the sort window by bytes before they fill it by count: a window then holds less audio."""
    from xares_hf import encoding
    from xares_hf.embedding_cache import EmbeddingCache
    from xares_hf.run_config import RunConfig
    from xares_hf.encoders import load_encoder
    from xares_hf.tasks import LabelEncoder, load_task

    items = [(f"k{i:02d}", tone(300.0, 0.5 + 0.01 * (9 - i)), 16_000, {"label": "low"}) for i in range(10)]
    files = write_shards(items, tmp_path / "train-%03d.tar")
    card = load_task(write_card(tmp_path / "toy.yaml"))
    monkeypatch.setattr(encoding, "SORT_WINDOW_BYTES", 3 * 8_000 * 4)  # three 0.5 s clips of float32
    encoder = load_encoder(_CausalRecordingEncoder())
    split_encoder = encoding.SplitEncoder(encoder, card, "train", files, LabelEncoder(card.labels, card.name),
                                          EmbeddingCache(tmp_path / "c"), RunConfig())
    split_encoder.ensure_cached()
    split, _ = split_encoder.load()
    assert split.keys == [f"k{i:02d}" for i in range(10)]
    # windows of 3 clips, each sorted shortest first; without the byte bound one sorted window of all 10
    assert sum(encoder.batches, [])[:3] == sorted(int(round((0.5 + 0.01 * (9 - i)) * 16_000)) for i in range(3))
    assert max(len(batch) for batch in encoder.batches) <= 3


def test_an_unreadable_cache_entry_is_encoded_again_not_trusted(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    first = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    entries = sorted((tmp_path / "synth_vowel").glob("*.safetensors"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # a damaged file under a final name
    for result in (tmp_path / "synth_vowel" / "results").glob("*.json"):
        result.unlink()  # so the probes need the embeddings again
    rerun = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    assert rerun["synth_vowel"].encoded and rerun["synth_vowel"].mlp == first["synth_vowel"].mlp
    rewritten = EmbeddingCache(tmp_path).load("synth_vowel", entries[0].stem)  # whole: it passes its checksum
    assert rewritten is not None and len(rewritten.keys) > 0
