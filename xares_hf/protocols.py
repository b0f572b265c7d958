"""The scoring protocols, and every place where they differ: the one owner of the differences.

``"xares-hf"`` (the default) is the corrected protocol: clips encoded in batches of similar length with their
padding trimmed, every crop kept, cosine k-NN, cosine retrieval logits with a clamped scale.

``"xares-0.1.3"`` reproduces what xares 0.1.3's code computes (``pip download --no-deps xares==0.1.3``), where it
differs from its own documentation; each switch below names the upstream file and line it follows. Numbers of
the two protocols are different measurements and are never ranked together. Both resample clips as X-ARES does
(torchaudio's windowed sinc, :mod:`xares_hf.data.decoding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT = "xares-hf"


@dataclass(frozen=True)
class Protocol:
    """What a protocol does at each point where the two differ."""

    name: str
    # Encoding batches: ``batch_size_encode`` clips sorted by length and each output trimmed to its own clip (False),
    # or consecutive clips in the shard's order zero-padded to the longest, every frame of the padded output kept,
    # pooled and probed (True). xares/task.py l. 204-240 (batches of ``batch_size_encode``, the full output of
    # ``encoder(audio)`` stored per clip), xares/audiowebdataset.py l. 175-187 (``pad``: zeros to the longest) and
    # xares/trainer.py l. 25-29, 46-50 (``masked_mean`` over the stored, padded, length). Frame tasks: the probe's
    # loss and segment-F1 also count the padding of each probe batch, with target 0 (xares/trainer.py l. 61-67).
    padded_batches: bool
    # Crops of one clip in one encoding batch: all kept (False), or only the first (True): xares/task.py l. 238 keys
    # every crop ``f"{filename}{enum_item}"`` (clip name + batch number), and webdataset's ``group_by_keys`` drops
    # a sample whose key repeats the one before it (a warning, the crop is gone).
    first_crop_per_batch: bool
    # k-NN similarity: cosine between embeddings ("cosine"), or xares/trainer.py l. 224: ``normalize(
    # train_features.T, dim=1)``, each feature dimension scaled to unit norm over the training set, then the dot
    # product with the L2-normalised query ("per-dimension"). The published X-ARES k-NN table was made with it.
    # Both formulas are in probes/knn.py.
    knn: str
    # Retrieval training logits: scale x cosine with the scale clamped at 100, as CLIP ("cosine"), or
    # xares/models/retrival.py l. 17-18: ``temperature.exp() * emb_x @ emb_y.t()`` on the towers' raw outputs,
    # unclamped ("raw-dot"). Both score recall on cosine similarity (xares/metrics.py l. 183-187).
    retrieval_logits: str
    # The LLM ASR head: xares-hf's ("xares-hf": prompts left-padded, transcripts only as targets, bf16 on a GPU,
    # the epoch chosen on generated dev transcripts), or xares 0.1.3's ("xares-0.1.3", xares/models/asr.py: text
    # after the padded audio, the separator a target, fp16 on a GPU, the epoch chosen on teacher-forced argmax
    # transcripts; :mod:`xares_hf.probes.asr_xares013`). The CTC head is xares-hf's own in both.
    asr_llm_head: str


PROTOCOLS = {
    "xares-hf": Protocol("xares-hf", padded_batches=False, first_crop_per_batch=False, knn="cosine",
                         retrieval_logits="cosine", asr_llm_head="xares-hf"),
    "xares-0.1.3": Protocol("xares-0.1.3", padded_batches=True, first_crop_per_batch=True, knn="per-dimension",
                            retrieval_logits="raw-dot", asr_llm_head="xares-0.1.3"),
}


def get_protocol(name: str | Protocol | None) -> Protocol:
    """The protocol of this name (``None``: the default); an unknown name is refused, listing the known ones."""
    if isinstance(name, Protocol):
        return name
    if name is None:
        return PROTOCOLS[DEFAULT]
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


class BatchSlots:
    """Places in xares 0.1.3's encoding batches of ``size`` consecutive clips (or crops), to find the crops it
    drops: a crop is kept only if no earlier crop of the same clip is in its batch."""

    def __init__(self, size: int) -> None:
        self.size, self.taken, self.clips = size, 0, set()

    def keeps(self, clip: object) -> bool:
        """Take the next place for a crop of ``clip``; False if xares 0.1.3 would drop it."""
        if self.taken % self.size == 0:
            self.clips = set()
        self.taken += 1
        if clip in self.clips:
            return False
        self.clips.add(clip)
        return True

    def batch_full(self) -> bool:
        """True when the places taken so far close a batch."""
        return self.taken % self.size == 0


def pad_to_longest(waves: list[np.ndarray]) -> list[np.ndarray]:
    """The clips zero-padded at the end to the longest (xares/audiowebdataset.py l. 175-187, ``pad``)."""
    longest = max(w.shape[0] for w in waves)
    return [w if w.shape[0] == longest else np.pad(w, (0, longest - w.shape[0])) for w in waves]
