"""Write WebDataset shards (audio + JSON per sample) in the layout X-ARES tasks use."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
import webdataset as wds


def encode_audio(waveform: np.ndarray, sampling_rate: int, fmt: str = "flac") -> bytes:
    """Encode a (samples,) or (samples, channels) float waveform as FLAC/WAV/OGG bytes."""
    buffer = io.BytesIO()
    subtype = "PCM_16" if fmt in ("flac", "wav") else None
    sf.write(buffer, np.asarray(waveform, dtype=np.float32), sampling_rate, format=fmt.upper(), subtype=subtype)
    return buffer.getvalue()


def write_shards(
    samples: Iterable[tuple[str, np.ndarray, int, dict]],
    pattern: str | Path,
    fmt: str = "flac",
    max_count: int = 1000,
) -> list[str]:
    """Write ``(key, waveform, sampling_rate, meta)`` samples to shards named by ``pattern``.

    ``pattern`` holds a printf-style shard number, e.g. ``out/task/train-%06d.tar``, or is one literal
    file name (everything goes in that one tar). Keys must not contain dots (WebDataset groups files by
    the text before the first dot). Tar headers carry no timestamps: same samples, same bytes.
    """
    pattern = str(pattern)
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def records():
        for key, waveform, sampling_rate, meta in samples:
            if "." in key:
                raise ValueError(f"sample key {key!r} contains a dot; WebDataset keys must not")
            yield {"__key__": key, fmt: encode_audio(waveform, sampling_rate, fmt), "json": json.dumps(meta).encode()}

    if "%" not in pattern:
        with wds.TarWriter(pattern, mtime=0) as sink:
            for record in records():
                sink.write(record)
        return [pattern]
    with wds.ShardWriter(pattern, maxcount=max_count, verbose=0, post=written.append, mtime=0) as sink:
        for record in records():
            sink.write(record)
    return written
