"""Hostile cards, splits and labels (issue 15): overlapping splits stop the run naming the shared shards; a card that
could leave its folders, evaluate its own text or carry non-finite numbers is refused when it is loaded, in one line
naming file and field; a bad label is a LabelError naming the sample; what is not scored or cannot be learnt,
though nothing is wrong with it, is listed in the task's ``left_out`` in both ``on_bad_sample`` modes."""

from __future__ import annotations

import shutil
import time

import pytest
import yaml

from helpers import TONES, tone, tone_at, write_card
from xares_hf import evaluate
from xares_hf.data import DataError, shard_files, write_shards
from xares_hf.tasks import Event, LabelEncoder, LabelError, TaskCard, TaskCardError, load_task

SR = 16_000
LOW, HIGH = 300.0, 1500.0


def _clips(split: str, n: int = 8, extra: dict | None = None) -> list:
    """Learnable low/high tones; keys are unique per split."""
    return [(f"{split}{i}", tone(LOW if i % 2 else HIGH), SR, {"label": "low" if i % 2 else "high", **(extra or {})})
            for i in range(n)]


def _task(tmp_path, shards: dict[str, list], **card) -> tuple:
    """Shards named ``<name>-%03d.tar`` under data/toy and a card (``write_card``'s, with overrides)."""
    data = tmp_path / "data"
    for name, samples in shards.items():
        write_shards(samples, data / "toy" / f"{name}-%03d.tar")
    probe = {"epochs": 5, "learning_rate": 0.01, "batch_size": 4, "batch_size_encode": 4}
    return write_card(tmp_path / "toy.yaml", **{"probe": probe, **card}), data


def _run(tmp_path, card, data, mode: str = "error"):
    return evaluate("log-mel", tasks=[card], data_dir=data, cache_dir=tmp_path / "cache", output_dir=None,
                    on_bad_sample=mode)["toy"]


def _assert_refused(tmp_path, field: str, **overrides) -> str:
    """The one-line TaskCardError of a card written with ``overrides``, naming its file and ``field``."""
    path = write_card(tmp_path / "bad.yaml", **overrides)
    started = time.perf_counter()
    with pytest.raises(TaskCardError) as err:
        TaskCard.from_yaml(path)
    message = str(err.value)
    assert time.perf_counter() - started < 2 and "\n" not in message and len(message) < 600, message
    assert message.startswith(f"{path}: ") and f"field '{field}" in message, message
    return message


# ------------------------------------------------------------------------------------------- item 9: overlaps


def test_overlapping_split_patterns_stop_naming_task_splits_and_shards(tmp_path):
    """X-ARES layout: 'train: "*.tar"' also matches the test shards; training on them inflated the score."""
    card, data = _task(tmp_path, {"train": _clips("train"), "valid": _clips("valid"), "test": _clips("test")},
                       data={"splits": {"train": "*.tar", "valid": "valid-*.tar", "test": "test-*.tar"}})
    with pytest.raises(DataError, match=r"^task 'toy': splits 'train' and 'valid' share 1 shard\(s\): valid-000\.tar; "
                                        r"splits and folds must be disjoint"):
        shard_files(load_task(card), data)
    for mode in ("error", "skip"):
        with pytest.raises(DataError, match="task 'toy': splits 'train' and 'valid' share"):
            _run(tmp_path, card, data, mode)


def test_overlapping_folds_stop(tmp_path):
    """'fold{fold}*.tar' for fold 1 matches fold 10's shard too."""
    card, data = _task(tmp_path, {"fold1": _clips("a"), "fold10": _clips("b"), "fold2": _clips("c")},
                       data={"folds": [1, 2, 10], "fold_pattern": "fold{fold}*.tar"})
    with pytest.raises(DataError, match=r"splits 'fold1' and 'fold10' share 1 shard\(s\): fold10-000\.tar"):
        shard_files(load_task(card), data)


def _hub(tmp_path, paths: dict[str, str]):
    repo = tmp_path / "repo"
    for name in ("train", "valid", "test"):
        write_shards(_clips(name, 2), repo / "toy" / f"{name}-%03d.tar")
    header = {"configs": [{"config_name": "toy", "data_files": [{"split": s, "path": p} for s, p in paths.items()]}]}
    (repo / "README.md").write_text(f"---\n{yaml.safe_dump(header)}---\n")
    return load_task(write_card(tmp_path / "toy.yaml")), repo


def test_overlapping_hub_data_files_stop(tmp_path):
    card, repo = _hub(tmp_path, {"train": "toy/*.tar", "valid": "toy/valid-*.tar", "test": "toy/test-*.tar"})
    with pytest.raises(DataError, match=r"splits 'train' and 'valid' share 1 shard\(s\): valid-000\.tar"):
        shard_files(card, repo)


def test_hub_data_files_outside_the_repo_are_refused(tmp_path):
    write_shards(_clips("x", 2), tmp_path / "outside" / "x-%03d.tar")
    card, repo = _hub(tmp_path, {"train": "../outside/*.tar", "valid": "toy/valid-*.tar", "test": "toy/test-*.tar"})
    with pytest.raises(DataError, match=r"split 'train': config 'toy' of .* declares the path '\.\./outside/\*\.tar'"):
        shard_files(card, repo)


def test_valid_and_test_may_be_the_same_shards_as_in_xares(tmp_path):
    """DESED, FSDKaggle2018 and VoxLingua33 validate on their test shards in X-ARES: still allowed."""
    card, data = _task(tmp_path, {"train": _clips("train"), "eval": _clips("eval")},
                       data={"splits": {"train": "train-*.tar", "valid": "eval-*.tar", "test": "eval-*.tar"}})
    files = shard_files(load_task(card), data)
    assert files["valid"] == files["test"]
    assert _run(tmp_path, card, data).left_out == []


# ------------------------------------------------------------------------------------------- card fields


@pytest.mark.parametrize("pattern", ["fold{fold}{x}.tar", "{fold.__class__}.tar", "{fold:>200000000}.tar", "{fold[0]}.tar",
                                     "{0}-{fold}.tar", "a{fold}{{b}}.tar", "fold.tar"])
def test_fold_pattern_allows_only_the_fold_placeholder(tmp_path, pattern):
    _assert_refused(tmp_path, "data.fold_pattern", data={"folds": [1, 2], "fold_pattern": pattern})


def test_zero_padded_fold_numbers_as_in_the_xares_cards(tmp_path):
    card = load_task(write_card(tmp_path / "f.yaml", data={"folds": [1, 12], "fold_pattern": "f{fold:02d}-{fold:03}-{fold}.tar"}))
    assert card.data.patterns() == {"fold1": "f01-001-1.tar", "fold12": "f12-012-12.tar"}


@pytest.mark.parametrize("folds", [[1, 1, 2], [-1, 0]])
def test_folds_are_distinct_and_not_negative(tmp_path, folds):
    _assert_refused(tmp_path, "data", data={"folds": folds, "fold_pattern": "f{fold}.tar"})


@pytest.mark.parametrize("pattern", ["/etc/*.tar", "../other/*.tar", "a/../../x.tar", "", "a**b.tar"])
def test_split_patterns_stay_inside_the_task_folder(tmp_path, pattern):
    _assert_refused(tmp_path, "data.splits", data={"splits": {"train": pattern, "valid": "v*.tar", "test": "t*.tar"}})


@pytest.mark.parametrize("field, overrides", [
    ("eval_weight", {"eval_weight": float("inf")}),
    ("eval_weight", {"eval_weight": float("nan")}),
    ("probe.learning_rate", {"probe": {"learning_rate": float("inf")}}),
    ("probe.pos_weight", {"probe": {"pos_weight": float("inf")}}),
    ("data.max_duration", {"data": {"splits": {"train": "a*", "valid": "b*", "test": "c*"}, "max_duration": float("inf")}}),
    ("data.crop_length", {"data": {"splits": {"train": "a*", "valid": "b*", "test": "c*"}, "crop_length": 1e-6}}),
    ("data.crop_length", {"data": {"splits": {"train": "a*", "valid": "b*", "test": "c*"}, "crop_length": float("inf")}}),
    ("data.zenodo_id", {"data": {"splits": {"train": "a*", "valid": "b*", "test": "c*"}, "zenodo_id": "1/../../evil"}}),
    ("metric_args.segment_length_in_s", {"metric_args": {"segment_length_in_s": 1e-9}}),
    ("labels.num_classes", {"labels": {"kind": "index", "field": "y", "num_classes": 10**12}}),
])
def test_numbers_and_ids_a_run_could_not_use_are_refused_at_load(tmp_path, field, overrides):
    _assert_refused(tmp_path, field, **overrides)


@pytest.mark.parametrize("classes, separator", [(["a", ""], None), ([" a", "b"], None), (["a;b", "c"], ";")])
def test_class_names_the_labels_could_never_name_are_refused(tmp_path, classes, separator):
    labels = {"kind": "multi_label" if separator else "class_name", "field": "y", "num_classes": 2, "classes": classes}
    extra = {"metric": "mAP", "knn": False} if separator else {}
    _assert_refused(tmp_path, "labels", labels={**labels, **({"separator": separator} if separator else {})}, **extra)


def _classes_file(tmp_path, name) -> str:
    path = write_card(tmp_path / "c.yaml", labels={"kind": "class_name", "field": "y", "num_classes": 2, "classes_file": name})
    with pytest.raises(TaskCardError) as err:
        TaskCard.from_yaml(path)
    assert str(err.value).startswith(f"{path}: field 'labels.classes_file': ") and "\n" not in str(err.value)
    return str(err.value)


def test_classes_file_must_be_utf8_text_inside_the_cards_folder(tmp_path):
    (tmp_path.parent / f"{tmp_path.name}-secret.txt").write_text("a\nb\n")
    assert "outside the card's folder" in _classes_file(tmp_path, f"../{tmp_path.name}-secret.txt")
    assert "outside the card's folder" in _classes_file(tmp_path, "/etc/hostname")
    (tmp_path / "link.txt").symlink_to(tmp_path.parent / f"{tmp_path.name}-secret.txt")
    assert "outside the card's folder" in _classes_file(tmp_path, "link.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\nb\n".encode("latin-1"))
    assert f"{tmp_path / 'latin1.txt'} is not UTF-8 text" in _classes_file(tmp_path, "latin1.txt")
    (tmp_path / "ok.txt").write_text("a\nb\n")
    assert load_task(write_card(tmp_path / "c.yaml", labels={"kind": "class_name", "field": "y", "num_classes": 2,
                                                             "classes_file": "ok.txt"})).labels.classes == ["a", "b"]


def test_a_card_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(TaskCardError, match=r"latin1\.yaml: not UTF-8 text"):
        TaskCard.from_yaml(path)


# ------------------------------------------------------------------------------------------- labels


def _encoder(tmp_path, **labels) -> LabelEncoder:
    card = load_task(write_card(tmp_path / "l.yaml", **labels))
    return LabelEncoder(card.labels, "toy")


@pytest.mark.parametrize("value, kind", [(["low"], "a list"), ({"name": "low"}, "an object"), (None, "null"), (1.5, "float")])
def test_a_label_that_is_not_a_name_is_a_label_error(tmp_path, value, kind):
    enc = _encoder(tmp_path)
    with pytest.raises(LabelError, match=f"task 'toy', file x.tar, sample 'k': field 'label' is {kind} "):
        enc.encode({"label": value}, "file x.tar, sample 'k'")


@pytest.mark.parametrize("value", ["²", "١", "9" * 5000, "-1", " 1"])
def test_an_index_label_must_be_ascii_digits(tmp_path, value):
    enc = _encoder(tmp_path, labels={"kind": "index", "field": "y", "num_classes": 3})
    with pytest.raises(LabelError, match="sample 'k': field 'y' = .* is not an integer class index"):
        enc.encode({"y": value}, "sample 'k'")


@pytest.mark.parametrize("labels, bad, reason", [
    ({"kind": "class_name", "field": "label", "num_classes": 2, "classes": ["low", "high"]},
     [{"label": ["low"]}, {"label": {"low": 1}}], ["field 'label' is a list (['low'])", "field 'label' is an object ({'low"]),
    ({"kind": "index", "field": "label", "num_classes": 2}, [{"label": "²"}, {"label": "1.0"}],
     ["field 'label' = '²' is not an integer class index", "field 'label' = '1.0' is not an integer class index"]),
])
def test_bad_labels_are_skippable_samples(tmp_path, labels, bad, reason):
    def clips(split, n=8):
        names = labels.get("classes") or [0, 1]
        return [(f"{split}{i}", tone(LOW if i % 2 else HIGH), SR, {"label": names[i % 2]}) for i in range(n)]

    train = clips("train", 12) + [(f"bad{i}", tone(LOW), SR, meta) for i, meta in enumerate(bad)]
    card, data = _task(tmp_path, {"train": train, "valid": clips("valid"), "test": clips("test")}, labels=labels)
    with pytest.raises(LabelError, match=r"split 'train', file .*train-000\.tar, sample 'bad0': "):
        _run(tmp_path, card, data)
    result = _run(tmp_path, card, data, "skip")
    assert [s["key"] for s in result.skipped] == ["bad0", "bad1"]
    assert [s["reason"].split("': ", 1)[1][: len(r)] for s, r in zip(result.skipped, reason)] == reason
    assert result.mlp > 0.9


def test_multi_label_empty_and_repeated_names_are_listed(tmp_path):
    def tags(split, n=8):
        return [(f"{split}{i}", tone(LOW if i % 2 else HIGH), SR, {"tags": "low" if i % 2 else "high"}) for i in range(n)]

    train = tags("train") + [("gap", tone(LOW), SR, {"tags": "low;;high"}), ("twice", tone(HIGH), SR, {"tags": "high;high"})]
    labels = {"kind": "multi_label", "field": "tags", "separator": ";", "num_classes": 2, "classes": ["low", "high"]}
    card, data = _task(tmp_path, {"train": train, "valid": tags("valid"), "test": tags("test")},
                       labels=labels, metric="mAP", knn=False)
    for mode in ("error", "skip"):
        left = {x["key"]: x["reason"] for x in _run(tmp_path, card, data, mode).left_out}
        assert left == {"gap": "field 'tags' = 'low;;high': an empty class name between separators is ignored",
                        "twice": "field 'tags' = 'high;high' names 'high' more than once: counted once"}


def test_captions_that_are_not_text_are_listed(tmp_path):
    card = load_task(write_card(tmp_path / "c.yaml", task_type="contrastive", metric="recallatk_r1", knn=False,
                                labels={"kind": "captions"}))
    notes: list[str] = []
    assert LabelEncoder(card.labels, "toy").encode({"c1": "a dog barks", "n": 3, "c2": "woof"}, "s", notes=notes) == [
        "a dog barks", "woof"]
    assert notes == ["field(s) 'n' of the sample JSON are not text: not used as captions"]


def test_events_past_the_clip_or_between_frames_are_listed(tmp_path):
    from xares_hf.tasks.labels import unscored_events

    card = load_task(write_card(tmp_path / "e.yaml", task_type="frame", metric="segmentf1_macro", knn=False,
                                labels={"kind": "events", "field": "c", "num_classes": 2, "classes": ["a", "b"]}))
    notes: list[str] = []
    events = LabelEncoder(card.labels, "toy").encode([{"onset": 0.5, "offset": 3.0, "c": "a"}], "s", 1.0, notes)
    assert notes == ["event 0 ends at 3.0 s, after the end of the 1.00 s clip: the part after the end is not scored"]
    assert events == [Event(0.5, 3.0, (0,))]
    assert unscored_events([Event(0.101, 0.105, (0,)), Event(0.1, 0.3, (1,)), Event(0.95, 0.99, (1,))], 20, 48) == [
        "event 0 (0.101..0.105 s) covers no frame of the encoder's output (48 frames of 20 ms): it is not scored",
        "event 2 (0.95..0.99 s) covers no frame of the encoder's output (48 frames of 20 ms): it is not scored",
    ]


# ------------------------------------------------------------------------------------------- left out or refused


def test_shards_no_pattern_matches_are_listed(tmp_path):
    card, data = _task(tmp_path, {"train": _clips("train"), "valid": _clips("valid"), "test": _clips("test"),
                                  "extra": _clips("extra", 2)})
    (data / "toy" / ".partial.tar").write_bytes(b"")  # hidden: a download in progress, not a shard
    for mode in ("error", "skip"):
        result = _run(tmp_path, card, data, mode)  # the second run reuses the cached result: still listed
        assert result.left_out == [{"split": "", "file": str(data / "toy" / "extra-000.tar"), "key": "",
                                    "reason": "no split or fold pattern of the card matches this shard: not used"}]


def test_a_test_sample_also_in_train_stops_in_both_modes(tmp_path):
    test = _clips("test")
    card, data = _task(tmp_path, {"train": _clips("train") + test[:1], "valid": _clips("valid"), "test": test})
    for mode in ("error", "skip"):
        with pytest.raises(DataError, match=r"task 'toy': sample 'test0' is in split 'train' \(file .*train-000\.tar\) "
                                            r"and in split 'test' \(file .*test-000\.tar\) with the same audio and label"):
            _run(tmp_path, card, data, mode)


def test_a_sample_twice_in_a_split_is_a_bad_sample(tmp_path):
    card, data = _task(tmp_path, {"train": _clips("train"), "valid": _clips("valid"), "test": _clips("test")})
    shutil.copy(data / "toy" / "train-000.tar", data / "toy" / "train-001.tar")
    with pytest.raises(DataError, match=r"split 'train', file .*train-001\.tar, sample 'train0': the same sample "
                                        r"\(key, audio and label\) is also in file .*train-000\.tar of this split"):
        _run(tmp_path, card, data)
    result = _run(tmp_path, card, data, "skip")
    assert [(s["key"], s["file"].rsplit("/", 1)[1]) for s in result.skipped] == [(f"train{i}", "train-001.tar") for i in range(8)]


def test_the_same_key_with_other_audio_is_another_sample(tmp_path):
    """X-ARES keys are file stems: 'id1/00001.wav' and 'id2/00001.wav' share one."""
    other = [(k, tone(LOW + 50 if m["label"] == "low" else HIGH + 200), SR, m) for k, _, _, m in _clips("train")]
    card, data = _task(tmp_path, {"train": _clips("train"), "valid": _clips("valid"), "test": other})
    result = _run(tmp_path, card, data)
    assert result.skipped == [] and result.left_out == [] and result.eval_size == 8


def test_a_class_never_trained_on_is_listed(tmp_path):
    test = _clips("test") + [("odd", tone(700), SR, {"label": "mid"})]
    card, data = _task(tmp_path, {"train": _clips("train"), "valid": _clips("valid"), "test": test},
                       labels={"kind": "class_name", "field": "label", "num_classes": 3, "classes": ["low", "high", "mid"]})
    result = _run(tmp_path, card, data)
    assert result.left_out == [{"split": "test", "file": str(data / "toy" / "test-000.tar"), "key": "odd",
                                "reason": "class 'mid' is in 1 sample(s) of 'test' but in no training sample: the probe "
                                          "cannot learn it (first: this sample)"}]


def test_a_multi_label_class_without_test_positives_is_listed(tmp_path):
    def tags(split, names):
        return [(f"{split}{i}", tone(LOW if i % 2 else HIGH), SR, {"tags": names[i % len(names)]}) for i in range(8)]

    labels = {"kind": "multi_label", "field": "tags", "separator": ";", "num_classes": 3, "classes": ["low", "high", "mid"]}
    card, data = _task(tmp_path, {"train": tags("train", ["high", "low;mid"]), "valid": tags("valid", ["high", "low"]),
                                  "test": tags("test", ["high", "low"])}, labels=labels, metric="mAP", knn=False)
    assert _run(tmp_path, card, data).left_out == [{"split": "test", "file": "", "key": "", "reason": (
        "class 'mid' has no positive sample in 'test': its average precision counts as 0 in the mAP")}]


def test_ctc_limits_are_listed(tmp_path):
    """A test character the CTC head never saw in training; a training transcript longer than its clip's frames."""
    def speech(split, texts):
        return [(f"{split}{i}", tone_at(TONES["beep"], 0.3, 0.0, 0.2), SR, {"text": t}) for i, t in enumerate(texts)]

    card, data = _task(tmp_path, {"train": speech("train", ["ab ba", "ba", "x" * 40]), "valid": speech("valid", ["ab"]),
                                  "test": speech("test", ["abé", "ba"])},
                       task_type="asr", metric="WER_inv", knn=False, labels={"kind": "transcript", "field": "text"},
                       probe={"epochs": 2, "learning_rate": 0.01, "batch_size": 2, "batch_size_encode": 4, "head": "ctc"})
    reasons = [(x["split"], x["key"], x["reason"]) for x in _run(tmp_path, card, data).left_out]
    assert reasons == [
        ("test", "test0", "character 'é' is in 1 transcript(s) of 'test' but in no training transcript: the CTC head "
                          "can never write it (first: this sample)"),
        ("train", "train2", "the transcript needs at least 79 frames for CTC, the encoder gave 31: the CTC head learns "
                            "nothing from this sample"),
    ]


def test_a_fold_without_usable_samples_is_named(tmp_path):
    bad = [("k", tone(LOW), SR, {"label": "purple"})]
    card, data = _task(tmp_path, {"fold1": _clips("a"), "fold2": _clips("b"), "fold3": bad},
                       data={"folds": [1, 2, 3], "fold_pattern": "fold{fold}-*.tar"})
    with pytest.raises(ValueError, match=r"task 'toy', split 'fold3': the shards .* hold no usable samples"):
        _run(tmp_path, card, data, "skip")


def test_a_bad_label_of_a_cropped_clip_is_one_skipped_sample(tmp_path):
    train = _clips("train", 12) + [("purple", tone(LOW, 1.0), SR, {"label": "purple"})]  # 1 s: five 0.2 s crops
    card, data = _task(tmp_path, {"train": train, "valid": _clips("valid"), "test": _clips("test")},
                       data={"splits": {s: f"{s}-*.tar" for s in ("train", "valid", "test")}, "crop_length": 0.2})
    assert [s["key"] for s in _run(tmp_path, card, data, "skip").skipped] == ["purple#0"]
