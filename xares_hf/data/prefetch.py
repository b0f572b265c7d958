"""Decode ahead of the encoder: a split's samples come from a ``torch`` DataLoader worker process.

Reading tar members, decoding and resampling then run while the encoder works on the previous batch, on
the other core. One worker keeps the split's order (the cache and the labels depend on it); an error in
the worker reaches the caller as the same :class:`DataError` with the task, shard and key in its message.
"""

from __future__ import annotations

from typing import Iterator

import torch

from .audio_dataset import ON_BAD_SAMPLE, AudioSample, LeftOut, SkippedSample, iter_audio
from .shards import DataError


class _SplitStream(torch.utils.data.IterableDataset):
    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def __iter__(self) -> Iterator[AudioSample | SkippedSample | LeftOut]:
        torch.set_num_threads(1)  # decoding needs one core; leave the rest to the encoder
        return iter_audio(**self.kwargs)


def prefetch_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
    background: bool = True,
    ahead: int = 64,
    on_bad_sample: str = "error",
    max_duration: float | None = None,
    resampler: str = "ffmpeg",
) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    """``iter_audio``, decoded up to ``ahead`` samples in advance by a worker process (in this one if not ``background``).

    ``on_bad_sample`` is ``iter_audio``'s: ``"error"`` raises :class:`DataError` at a bad sample, ``"skip"``
    yields a :class:`SkippedSample` in its place.
    """
    if on_bad_sample not in ON_BAD_SAMPLE:
        raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    kwargs = dict(files=files, sampling_rate=sampling_rate, task=task, split=split, crop_length=crop_length,
                  stride=stride, on_bad_sample=on_bad_sample, max_duration=max_duration, resampler=resampler)
    if not background:
        return iter_audio(**kwargs)
    return _in_background(kwargs, ahead)


def _in_background(kwargs: dict, ahead: int) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    loader = torch.utils.data.DataLoader(
        _SplitStream(**kwargs),
        batch_size=None,
        num_workers=1,
        prefetch_factor=ahead,
        collate_fn=lambda sample: sample,
    )
    try:
        yield from loader
    except DataError as err:  # re-raised by the DataLoader with the worker's traceback prepended: keep the message
        raise DataError(str(err).rstrip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
