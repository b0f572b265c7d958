"""Hostile WebDataset shards: every bad sample is named by task, split, shard and key, or skipped on request.

Each test builds its shard in tmp_path: good samples k0 and k2 around a bad one (k1 unless the kind of
problem gives it another key), written with ``tarfile`` directly where the tar itself must be malformed.
"""

import io
import json
import re
import struct
import tarfile

import numpy as np
import pytest
import soundfile as sf

from helpers import tone
from xares_hf.data import AudioSample, DataError, LeftOut, SkippedSample, encode_audio, iter_audio, prefetch_audio, write_shards

SR = 16_000
META = json.dumps({"label": "low"}).encode()


def _good(key: str) -> list[tuple[str, bytes]]:
    return [(f"{key}.flac", encode_audio(tone(300.0, 0.25), SR)), (f"{key}.json", META)]


def _tar(path, members: list[tuple[str, bytes]], end: bool = True) -> str:
    """A tar of ``(name, data)`` members, in order; without the end-of-archive blocks if not ``end``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        body = buffer.tell()
    path.write_bytes(buffer.getvalue() if end else buffer.getvalue()[:body])
    return str(path)


def _around(path, bad: list[tuple[str, bytes]]) -> str:
    """k0, the bad members, k2."""
    return _tar(path, _good("k0") + bad + _good("k2"))


def _assert_bad(shard: str, key: str, reason: str) -> None:
    """Error mode names task, split, shard and key with ``reason``; skip mode yields the rest in order."""
    with pytest.raises(DataError) as err:
        list(iter_audio([shard], SR, "toy", "train"))
    assert str(err.value) == f"task 'toy', split 'train', file {shard}, sample '{key}': {reason}"
    out = list(iter_audio([shard], SR, "toy", "train", on_bad_sample="skip"))
    assert [type(s) for s in out] == [AudioSample, SkippedSample, AudioSample]
    assert [s.key for s in out] == ["k0", key, "k2"] and [s.position for s in out] == [0, 1, 2]
    assert out[1] == SkippedSample(key=key, url=shard, position=1, reason=reason)
    assert out[0].meta == {"label": "low"} and out[2].audio.shape == (SR // 4,)


def _reason_of(shard: str, key: str = "k1") -> str:
    with pytest.raises(DataError) as err:
        list(iter_audio([shard], SR, "toy", "train"))
    prefix = f"task 'toy', split 'train', file {shard}, sample '{key}': "
    assert str(err.value).startswith(prefix), str(err.value)
    skipped = [s for s in iter_audio([shard], SR, "toy", "train", on_bad_sample="skip") if isinstance(s, SkippedSample)]
    assert [(s.key, s.position) for s in skipped] == [(key, 1)] and skipped[0].reason == str(err.value)[len(prefix):]
    return skipped[0].reason


def _wav(waveform: np.ndarray, subtype: str = "PCM_16", sr: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sr, format="WAV", subtype=subtype)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- audio bytes


def test_corrupt_audio_bytes(tmp_path):
    shard = _around(tmp_path / "s.tar", [("k1.flac", b"not audio at all" * 64), ("k1.json", META)])
    assert _reason_of(shard).startswith("cannot decode audio 'k1.flac': ")
    assert "Invalid data found" in _reason_of(shard)


@pytest.mark.parametrize("cut", ["frame boundary", "inside a frame", "wav data"])
def test_truncated_audio(tmp_path, cut):
    if cut == "wav data":  # ffmpeg reads a short WAV data chunk without complaint; its header says how long it is
        full = _wav(tone(300.0, 1.0))
        shard = _around(tmp_path / "s.tar", [("k1.wav", full[: len(full) - 4000]), ("k1.json", META)])
        _assert_bad(shard, "k1", "audio 'k1.wav' is truncated: its header declares 32000 bytes of samples, 28000 are present")
        return
    full = encode_audio(tone(300.0, 2.0), SR)
    frames = [i for i in range(len(full) - 1) if full[i] == 0xFF and full[i + 1] in (0xF8, 0xF9)]
    if cut == "frame boundary":  # ffmpeg returns the first two frames without an error: STREAMINFO says 2 s
        shard = _around(tmp_path / "s.tar", [("k1.flac", full[: frames[2]]), ("k1.json", META)])
        reason = _reason_of(shard)
        assert re.fullmatch(r"audio 'k1\.flac' is truncated: 0\.\d{3} s decoded of the 2\.000 s its header declares", reason), reason
    else:
        shard = _around(tmp_path / "s.tar", [("k1.flac", full[: frames[2] + 100]), ("k1.json", META)])
        assert _reason_of(shard).startswith("cannot decode audio 'k1.flac': ")


def test_unsupported_codec(tmp_path):
    wav = bytearray(_wav(tone(300.0, 0.25)))
    fmt = wav.find(b"fmt ")
    wav[fmt + 8 : fmt + 10] = struct.pack("<H", 0x7777)  # a WAVE format tag no decoder knows
    shard = _around(tmp_path / "s.tar", [("k1.wav", bytes(wav)), ("k1.json", META)])
    _assert_bad(shard, "k1", "audio 'k1.wav' has no audio stream that ffmpeg can decode (unsupported codec, or not audio)")


@pytest.mark.parametrize("audio", ["no samples", "no bytes"])
def test_zero_length_audio(tmp_path, audio):
    if audio == "no samples":
        shard = _around(tmp_path / "s.tar", [("k1.wav", _wav(np.zeros(0, np.float32))), ("k1.json", META)])
        _assert_bad(shard, "k1", "audio 'k1.wav' holds no samples (zero length)")
    else:
        shard = _around(tmp_path / "s.tar", [("k1.flac", b""), ("k1.json", META)])
        _assert_bad(shard, "k1", "audio 'k1.flac' is empty (0 bytes)")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples(tmp_path, value):
    wave = tone(300.0, 0.25)
    wave[100] = value
    shard = _around(tmp_path / "s.tar", [("k1.wav", _wav(wave, "FLOAT")), ("k1.json", META)])
    _assert_bad(shard, "k1", "audio 'k1.wav' has NaN or infinite samples")


def test_multichannel_audio_at_odd_rates_is_downmixed_and_resampled(tmp_path):
    samples = []
    for i, rate in enumerate((11_025, 8_000, 44_100)):
        t = np.arange(rate // 2) / rate
        left = 0.6 * np.sin(2 * np.pi * 440 * t)
        samples.append((f"k{i}", np.stack([left, left, 0 * left], axis=1), rate, {"rate": rate}))  # 3 channels
    files = write_shards(samples, tmp_path / "s-%03d.tar")
    out = list(iter_audio(files, SR, "toy", "train"))
    assert [s.key for s in out] == ["k0", "k1", "k2"] and all(isinstance(s, AudioSample) for s in out)
    for s in out:
        assert s.audio.dtype == np.float32 and abs(s.audio.shape[0] - SR // 2) <= 1
        spectrum = np.abs(np.fft.rfft(s.audio))
        assert abs(np.fft.rfftfreq(s.audio.size, 1 / SR)[spectrum.argmax()] - 440) < 3
        assert 0.36 < np.abs(s.audio).max() < 0.44  # channel mean: (0.6 + 0.6 + 0) / 3


# ------------------------------------------------------------------------------------------- members


def test_missing_audio_member(tmp_path):
    shard = _around(tmp_path / "s.tar", [("k1.json", META)])
    _assert_bad(shard, "k1", "no audio member (expected 'k1.{flac,wav,mp3,ogg,...}')")


def test_missing_json_member(tmp_path):
    shard = _around(tmp_path / "s.tar", [("k1.flac", _good("k1")[0][1])])
    _assert_bad(shard, "k1", "no JSON member (expected 'k1.json')")


def test_json_that_is_not_utf8(tmp_path):
    shard = _around(tmp_path / "s.tar", [_good("k1")[0], ("k1.json", '{"label": "low"}'.encode("utf-16"))])
    _assert_bad(shard, "k1", "metadata 'k1.json' is not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte")


def test_malformed_json(tmp_path):
    shard = _around(tmp_path / "s.tar", [_good("k1")[0], ("k1.json", b'{"label": ')])
    _assert_bad(shard, "k1", "metadata 'k1.json' is not valid JSON: Expecting value: line 1 column 11 (char 10)")


@pytest.mark.parametrize(
    "folder, reason",
    [("/data/", "member '/data/k1.flac' has an absolute path"), ("../", "member '../k1.flac' has a '..' path component"),
     ("a/../", "member 'a/../k1.flac' has a '..' path component")],
)
def test_members_with_absolute_or_parent_paths(tmp_path, folder, reason):
    shard = _around(tmp_path / "s.tar", [(folder + name, data) for name, data in _good("k1")])
    _assert_bad(shard, f"{folder}k1", reason)


def test_keys_with_dots(tmp_path):
    shard = _around(tmp_path / "s.tar", [("k1.v2.flac", _good("k1")[0][1]), ("k1.v2.json", META)])
    _assert_bad(shard, "k1.v2", "key contains a dot (member 'k1.v2.flac'); keys must not contain dots in WebDataset")


@pytest.mark.parametrize("duplicate", ["member", "key", "audio"])
def test_duplicate_members(tmp_path, duplicate):
    flac = _good("k1")[0][1]
    if duplicate == "member":  # the same name twice in a row
        shard = _around(tmp_path / "s.tar", [("k1.flac", flac), ("k1.flac", flac), ("k1.json", META)])
        _assert_bad(shard, "k1", "duplicate member 'k1.flac'")
    elif duplicate == "key":  # a key that comes back later in the shard
        shard = _tar(tmp_path / "s.tar", _good("k0") + _good("k2") + _good("k0"))
        reason = "duplicate key: an earlier sample of this shard has the same key"
        with pytest.raises(DataError, match=f"^task 'toy', split 'train', file {shard}, sample 'k0': {reason}$"):
            list(iter_audio([shard], SR, "toy", "train"))
        out = list(iter_audio([shard], SR, "toy", "train", on_bad_sample="skip"))
        assert [(type(s).__name__, s.key, s.position) for s in out] == [
            ("AudioSample", "k0", 0), ("AudioSample", "k2", 1), ("SkippedSample", "k0", 2),
        ]
        assert out[2].reason == reason
    else:  # two audio files for one key
        wav = _wav(tone(300.0, 0.25))
        shard = _around(tmp_path / "s.tar", [("k1.flac", flac), ("k1.wav", wav), ("k1.json", META)])
        _assert_bad(shard, "k1", "more than one audio member ('k1.flac', 'k1.wav')")


def test_links_are_not_samples(tmp_path):
    shard = tmp_path / "s.tar"
    _tar(shard, _good("k0"))
    with tarfile.open(shard, "a") as tar:  # append: k1.flac a symbolic link, then the rest
        link = tarfile.TarInfo("k1.flac")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for name, data in [("k1.json", META)] + _good("k2"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _assert_bad(str(shard), "k1", "member 'k1.flac' is a symbolic link, not a regular file")


def test_folders_and_members_without_a_key_are_not_samples(tmp_path):
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        folder = tarfile.TarInfo("clips")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in [("README", b"hi"), (".DS_Store", b"x"), ("clips/._k0.flac", b"resource fork")] + [
            (f"clips/{name}", data) for name, data in _good("k0")
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = list(iter_audio([str(shard)], SR, "toy", "train"))
    assert [(s.key, s.position) for s in out if not isinstance(s, LeftOut)] == [("clips/k0", 0)]
    assert sorted(s.key for s in out if isinstance(s, LeftOut)) == [".DS_Store", "README", "clips/._k0.flac"]


# ------------------------------------------------------------------------------------------- shards


def _shard_error(shard: str, mode: str) -> str:
    with pytest.raises(DataError) as err:
        list(iter_audio([shard], SR, "toy", "train", on_bad_sample=mode))
    return str(err.value)


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_unreadable_shards_stop_in_both_modes(tmp_path, mode):
    missing = str(tmp_path / "missing.tar")
    assert _shard_error(missing, mode).startswith(f"task 'toy', split 'train': cannot read shard {missing}: [Errno 2] No such file")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    assert _shard_error(str(garbage), mode) == (
        f"task 'toy', split 'train': cannot read shard {garbage}: not a tar archive (plain, gzip, bzip2 or xz)"
    )
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert _shard_error(str(empty), mode) == f"task 'toy', split 'train': cannot read shard {empty}: empty file"


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_truncated_shards_stop_in_both_modes(tmp_path, mode):
    members = _good("k0") + _good("k1")
    whole = _tar(tmp_path / "whole.tar", members)
    data = open(whole, "rb").read()
    with tarfile.open(whole) as tar:
        flac = tar.getmember("k1.flac")
    inside = tmp_path / "inside.tar"
    inside.write_bytes(data[: flac.offset_data + 100])
    assert _shard_error(str(inside), mode) == (
        f"task 'toy', split 'train': cannot read shard {inside}: truncated: the file ends inside member 'k1.flac'"
    )
    # cut exactly after the last member: every member is whole, the end-of-archive zero blocks are missing
    boundary = _tar(tmp_path / "boundary.tar", members, end=False)
    assert _shard_error(boundary, mode) == (
        f"task 'toy', split 'train': cannot read shard {boundary}: "
        "truncated: the file ends after member 'k1.json' without the end-of-archive zero blocks"
    )
    header = tmp_path / "header.tar"
    header.write_bytes(open(boundary, "rb").read() + data[flac.offset : flac.offset + 100])
    assert _shard_error(str(header), mode).endswith("truncated: the file ends inside the tar header after member 'k1.json'")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(open(boundary, "rb").read() + b"x" * 512)
    assert _shard_error(str(junk), mode).endswith("invalid tar header after member 'k1.json': invalid header")
    assert [s.key for s in iter_audio([whole], SR, "toy", "train", on_bad_sample=mode)] == ["k0", "k1"]


def test_a_shard_without_audio_stops_in_both_modes(tmp_path):
    shard = _tar(tmp_path / "s.tar", [("k0.json", META), ("k1.json", META)])
    for mode in ("error", "skip"):
        assert _shard_error(shard, mode).startswith(f"task 'toy', split 'train': shard {shard} holds no audio file")


# ------------------------------------------------------------------------------------------- modes


def test_positions_count_bad_samples_and_strides_split_them(tmp_path):
    first = _tar(tmp_path / "a.tar", _good("k0") + [("k1.json", META)] + _good("k2"))
    second = _tar(tmp_path / "b.tar", [("k3.flac", b"junk"), ("k3.json", META)] + _good("k4"))
    everything = list(iter_audio([first, second], SR, "toy", "train", on_bad_sample="skip"))
    assert [(type(s).__name__, s.key, s.position) for s in everything] == [
        ("AudioSample", "k0", 0), ("SkippedSample", "k1", 1), ("AudioSample", "k2", 2),
        ("SkippedSample", "k3", 3), ("AudioSample", "k4", 4),
    ]
    assert everything[3].url == second
    parts = [list(iter_audio([first, second], SR, "toy", "train", stride=(k, 2), on_bad_sample="skip")) for k in (0, 1)]
    assert [[s.key for s in part] for part in parts] == [["k0", "k2", "k4"], ["k1", "k3"]]
    assert [s.key for s in iter_audio([first, second], SR, "toy", "train", stride=(0, 2))] == ["k0", "k2", "k4"]


def test_background_decoding_skips_and_names_bad_samples(tmp_path):
    shard = _around(tmp_path / "s.tar", [("k1.flac", b"not audio at all"), ("k1.json", b"{")])
    ahead = list(prefetch_audio([shard], SR, "toy", "train", workers=2, on_bad_sample="skip"))
    assert [(type(s).__name__, s.key, s.position) for s in ahead] == [
        ("AudioSample", "k0", 0), ("SkippedSample", "k1", 1), ("AudioSample", "k2", 2),
    ]
    assert ahead[1].reason == "metadata 'k1.json' is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    with pytest.raises(DataError) as err:
        list(prefetch_audio([shard], SR, "toy", "train", workers=2))
    assert str(err.value) == f"task 'toy', split 'train', file {shard}, sample 'k1': {ahead[1].reason}"


def test_on_bad_sample_must_be_error_or_skip(tmp_path):
    shard = _tar(tmp_path / "s.tar", _good("k0"))
    for read in (iter_audio, prefetch_audio):
        with pytest.raises(ValueError, match="on_bad_sample must be 'error' or 'skip', got 'ignore'"):
            read([shard], SR, "toy", "train", on_bad_sample="ignore")
