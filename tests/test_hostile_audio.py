"""Hostile audio in a task's shards: clips too long for memory, tar members too large to read, absurd sample
values, and members that belong to no sample. Each is named (task, split, shard, sample), skippable, and
bounded in memory; nothing in a shard is dropped without a word.

The memory tests run the reader in a child process that, once its imports are done, limits its address space
(RLIMIT_AS) to what it has then plus BUDGET_MB (torch and ffmpeg reserve gigabytes of address space at import,
more with CUDA builds, so a fixed limit would measure the installation), and measure its peak resident memory
(ru_maxrss) against the size the clip would take decoded whole.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import xares_hf
from helpers import tone, write_card
from xares_hf import evaluate
from xares_hf.data import AudioSample, DataError, LeftOut, encode_audio, iter_audio, prefetch_audio, write_shards

SR = 16_000
META = json.dumps({"label": "low"}).encode()
LONG_S = 9000  # 2.5 hours
DECODED_MB = LONG_S * SR * 4 / 2**20  # the long clip decoded whole at 16 kHz, float32: 549 MiB
BUDGET_MB = 1024  # address space the child may add after its imports; the old reader grew by ~2 GB on the 2.5 h clip


def _good(key: str) -> list[tuple[str, bytes]]:
    return [(f"{key}.flac", encode_audio(tone(300.0, 0.25), SR)), (f"{key}.json", META)]


def _tar(path: Path, members: list[tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.fixture(scope="module")
def silent_flac() -> bytes:
    """2.5 h of 8 kHz silence as FLAC: 0.2 MB of bytes for 549 MiB decoded at 16 kHz."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", 8000, 1, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros(8000 * 600, np.int16)
        for _ in range(LONG_S // 600):
            f.write(block)
    return buffer.getvalue()


def _without_length(flac: bytes) -> bytes:
    """The FLAC with STREAMINFO's total-samples field zeroed: 'length unknown', so only decoding can tell."""
    data = bytearray(flac)
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first; its 36-bit count ends at byte 26
    data[21] &= 0xF0
    data[22:26] = b"\0\0\0\0"
    return bytes(data)


_CHILD = r"""
import json, resource, sys
from xares_hf.data import DataError, iter_audio

def status(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) * 1024

warm, cases, budget = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
list(iter_audio([warm], 16000, "toy", "train", crop_length=1.0, max_duration=60))  # imports, datasets, soundfile
# torchcodec (FFmpeg) loads on first use, 100 MB of libraries: the FLAC files of unknown length go to it
from xares_hf.data.decoding import _Torchcodec
_Torchcodec(open(sys.argv[4], "rb").read(), "warm", None, "warm-up").read(0.0, None)
limit = status("VmSize") + budget
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
results = {}
for case in cases:
    try:
        open("/proc/self/clear_refs", "w").write("5")  # peak RSS from here (else: the peak of all cases so far)
    except OSError:
        pass
    base = status("VmRSS")
    kwargs = dict(crop_length=case["crop_length"], max_duration=case["max_duration"])
    out = results[case["name"]] = {"error": None, "seen": None}
    try:
        if "error" in case["modes"]:
            try:
                for sample in iter_audio([case["shard"]], 16000, "toy", "train", **kwargs):
                    pass
            except DataError as err:
                out["error"] = str(err)
        seen = []
        for sample in iter_audio([case["shard"]], 16000, "toy", "train", on_bad_sample="skip", **kwargs):
            entry = [type(sample).__name__, sample.key.split("#")[0], getattr(sample, "reason", None)]
            if not seen or entry != seen[-1][:3]:
                seen.append(entry + [0])
            seen[-1][3] += 1  # crops of one clip counted, not kept
        out["seen"] = seen
    except Exception as err:  # recorded, so that the other cases still run
        out["raised"] = f"{type(err).__name__}: {err}"[-500:]
    out["growth_mb"] = (status("VmHWM") - base) / 2**20
print(json.dumps(results))
"""


def _sparse_tar(path: Path, big: int) -> str:
    """k0, then k1.wav of ``big`` bytes (a hole in a sparse file: no disk, no time), k1.json, k2."""
    with open(path, "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in _good("k0"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("k1.wav")
            info.size = big
            handle.write(info.tobuf(format=tarfile.GNU_FORMAT))
            handle.seek(big + (-big % 512), os.SEEK_CUR)  # the member's data: a hole
            tar.offset = handle.tell()
            for name, data in [("k1.json", META)] + _good("k2"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


BIG = 3 << 30  # a 3 GiB member: read whole, it outgrows the child's budget


@pytest.fixture(scope="module")
def in_child(tmp_path_factory, silent_flac) -> dict:
    """Each hostile shard read (modes error and skip) in one child process allowed BUDGET_MB more address
    space after its imports (imports take seconds): {case: {"shard", "error", "seen", "growth_mb"}}."""
    root = tmp_path_factory.mktemp("long")
    unknown = _without_length(silent_flac)
    shards = {
        "header": _tar(root / "header.tar", _good("k0") + [("k1.flac", silent_flac), ("k1.json", META)] + _good("k2")),
        "no header": _tar(root / "unknown.tar", _good("k0") + [("k1.flac", unknown), ("k1.json", META)] + _good("k2")),
        "crops": _tar(root / "crops.tar", _good("k0") + [("k1.flac", unknown), ("k1.json", META)] + _good("k2")),
        "big member": _sparse_tar(root / "big.tar", BIG),
    }
    assert os.stat(shards["big member"]).st_blocks * 512 < 2**20, "the file system made the hole real"
    cases = [
        {"name": "header", "max_duration": 3600, "crop_length": None, "modes": ["error", "skip"]},
        {"name": "no header", "max_duration": 300, "crop_length": None, "modes": ["error", "skip"]},
        {"name": "crops", "max_duration": 600, "crop_length": 10.0, "modes": ["skip"]},  # decoding 2.5 h takes seconds
        {"name": "big member", "max_duration": 3600, "crop_length": None, "modes": ["error", "skip"]},
    ]
    for case in cases:
        case["shard"] = shards[case["name"]]
    warm = _tar(root / "warm.tar", _good("w0"))
    env = {**os.environ, "PYTHONPATH": str(Path(xares_hf.__file__).parents[1])}
    warm_flac = root / "warm.flac"
    warm_flac.write_bytes(encode_audio(tone(300.0, 0.25), SR))
    done = subprocess.run([sys.executable, "-c", _CHILD, warm, json.dumps(cases), str(BUDGET_MB << 20), str(warm_flac)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"child died (rc {done.returncode}): {done.stderr[-3000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: {**result, "shard": shards[name]} for name, result in results.items()}


def _prefix(shard: str, key: str = "k1") -> str:
    return f"task 'toy', split 'train', file {shard}, sample '{key}': "


def _around(reason: str) -> list:
    return [["AudioSample", "k0", None, 1], ["SkippedSample", "k1", reason, 1], ["AudioSample", "k2", None, 1]]


# ------------------------------------------------------------------------------------------- long clips


@pytest.mark.parametrize("case", ["header", "no header"])
def test_a_clip_longer_than_max_duration_is_refused_before_it_is_decoded_whole(in_child, case):
    out = in_child[case]
    max_duration = 3600 if case == "header" else 300
    length = "9000.000 s long (its header says)" if case == "header" else "longer than 301 s (decoded that far)"
    reason = (f"audio 'k1.flac' is {length}, more than the card's data.max_duration of {max_duration} s: it was not "
              "decoded (set data.crop_length to cut long clips into crops, or raise data.max_duration)")
    assert out["error"] == _prefix(out["shard"]) + reason
    assert out["seen"] == _around(reason)
    assert out["growth_mb"] < DECODED_MB / 4, out  # at most max_duration of it was decoded (none, with a header)


def test_a_long_clip_with_crop_length_is_cut_into_its_crops_a_window_at_a_time(in_child):
    out = in_child["crops"]
    assert out["seen"] == [["AudioSample", "k0", None, 1], ["AudioSample", "k1", None, LONG_S // 10], ["AudioSample", "k2", None, 1]]
    assert out["growth_mb"] < DECODED_MB / 4, out


def test_a_member_too_large_for_any_clip_is_refused_before_it_is_read(in_child):
    out = in_child["big member"]
    limit = 3600 * 48_000 * 2 * 4 + (16 << 20)
    reason = (f"member 'k1.wav' is {BIG} bytes, more than a clip of the card's data.max_duration can reasonably "
              f"take ({limit} bytes): it was not read (raise data.max_duration if the clip is real)")
    assert out["error"] == _prefix(out["shard"]) + reason
    assert out["seen"] == _around(reason)
    assert out["growth_mb"] < 100, out


def test_crops_of_a_clip_decoded_in_windows_are_those_of_the_whole_clip(tmp_path):
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(SR * 25.3))).astype(np.float32)
    shard = _tar(tmp_path / "s.tar", [("k0.flac", encode_audio(wave, SR)), ("k0.json", META)])
    whole = [s.audio for s in iter_audio([shard], SR, "toy", "train", crop_length=2.0)]
    windows = list(iter_audio([shard], SR, "toy", "train", crop_length=2.0, max_duration=7.0))  # 3 crops a window
    assert [s.key for s in windows] == [f"k0#{i}" for i in range(12)] and len(whole) == 12
    assert all(np.array_equal(a, s.audio) for a, s in zip(whole, windows))
    with pytest.raises(DataError, match="is 25.300 s long .its header says., more than the card's data.max_duration of 7 s"):
        list(iter_audio([shard], SR, "toy", "train", max_duration=7.0))
    assert [s.audio.shape for s in iter_audio([shard], SR, "toy", "train", max_duration=25.4)] == [(wave.size,)]
    wave[15 * SR] = np.nan  # in the third window: the sample is bad, and says that crops of it were given
    shard = _tar(tmp_path / "nan.tar", [("k0.wav", _float_wav(wave)), ("k0.json", META)])
    out = list(iter_audio([shard], SR, "toy", "train", crop_length=2.0, max_duration=7.0, on_bad_sample="skip"))
    assert [s.key for s in out] == [f"k0#{i}" for i in range(6)] + ["k0"]
    assert out[-1].reason == "audio 'k0.wav' has NaN or infinite samples (its first 6 crops were already given)"


# ------------------------------------------------------------------------------------------- sample values


def _float_wav(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, SR, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@pytest.mark.parametrize("peak", [3e38, -3e38, 150.0])
def test_audio_of_absurd_magnitude_is_a_bad_sample_of_the_audio(tmp_path, peak):
    wave = tone(300.0, 0.25)
    wave[100] = peak
    shard = _tar(tmp_path / "s.tar", _good("k0") + [("k1.wav", _float_wav(wave)), ("k1.json", META)] + _good("k2"))
    reason = (f"audio 'k1.wav' has samples of magnitude {abs(peak):.3g}, more than 100 times full scale: "
              "garbage or a wrong scale (decoded audio lies in [-1, 1])")
    with pytest.raises(DataError) as err:
        list(iter_audio([shard], SR, "toy", "train"))
    assert str(err.value) == _prefix(shard) + reason
    out = list(iter_audio([shard], SR, "toy", "train", on_bad_sample="skip"))
    assert [(type(s).__name__, s.key) for s in out] == [("AudioSample", "k0"), ("SkippedSample", "k1"), ("AudioSample", "k2")]
    assert out[1].reason == reason


def test_float_audio_a_little_over_full_scale_is_kept(tmp_path):
    wave = 1.8 * tone(300.0, 0.25)
    shard = _tar(tmp_path / "s.tar", [("k0.wav", _float_wav(wave)), ("k0.json", META)])
    (sample,) = iter_audio([shard], SR, "toy", "train")
    assert abs(float(np.abs(sample.audio).max()) - 0.9) < 1e-3


# ------------------------------------------------------------------------------------------- members left out


def _with_strays(path: Path) -> str:
    """A folder entry, README, .DS_Store, a resource fork and a sample's extra k0.txt around samples k0, k1."""
    with tarfile.open(path, "w") as tar:
        folder = tarfile.TarInfo("clips")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        members = [("README", b"hi"), (".DS_Store", b"x"), ("clips/._k0.flac", b"resource fork")]
        members += [(f"clips/{name}", data) for name, data in _good("k0")] + [("clips/k0.txt", b"a transcript")]
        members += [(f"clips/{name}", data) for name, data in _good("k1")]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


STRAYS = [
    ("README", "member 'README' has no extension: it belongs to no sample"),
    (".DS_Store", "member '.DS_Store' is a hidden file (its name starts with a dot): it belongs to no sample"),
    ("clips/._k0.flac", "member 'clips/._k0.flac' is a hidden file (its name starts with a dot): it belongs to no sample"),
    ("clips/k0.txt", "member 'clips/k0.txt' is neither audio (flac, wav, mp3, ogg, opus, m4a, sox, wma) nor JSON: it was not read"),
]


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_members_of_no_sample_and_extra_members_are_listed_as_left_out(tmp_path, mode):
    shard = _with_strays(tmp_path / "s.tar")
    out = list(iter_audio([shard], SR, "toy", "train", on_bad_sample=mode))
    left = [s for s in out if isinstance(s, LeftOut)]
    assert sorted((s.key, s.reason) for s in left) == sorted(STRAYS) and all(s.url == shard for s in left)
    samples = [s for s in out if not isinstance(s, LeftOut)]
    assert [(type(s), s.key, s.position) for s in samples] == [(AudioSample, "clips/k0", 0), (AudioSample, "clips/k1", 1)]
    parts = [list(iter_audio([shard], SR, "toy", "train", stride=(k, 2), on_bad_sample=mode)) for k in (0, 1)]
    assert [[s.key for s in part if isinstance(s, AudioSample)] for part in parts] == [["clips/k0"], ["clips/k1"]]
    assert [len([s for s in part if isinstance(s, LeftOut)]) for part in parts] == [4, 0]  # listed once


def test_a_run_lists_what_it_left_out_in_both_modes(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "valid", "test"):
        write_shards([(f"{split}{i}", tone(300 if i % 2 else 1500), SR, {"label": "low" if i % 2 else "high"})
                      for i in range(6)], data / "toy" / f"{split}-%03d.tar")
    with tarfile.open(data / "toy" / "train-000.tar", "a") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    card = write_card(tmp_path / "toy.yaml", probe={"epochs": 2, "learning_rate": 0.01, "batch_size": 4, "batch_size_encode": 4})
    for mode in ("error", "skip"):
        results = evaluate("log-mel", tasks=[card], data_dir=data, cache_dir=tmp_path / f"c-{mode}",
                           output_dir=tmp_path / f"out-{mode}", on_bad_sample=mode, knn=False)
        assert [(x["split"], x["key"], x["reason"]) for x in results["toy"].left_out] == [
            ("train", "README", "member 'README' has no extension: it belongs to no sample")]


def test_two_json_members_of_one_sample_are_a_bad_sample(tmp_path):
    shard = _tar(tmp_path / "s.tar", _good("k0") + [_good("k1")[0], ("k1.json", META), ("k1.JSON", b'{"label": "high"}')] + _good("k2"))
    reason = "more than one JSON member ('k1.json', 'k1.JSON')"
    with pytest.raises(DataError) as err:
        list(iter_audio([shard], SR, "toy", "train"))
    assert str(err.value) == _prefix(shard) + reason
    out = list(iter_audio([shard], SR, "toy", "train", on_bad_sample="skip"))
    assert [(type(s).__name__, s.key, getattr(s, "reason", None)) for s in out] == [
        ("AudioSample", "k0", None), ("SkippedSample", "k1", reason), ("AudioSample", "k2", None)]


def test_background_decoding_passes_left_out_members_on(tmp_path):
    shard = _with_strays(tmp_path / "s.tar")
    out = list(prefetch_audio([shard], SR, "toy", "train", workers=2))
    assert sorted((s.key, s.reason) for s in out if isinstance(s, LeftOut)) == sorted(STRAYS)
    assert [s.key for s in out if isinstance(s, AudioSample)] == ["clips/k0", "clips/k1"]
