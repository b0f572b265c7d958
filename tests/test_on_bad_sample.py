"""A run meeting bad samples: stops naming task, shard and key by default; with on_bad_sample="skip" leaves them
out, counts and reports them; never a score computed on silently dropped or wrong data."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from helpers import tone, write_card
from xares_hf import Results, evaluate
from xares_hf.data import DataError, encode_audio, write_shards
from xares_hf.tasks import LabelError


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def task(tmp_path):
    """A clip task whose train split has one undecodable clip and one clip with a label outside the classes."""
    data = tmp_path / "data"
    for split in ("valid", "test"):
        write_shards([(f"{split}{i}", tone(300 if i % 2 else 1500), 16_000, {"label": "low" if i % 2 else "high"})
                      for i in range(8)], data / "toy" / f"{split}-%03d.tar")
    (data / "toy").mkdir(parents=True, exist_ok=True)
    with tarfile.open(data / "toy" / "train-000.tar", "w") as tar:
        for i in range(12):
            _member(tar, f"train{i:02d}.flac", encode_audio(tone(300 if i % 2 else 1500), 16_000))
            _member(tar, f"train{i:02d}.json", json.dumps({"label": "low" if i % 2 else "high"}).encode())
        _member(tar, "garbled.flac", b"\x00not a flac stream at all")
        _member(tar, "garbled.json", b'{"label": "low"}')
        _member(tar, "purple.flac", encode_audio(tone(700), 16_000))
        _member(tar, "purple.json", b'{"label": "purple"}')
    card = write_card(tmp_path / "toy.yaml", probe={"epochs": 20, "learning_rate": 0.01, "batch_size": 4, "batch_size_encode": 4})
    return {"data": data, "card": card, "root": tmp_path}


def test_default_stops_at_the_first_bad_sample_naming_task_shard_and_key(task):
    out = task["root"] / "out"
    with pytest.raises(DataError, match=r"task 'toy', split 'train', file .*train-000\.tar, sample 'garbled'"):
        evaluate("log-mel", tasks=[task["card"]], data_dir=task["data"], cache_dir=task["root"] / "c", output_dir=out)
    assert not out.exists()


def test_skip_leaves_bad_samples_out_and_reports_each(task):
    out = task["root"] / "out"
    results = evaluate("log-mel", tasks=[task["card"]], data_dir=task["data"], cache_dir=task["root"] / "c",
                       output_dir=out, on_bad_sample="skip")
    skipped = results["toy"].skipped
    assert [(s["split"], s["key"]) for s in skipped] == [("train", "garbled"), ("train", "purple")]
    assert all(s["file"].endswith("train-000.tar") for s in skipped)
    assert "decode" in skipped[0]["reason"] and "purple" in skipped[1]["reason"]
    assert results["toy"].mlp > 0.9  # the probe trained on the 12 good clips
    saved = Results.load(next(out.rglob("results.json")))
    assert saved["toy"].skipped == skipped and saved.run["on_bad_sample"] == "skip"


def test_cached_skips_do_not_bypass_the_default(task):
    """Embeddings cached by a skipping run hold fewer samples: a default run must still refuse them."""
    cache = task["root"] / "c"
    evaluate("log-mel", tasks=[task["card"]], data_dir=task["data"], cache_dir=cache, output_dir=None, on_bad_sample="skip")
    with pytest.raises(DataError, match=r"sample 'garbled'.*2 bad samples in this split"):
        evaluate("log-mel", tasks=[task["card"]], data_dir=task["data"], cache_dir=cache, output_dir=None)


def test_unknown_label_alone_is_an_error_by_default(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "valid", "test"):
        write_shards([(f"{split}{i}", tone(300), 16_000, {"label": "low" if i else "purple"}) for i in range(4)],
                     data / "toy" / f"{split}-%03d.tar")
    with pytest.raises(LabelError, match=r"split 'train', file .*train-000\.tar, sample 'train0'"):
        evaluate("log-mel", tasks=[write_card(tmp_path / "toy.yaml")], data_dir=data, cache_dir=tmp_path / "c", output_dir=None)


def test_on_bad_sample_must_be_error_or_skip(task):
    with pytest.raises(ValueError, match="on_bad_sample must be 'error' or 'skip'"):
        evaluate("log-mel", tasks=[task["card"]], data_dir=task["data"], output_dir=None, on_bad_sample="ignore")


def test_only_a_changed_data_file_is_encoded_again(task):
    from helpers import CountingEncoder
    from xares_hf.encoders import LogMelEncoder

    cache = task["root"] / "c"
    run = lambda encoder: evaluate(encoder, tasks=[task["card"]], data_dir=task["data"], cache_dir=cache,  # noqa: E731
                                   output_dir=None, on_bad_sample="skip")
    run(CountingEncoder(LogMelEncoder()))
    unchanged = CountingEncoder(LogMelEncoder())
    assert not run(unchanged)["toy"].encoded and unchanged.calls == 2  # check_encoder's two calls only
    write_shards([(f"new{i}", tone(1500 if i % 2 else 300), 16_000, {"label": "high" if i % 2 else "low"}) for i in range(8)],
                 task["data"] / "toy" / "test-%03d.tar")
    changed = CountingEncoder(LogMelEncoder())
    assert run(changed)["toy"].encoded
    assert changed.calls == 2 + 2  # check_encoder, then the new test shard's 8 clips in batches of 4
