"""soundfile reads WAV and FLAC with FFmpeg's samples; torchcodec decodes the rest; without torchcodec the same
samples and scores come out, and a clip only FFmpeg can decode stops the run with what to install."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from xares_hf.data import iter_audio, write_shards
from xares_hf.data.decoding import SOUNDFILE_SUBTYPES, Clip, _Soundfile, _Torchcodec, decode_audio

SR = 16_000


def _encoded(fmt: str, subtype: str, channels: int, rate: int = SR, seconds: float = 1.3, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    wave = np.clip(0.3 * rng.standard_normal((int(seconds * rate), channels)), -1, 1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt,subtype", sorted((f, s) for f, subs in SOUNDFILE_SUBTYPES.items() for s in subs))
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_soundfile_gives_ffmpegs_samples_bit_for_bit(fmt, subtype, channels):
    data = _encoded(fmt, subtype, channels)
    clip = Clip(data, "k0", SR)
    assert isinstance(clip.source, _Soundfile)
    ffmpeg = _Torchcodec(data, "k0", SR, "test")
    ours, theirs = clip.read(0.0, None), ffmpeg.read(0.0, None)
    assert ours.shape == theirs.shape == (channels, int(1.3 * SR))
    assert np.array_equal(ours, theirs)
    window = clip.read(0.25, 0.75)  # a window, as long clips are cut into crops
    assert np.array_equal(window, theirs[:, 4000:12000])


def test_torchcodec_decodes_what_soundfile_should_not():
    assert isinstance(Clip(_encoded("OGG", "VORBIS", 1), "k0", SR).source, _Torchcodec)  # lossy: decoders differ
    assert isinstance(Clip(_encoded("WAV", "PCM_16", 1, rate=44_100), "k0", SR, resampler="ffmpeg").source, _Torchcodec)
    assert isinstance(Clip(_encoded("WAV", "IMA_ADPCM", 1), "k0", SR).source, _Torchcodec)
    # the sinc resampler (the default) is torch: soundfile reads the clip at its rate, then it is resampled
    data = _encoded("FLAC", "PCM_16", 2, rate=44_100)
    clip = Clip(data, "k0", SR)
    assert isinstance(clip.source, _Soundfile)
    from xares_hf.data.sinc_resample import sinc_resample

    native = _Torchcodec(data, "k0", None, "test").read(0.0, None)
    assert np.array_equal(clip.read(0.0, None), sinc_resample(native, 44_100, SR))


def test_a_file_soundfile_cannot_finish_gets_ffmpegs_verdict():
    data = _encoded("FLAC", "PCM_16", 1, seconds=2.0)
    cut = data[: len(data) * 2 // 3]  # libsndfile raises "lost sync" on it
    clip = Clip(cut, "k0.flac", SR)
    assert isinstance(clip.source, _Soundfile)
    with pytest.raises(Exception) as ffmpeg:
        _Torchcodec(cut, "k0.flac", SR, "test").read(0.0, None)
    with pytest.raises(Exception) as ours:
        decode_audio(cut, "k0.flac", SR)
    assert str(ours.value) == str(ffmpeg.value) == ("cannot decode audio 'k0.flac': Could not push packet to decoder: "
                                                     "Invalid data found when processing input")


def _shards(tmp_path, rate: int = SR) -> list[str]:
    rng = np.random.default_rng(1)
    clips = [(f"k{i}", (0.2 * rng.standard_normal(int((0.4 + 0.1 * i) * rate))).astype(np.float32), rate,
              {"label": "a" if i % 2 else "b"}) for i in range(6)]
    return (write_shards(clips[:3], tmp_path / "flac-%03d.tar", fmt="flac")
            + write_shards(clips[3:], tmp_path / "wav-%03d.tar", fmt="wav"))


_WITHOUT_TORCHCODEC = """
import sys
sys.modules["torchcodec"] = sys.modules["torchcodec.decoders"] = None  # as without FFmpeg: importing it fails
"""


def _in_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT_TORCHCODEC + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_without_torchcodec_the_same_samples_come_out(tmp_path):
    files = _shards(tmp_path)
    out = tmp_path / "samples.npz"
    child = _in_child(f"""
        import numpy as np
        from xares_hf.data import iter_audio, prefetch_audio
        here = list(iter_audio({files!r}, {SR}, "toy", "train"))
        ahead = list(prefetch_audio({files!r}, {SR}, "toy", "train", workers=2))
        assert [s.key for s in here] == [s.key for s in ahead]
        np.savez({str(out)!r}, **{{s.key: s.audio for s in here}}, **{{"w" + s.key: s.audio for s in ahead}})
    """)
    assert child.returncode == 0, child.stderr
    saved = np.load(out)
    with_torchcodec = {s.key: s.audio for s in iter_audio(files, SR, "toy", "train")}
    assert sorted(with_torchcodec) == [f"k{i}" for i in range(6)]
    for key, audio in with_torchcodec.items():
        assert np.array_equal(saved[key], audio) and np.array_equal(saved["w" + key], audio)
        reference = _Torchcodec(sf_bytes := _member(files, key), key, SR, "test").read(0.0, None)[0]
        assert np.array_equal(audio, reference), f"{key}: soundfile and FFmpeg differ ({len(sf_bytes)} bytes)"


def _member(files: list[str], key: str) -> bytes:
    import tarfile

    for path in files:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.split(".")[0] == key and not member.name.endswith(".json"):
                    return tar.extractfile(member).read()
    raise KeyError(key)


def test_without_torchcodec_a_clip_for_ffmpeg_to_resample_says_what_to_install(tmp_path):
    files = _shards(tmp_path, rate=22_050)
    child = _in_child(f"""
        from xares_hf.data import DecoderUnavailable, iter_audio, prefetch_audio
        for read, kw in ((iter_audio, {{}}), (prefetch_audio, {{"workers": 2}})):
            try:
                list(read({files!r}, {SR}, "toy", "train", on_bad_sample="skip", resampler="ffmpeg", **kw))
            except DecoderUnavailable as err:
                print(err)
            else:
                raise SystemExit("no error")
        # torchaudio's sinc resampler (the default) needs no FFmpeg
        print(len(list(iter_audio({files!r}, {SR}, "toy", "train"))))
    """)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.strip().splitlines()
    expected = (f"task 'toy', split 'train', file {files[0]}, sample 'k0': audio 'k0.flac' is at 22050 Hz and is "
                "resampled to 16000 Hz by FFmpeg (resampler='ffmpeg'), but torchcodec cannot be loaded (import of "
                "torchcodec.decoders halted; None in sys.modules): install FFmpeg (e.g. `apt-get install "
                "ffmpeg`) so that torchcodec can load; WAV and FLAC at the encoder's rate need neither")
    assert lines[0] == lines[1] == expected
    assert lines[2] == "6"


def test_without_torchcodec_the_same_scores(tmp_path):
    from xares_hf import evaluate
    from xares_hf.suites import build_mini_suite

    suite = build_mini_suite(tmp_path / "mini", size="tiny", seed=0)
    card = str(suite / "cards" / "mini_keywords.yaml")
    run = dict(tasks=[card], data_dir=str(suite), output_dir=None, download=False)
    child = _in_child(f"""
        import json
        from xares_hf import evaluate
        r = evaluate("log-mel", cache_dir={str(tmp_path / "c1")!r}, **{run!r})
        print(json.dumps({{"mlp": r.tasks[0].mlp, "knn": r.tasks[0].knn, "n": r.tasks[0].eval_size}}))
    """)
    assert child.returncode == 0, child.stderr
    without = json.loads(child.stdout.strip().splitlines()[-1])
    here = evaluate("log-mel", cache_dir=str(tmp_path / "c2"), **run).tasks[0]
    assert without == {"mlp": here.mlp, "knn": here.knn, "n": here.eval_size}
    assert here.eval_size > 0  # tests/test_scores_unchanged.py pins these scores to those of FFmpeg's decoding
