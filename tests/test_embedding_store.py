"""The embedding store: entries are safetensors files read through memory maps, views read only what is asked for,
and an entry that is damaged or half written is never read as numbers."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest

from xares_hf import evaluate
from xares_hf.embedding_cache import EmbeddingCache, SplitEmbeddings
from xares_hf.evaluators import SplitData
from xares_hf.store import Entry, EntryError, Frames, Rows


def _split(n: int = 6, dim: int = 4, seed: int = 0) -> SplitEmbeddings:
    rng = np.random.default_rng(seed)
    frames = [rng.normal(size=(int(t), dim)).astype(np.float32) for t in rng.integers(1, 9, size=n)]
    return SplitEmbeddings(Rows.from_array(np.stack([f.mean(0) for f in frames])), [f"k{i}" for i in range(n)],
                           ["shard.tar"] * n, [{"label": i % 2, "text": "é"} for i in range(n)],
                           np.linspace(0.5, 1.0, n), Frames.from_list(frames),
                           [{"split": "train", "file": "shard.tar", "key": "bad", "reason": "silent"}], [])


def _anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_an_entry_round_trips_and_is_standard_safetensors(tmp_path):
    from safetensors import safe_open

    cache, split = EmbeddingCache(tmp_path), _split()
    path = cache.save("toy", "key1", split)
    loaded = cache.load("toy", "key1")
    assert loaded.keys == split.keys and loaded.metas == split.metas and loaded.skipped == split.skipped
    np.testing.assert_array_equal(loaded.pooled.numpy(), split.pooled.numpy())
    assert [f.tolist() for f in loaded.frames] == [f.tolist() for f in split.frames]
    entry = loaded.pooled.parts[0][0]
    assert not entry.array("frames").flags.owndata and not entry.array("frames").flags.writeable  # a view of the map
    with safe_open(str(path), framework="np") as handle:  # any safetensors reader reads the arrays
        np.testing.assert_array_equal(handle.get_tensor("pooled"), split.pooled.numpy())
        assert handle.get_tensor("frames").shape == (int(split.frames.lengths.sum()), 4)


def test_views_select_join_and_slice_columns_without_reading(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for key, seed in (("a", 1), ("b", 2)):
        cache.save("toy", key, _split(seed=seed))
    a, b = cache.load("toy", "a"), cache.load("toy", "b")
    joined = SplitData.join([SplitData(a.pooled, np.zeros(6), a.frames), SplitData(b.pooled, np.ones(6), b.frames)])
    every_row = np.concatenate([a.pooled.numpy(), b.pooled.numpy()])
    every_clip = list(a.frames) + list(b.frames)
    rows = [11, 0, 6, 5]
    np.testing.assert_array_equal(joined.pooled.take(rows), every_row[rows])
    assert [f.tolist() for f in joined.frames.take(rows)] == [every_clip[i].tolist() for i in rows]
    assert joined.frames.lengths.tolist() == [len(f) for f in every_clip]
    layer = joined.layer(1, 2)  # columns 2:4 of every clip
    np.testing.assert_array_equal(layer.pooled.numpy(), every_row[:, 2:4])
    assert [f.tolist() for f in layer.frames.select([3, 7])] == [every_clip[i][:, 2:4].tolist() for i in (3, 7)]
    assert all(not isinstance(p, np.ndarray) for p in joined.pooled.parts)  # the maps, not copies


def test_training_reads_batches_from_the_maps_not_a_copy_of_the_split(tmp_path):
    """A split of 160 MB of frames costs next to no anonymous memory to open, join and take a batch from."""
    cache = EmbeddingCache(tmp_path)
    clips, frames, dim = 40, 4000, 256
    rng = np.random.default_rng(0)
    for key in ("a", "b"):
        big = [rng.normal(size=(frames, dim)).astype(np.float32) for _ in range(clips // 2)]
        cache.save("big", key, SplitEmbeddings(Rows.from_array(np.stack([f.mean(0) for f in big])), [f"{key}{i}" for i in range(len(big))],
                                               ["s.tar"] * len(big), [{}] * len(big), np.ones(len(big)), Frames.from_list(big)))
        del big
    before = _anon_kb()
    split = SplitEmbeddings.concat([cache.load("big", "a"), cache.load("big", "b")])
    batch = split.frames.take([0, 25, 39])
    grown_mb = (_anon_kb() - before) / 1024
    stored_mb = clips * frames * dim * 4 / 2**20
    assert [f.shape for f in batch] == [(frames, dim)] * 3
    assert grown_mb < 0.15 * stored_mb, f"opening {stored_mb:.0f} MB of frames took {grown_mb:.0f} MB of anonymous memory"


@pytest.mark.parametrize("damage", ["truncate", "flip a data bit", "flip a header digit", "not an entry"])
def test_a_damaged_entry_is_detected_and_dropped(tmp_path, damage, caplog):
    cache = EmbeddingCache(tmp_path)
    path = cache.save("toy", "key1", _split())
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip a data bit":
        data[-20] ^= 0x10
    elif damage == "flip a header digit":
        at = data.index(b'"shape":[6,4]') + len('"shape":[')
        data[at : at + 1] = b"5"
    else:
        data = bytearray(b"PK\x03\x04" + bytes(100))
    path.write_bytes(bytes(data))
    with pytest.raises(EntryError):
        Entry(path)
    assert cache.load("toy", "key1") is None and not path.exists()
    assert "encoded again" in caplog.text


def test_a_flipped_bit_in_a_cached_entry_is_encoded_again_with_the_same_scores(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / "synth_vowel.yaml"]
    first = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    entry = sorted((tmp_path / "synth_vowel").glob("*.safetensors"))[0]
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one embedding: a score would change a little, silently
    entry.write_bytes(bytes(data))
    for result in (tmp_path / "synth_vowel" / "results").glob("*.json"):
        result.unlink()
    rerun = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path, output_dir=None)
    assert rerun["synth_vowel"].encoded and rerun["synth_vowel"].mlp == first["synth_vowel"].mlp
    Entry(entry)  # rewritten whole: passes its checksum


def test_a_full_disk_leaves_no_entry_and_says_what_failed(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)

    class FullDisk:
        """A file object that takes 1000 bytes, then fails as a full disk does."""

        def __init__(self, out):
            self.out, self.written = out, 0

        def write(self, data):
            if self.written + len(memoryview(data).cast("B")) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(memoryview(data).cast("B"))
            return self.out.write(data)

    from xares_hf import embedding_cache

    original = embedding_cache.write_entry
    monkeypatch.setattr(embedding_cache, "write_entry", lambda out, arrays: original(FullDisk(out), arrays))
    with pytest.raises(OSError, match=r"task 'toy' to .*key1\.safetensors: No space left on device \(the disk is full"):
        cache.save("toy", "key1", _split(n=50))
    assert list((tmp_path / "toy").iterdir()) == []  # no entry under its final name, no temporary file left


def test_a_streamed_array_is_written_byte_for_byte_like_the_whole_one(tmp_path):
    """Streamed (frames read a clip at a time) writes the same file as the array held whole."""
    from xares_hf.store import Streamed, write_entry

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((n, 6)).astype(np.float32) for n in (5, 0, 9, 3)]
    whole, streamed = tmp_path / "whole.safetensors", tmp_path / "streamed.safetensors"
    with open(whole, "wb") as out:
        write_entry(out, {"frames": np.concatenate(clips), "n": np.arange(4)})
    with open(streamed, "wb") as out:
        write_entry(out, {"frames": Streamed(np.dtype(np.float32), (17, 6), lambda: iter(clips)), "n": np.arange(4)})
    assert streamed.read_bytes() == whole.read_bytes()
    reads = []
    counted = Streamed(np.dtype(np.float32), (17, 6), lambda: reads.append(1) or iter(clips))
    with open(tmp_path / "once.safetensors", "wb") as out:
        write_entry(out, {"frames": counted, "n": np.arange(4)})
    assert reads == [1] and (tmp_path / "once.safetensors").read_bytes() == whole.read_bytes()  # read once, not twice
    unseekable = io.BytesIO()
    unseekable.seekable = lambda: False  # e.g. a pipe: the digest is computed first, in a pass of its own
    write_entry(unseekable, {"frames": Streamed(np.dtype(np.float32), (17, 6), lambda: iter(clips)), "n": np.arange(4)})
    assert unseekable.getvalue() == whole.read_bytes()
    with open(tmp_path / "short.safetensors", "wb") as out, pytest.raises(ValueError, match="gave 408 bytes where its shape"):
        write_entry(out, {"frames": Streamed(np.dtype(np.float32), (18, 6), lambda: iter(clips))})


def test_the_frame_spool_gives_each_clip_back_in_its_own_order(tmp_path):
    """Frames spooled in encoding order (sorted by length) come back in the clips' order, from a file no one sees."""
    from xares_hf.store import FrameSpool

    rng = np.random.default_rng(1)
    clips = [rng.standard_normal((n, 4)).astype(np.float32) for n in (7, 2, 0, 5)]
    spool = FrameSpool(tmp_path / "task")
    for slot in (2, 1, 3, 0):  # as a length-sorted batch would add them
        spool.add(slot, clips[slot])
    frames = spool.frames(4, 4)
    assert list((tmp_path / "task").iterdir()) == []  # the spool file has no name
    assert list(frames.lengths) == [7, 2, 0, 5]
    for got, want in zip(frames, clips):
        np.testing.assert_array_equal(got, want)
    data, offsets = frames.packed()
    assert data.shape == (14, 4) and list(offsets) == [0, 7, 9, 9, 14]
    np.testing.assert_array_equal(np.concatenate(list(data.pieces())), np.concatenate(clips))


def test_a_full_disk_while_spooling_frames_says_where(tmp_path, monkeypatch):
    from xares_hf.store import FrameSpool

    spool = FrameSpool(tmp_path / "task")

    def full(data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.file, "write", full)
    with pytest.raises(OSError, match=r"cannot spool encoded frames in .*task: No space left on device \(the disk is full"):
        spool.add(0, np.zeros((3, 2), np.float32))
