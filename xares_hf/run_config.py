"""What one evaluation run fixes for every task, checked once: protocol, precision, bad-sample policy, seeds,
layer mode, k-NN, device, decode workers. The API builds it; encoding and probing read it instead of long parameter lists."""

from __future__ import annotations

from dataclasses import dataclass

from .data.audio_dataset import ON_BAD_SAMPLE
from .protocols import Protocol, get_protocol

LAYER_MODES = ("all", "weighted")
MIXED_PRECISION = (None, "no", "bf16", "fp16")


@dataclass(frozen=True)
class RunConfig:
    """A run's settings (frozen; every value checked when it is made)."""

    protocol: Protocol = get_protocol(None)
    mixed_precision: str | None = None  # "bf16" or "fp16" autocast while encoding; None or "no": full precision
    on_bad_sample: str = "error"  # "error" stops at a bad sample, "skip" leaves it out and lists it
    seed: int = 42
    seeds: int = 1  # probes trained with seeds seed, seed + 1, ...
    knn: bool = True
    layer_mode: str | None = None  # "all" (a layer sweep), "weighted" (a learnt mix) or None (one layer)
    device: str = "cpu"
    decode_workers: int | None = None  # processes decoding ahead of the encoder; None: data.decode_workers(device)

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", get_protocol(self.protocol))  # a name is accepted too
        if self.on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {self.on_bad_sample!r}")
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer, got {self.seeds!r}")
        if self.layer_mode is not None and self.layer_mode not in LAYER_MODES:
            raise ValueError(f"layer mode must be one of {LAYER_MODES} or None, got {self.layer_mode!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be 'bf16', 'fp16', 'no' or None, got {self.mixed_precision!r}")
        if self.decode_workers is not None and (not isinstance(self.decode_workers, int) or isinstance(self.decode_workers, bool)
                                                or self.decode_workers < 0):
            raise ValueError(f"decode_workers must be a non-negative integer or None, got {self.decode_workers!r}")
        if self.mixed_precision == "no":
            object.__setattr__(self, "mixed_precision", None)

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]
