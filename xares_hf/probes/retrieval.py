"""The X-ARES audio-text retrieval probe (Clotho): an audio MLP and a bag-of-tokens text MLP trained contrastively.

Faithful to X-ARES' ``RetrivalMLP`` / ``AudioTextContrastiveLoss``: the audio tower is LayerNorm -> Linear -> GELU ->
Linear on pooled clip embeddings; the text tower embeds token ids with a trainable ``nn.Embedding`` (no pretrained
weights, only the tokenizer's vocabulary is borrowed), applies Linear -> GELU -> Linear per token and averages over the
non-padding tokens. Trained like the linear probe: Adam, cosine LR down to 0.1x stepped per epoch, the epoch scoring
best on valid is kept.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from .. import distributed
from ..store import Rows
from .layer_mix import layer_weights, with_layer_mix
from .trainer import Fit, fit, in_batches

logger = logging.getLogger("xares_hf")

TRAINED_WORDPIECE = "trained-wordpiece"
MAX_LOGIT_SCALE = 100.0


@dataclass
class RetrievalResult:
    """The trained probe's test embeddings (L2-normalised, so a dot product is the cosine) and its selection history."""

    audio_embeddings: np.ndarray  # (n_test_clips, E) from the audio tower
    text_embeddings: np.ndarray  # (n_test_captions, E) from the text tower
    caption_owner: np.ndarray  # (n_test_captions,) int64: index of the clip each caption belongs to
    best_epoch: int
    valid_scores: list[float]
    tokenizer: str  # what tokenized the text: the AutoTokenizer id/path, or "trained-wordpiece" (fallback)
    layer_weights: list[float] | None = None  # learnt weights over stacked layers (``layers > 1``)
    fit: Fit | None = None


class RetrievalHead(torch.nn.Module):
    """The two towers and the learnable temperature (a logit scale, initialised to 1/0.07 as in CLIP and X-ARES)."""

    def __init__(self, dim: int, vocab_size: int, embed_dim: int):
        super().__init__()
        self.audio = torch.nn.Sequential(
            torch.nn.LayerNorm(dim),
            torch.nn.Linear(dim, embed_dim),
            torch.nn.GELU(),
            torch.nn.Linear(embed_dim, embed_dim),
        )
        self.token_embedding = torch.nn.Embedding(vocab_size, embed_dim)
        self.text = torch.nn.Sequential(
            torch.nn.Linear(embed_dim, embed_dim), torch.nn.GELU(), torch.nn.Linear(embed_dim, embed_dim)
        )
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio(x)

    def embed_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean of the per-token outputs over the first ``lengths`` (non-padding) positions of each row."""
        ids = ids[:, : max(int(lengths.max()), 1)]  # right-padded: drop columns that are padding in every row
        mask = (torch.arange(ids.shape[1]) < lengths[:, None]).unsqueeze(-1).float()
        tokens = self.text(self.token_embedding(ids))
        return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def _embedding_regulariser(e: torch.Tensor) -> torch.Tensor:
    # X-ARES' term, taken as is: mean(|e|) / ||e||_2 over the whole (batch, E) tensor of raw tower outputs. It is
    # scale-invariant and tiny (about 1/sqrt(batch*E)); it mildly favours sparse embeddings.
    return e.abs().mean() / e.pow(2).sum().sqrt().clamp(min=1e-12)


def contrastive_loss(head: RetrievalHead, audio: torch.Tensor, text: torch.Tensor, raw_logits: bool = False) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (row i of ``audio`` pairs with row i of ``text``) plus X-ARES' regulariser.

    The similarity is the cosine (both sides L2-normalised, the standard CLIP form) times the learnable scale; X-ARES
    uses the raw dot product in its loss but the cosine at evaluation, so normalising here aligns training with
    evaluation. Other rows are all negatives, even where they are another caption of the same clip. ``raw_logits``
    is xares 0.1.3's form (protocol "xares-0.1.3"): the unclamped scale times the raw towers' dot product.
    """
    if raw_logits:
        logits = head.logit_scale.exp() * audio @ text.t()
    else:
        scale = head.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        logits = scale * F.normalize(audio, dim=-1) @ F.normalize(text, dim=-1).t()
    targets = torch.arange(len(logits))
    loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    return loss + _embedding_regulariser(audio) + _embedding_regulariser(text)


def _check_split(name: str, split: tuple[Rows | np.ndarray, list[list[str]]]) -> tuple[Rows, list[list[str]]]:
    embeddings, captions = split
    if not isinstance(embeddings, Rows):
        array = np.asarray(embeddings, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"{name} split: clip embeddings must be 2-D (clips, dim), got shape {array.shape}")
        embeddings = Rows.from_array(array)
    if len(embeddings) != len(captions):
        raise ValueError(
            f"{name} split: {len(embeddings)} clip embeddings but {len(captions)} caption lists; they must match"
        )
    for clip, clip_captions in enumerate(captions):
        if isinstance(clip_captions, str):
            raise ValueError(f"{name} split, clip {clip}: expected a list of captions, got a single string")
        if len(clip_captions) == 0:
            raise ValueError(f"{name} split, clip {clip} has no captions; every clip needs at least one")
        for k, caption in enumerate(clip_captions):
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError(f"{name} split, clip {clip}, caption {k} is empty: {caption!r}")
    return embeddings, captions


def _flatten(captions: list[list[str]]) -> tuple[list[str], np.ndarray]:
    texts = [caption for clip_captions in captions for caption in clip_captions]
    owner = np.repeat(np.arange(len(captions), dtype=np.int64), [len(c) for c in captions])
    return texts, owner


def _train_wordpiece(texts: list[str], vocab_size: int = 5000):
    """A lowercasing WordPiece tokenizer (BERT normaliser and pre-tokenizer) whose vocabulary is learnt from ``texts``.

    The vocabulary is [PAD], [UNK], every character seen (as a word start and as a ``##`` continuation), then the most
    frequent whole words (ties broken alphabetically) up to ``vocab_size``; a word outside it is split greedily into
    the longest known pieces, as WordPiece does. It is built here rather than by ``tokenizers``' WordPieceTrainer
    because that trainer is not deterministic: its merges break count ties by hash order, which changes from run to
    run, and so would the vocabulary and thus the probe's results.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    normaliser, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normaliser.normalize_str(text))
    )
    chars = sorted({ch for word in counts for ch in word})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", *chars, *(f"##{ch}" for ch in chars)])}
    for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normaliser, pre_tokenizer
    return tokenizer


def _make_encoder(
    name: str | None, train_texts: list[str], max_tokens: int
) -> tuple[Callable[[list[str]], list[list[int]]], int, int, str]:
    """Returns ``(encode, vocab_size, pad_id, label)``; ``encode`` maps texts to unpadded id lists of <= max_tokens."""
    if name is not None:
        try:
            from transformers import AutoTokenizer

            pretrained = AutoTokenizer.from_pretrained(name)
        except Exception as error:  # offline and not cached, no such repo, not a tokenizer, ...
            logger.warning(
                "retrieval probe: tokenizer %r is unavailable (%s: %s); training a WordPiece tokenizer on the "
                "training captions instead",
                name,
                type(error).__name__,
                error,
            )
        else:
            if pretrained.pad_token_id is None:
                pretrained.add_special_tokens({"pad_token": "[PAD]"})

            def encode(texts: list[str]) -> list[list[int]]:
                if not texts:
                    return []
                return pretrained(texts, truncation=True, max_length=max_tokens)["input_ids"]

            return encode, len(pretrained), int(pretrained.pad_token_id), name
    wordpiece = _train_wordpiece(train_texts)
    wordpiece.enable_truncation(max_tokens)
    return (
        lambda texts: [e.ids for e in wordpiece.encode_batch(texts)],
        wordpiece.get_vocab_size(),
        wordpiece.token_to_id("[PAD]"),
        TRAINED_WORDPIECE,
    )


def _pad(ids: list[list[int]], pad_id: int, max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pads to ``max_tokens``; returns ``(ids (n, max_tokens) int64, lengths (n,) int64)``."""
    out = torch.full((len(ids), max_tokens), pad_id, dtype=torch.long)
    lengths = torch.zeros(len(ids), dtype=torch.long)
    for row, seq in enumerate(ids):
        seq = seq[:max_tokens]
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        lengths[row] = len(seq)
    return out, lengths


class _Towers:
    """The trainer's view of the retrieval head: one training item per caption, paired with its clip's row."""

    def __init__(self, x: Rows, ids: torch.Tensor, lengths: torch.Tensor, owner: np.ndarray, valid: tuple,
                 score: Callable, vocab_size: int, embed_dim: int, batch_size: int, layers: int,
                 raw_logits: bool = False) -> None:
        self.x, self.ids, self.lengths, self.owner, self.valid = x, ids, lengths, owner, valid
        self.raw_logits = raw_logits
        self.score, self.batch_size = score, batch_size
        self.module = RetrievalHead(x.dim // layers, vocab_size, embed_dim)
        self.module.audio = with_layer_mix(self.module.audio, layers)

    def batch_loss(self, mine: list[int], batch: list[int]) -> torch.Tensor:
        audio = self.module.embed_audio(torch.from_numpy(self.x.take(self.owner[mine])))
        text = self.module.embed_text(self.ids[mine], self.lengths[mine])
        world = distributed.world_size()
        if world == 1:
            return contrastive_loss(self.module, audio, text, self.raw_logits)
        # the loss is over the whole global batch (every caption is every other clip's negative): gather both towers'
        # outputs with their gradients; each process's loss is the whole one over ``world`` (see the trainer)
        sizes = [len(batch[r::world]) for r in range(world)]
        audio, text = distributed.gather_with_grad(audio, sizes), distributed.gather_with_grad(text, sizes)
        return contrastive_loss(self.module, audio, text, self.raw_logits) / world

    def embed(self, x: Rows, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """L2-normalised audio and text embeddings (each process its share, gathered)."""
        self.module.eval()
        empty = np.zeros((0, self.module.token_embedding.embedding_dim), np.float32)

        def audio(rows: Rows) -> np.ndarray:
            with torch.inference_mode():
                out = [F.normalize(self.module.embed_audio(torch.from_numpy(rows.take(b))), dim=-1)
                       for b in in_batches(len(rows), self.batch_size)]
            return torch.cat(out).numpy().astype(np.float32) if out else empty

        def text(captions: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out = [F.normalize(self.module.embed_text(ids[captions[b]], lengths[captions[b]]), dim=-1)
                       for b in in_batches(len(captions), self.batch_size)]
            return torch.cat(out).numpy().astype(np.float32) if out else empty

        return distributed.predict_all(audio, x), distributed.predict_all(text, np.arange(len(ids)))

    def validation_score(self) -> float:
        x, ids, lengths, owner = self.valid
        return float(self.score(*self.embed(x, ids, lengths), owner))


def _clamp_scale(towers: _Towers) -> None:
    with torch.no_grad():  # CLIP's clamp: keep the scale (not just its use) at most 100
        towers.module.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))


def train_retrieval_probe(
    train: tuple[Rows | np.ndarray, list[list[str]]],
    valid: tuple[Rows | np.ndarray, list[list[str]]],
    test: tuple[Rows | np.ndarray, list[list[str]]],
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
    tokenizer: str | None = "google-bert/bert-base-uncased",
    embed_dim: int = 1024,
    epochs: int = 20,
    learning_rate: float = 1e-3,
    batch_size: int = 128,
    seed: int = 42,
    max_tokens: int = 64,
    desc: str = "retrieval",
    layers: int = 1,
    raw_logits: bool = False,
) -> RetrievalResult:
    """Train the two towers on ``train`` (pooled clip embeddings and each clip's captions), keep the epoch scoring best
    on ``valid`` (``score(audio_emb, text_emb, caption_owner)``, higher is better, e.g. Recall@1), embed ``test``.

    - One training sample per caption: the clip's embedding paired with that caption, shuffled each epoch; a batch
      may hold several captions of the same clip, which then count as each other's negatives (as in X-ARES).
    - Loss: symmetric InfoNCE on L2-normalised embeddings (cosine similarity times a learnable logit scale, initialised
      to 1/0.07 and clamped to at most 100), plus X-ARES' mean(|e|)/||e||_2 regulariser on each tower's raw output.
    - Returned embeddings (valid ones passed to ``score``, and the test ones) are L2-normalised: dot product = cosine.
    - Text is tokenized by ``AutoTokenizer.from_pretrained(tokenizer)`` (only its vocabulary is used; the token
      embeddings are trained from scratch). If it cannot be loaded (e.g. offline and not cached) or ``tokenizer`` is
      None, a WordPiece tokenizer is trained on the training captions only, a warning is logged, and
      ``RetrievalResult.tokenizer`` says ``"trained-wordpiece"``. Token sequences are truncated to ``max_tokens``.

    ``raw_logits``: xares 0.1.3's training logits (the raw dot product times the unclamped scale; see
    :mod:`xares_hf.protocols`). Deterministic for a seed; the loop is :mod:`.trainer`'s.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    (x_train, c_train), (x_valid, c_valid), (x_test, c_test) = (
        _check_split(name, split) for name, split in (("train", train), ("valid", valid), ("test", test))
    )
    for name, x in (("train", x_train), ("valid", x_valid)):
        if len(x) == 0:
            raise ValueError(f"{name} split has no clips")
    for name, x in (("valid", x_valid), ("test", x_test)):
        if len(x) and x.dim != x_train.dim:
            raise ValueError(f"{name} split: embedding dim {x.dim} differs from train's {x_train.dim}")

    train_texts, train_owner = _flatten(c_train)
    encode, vocab_size, pad_id, tokenizer_label = _make_encoder(tokenizer, train_texts, max_tokens)

    def prepare(x: Rows, captions: list[list[str]]):
        texts, owner = _flatten(captions)
        ids, lengths = _pad(encode(texts), pad_id, max_tokens)
        return x, ids, lengths, owner

    _, ids_train, len_train, _ = prepare(x_train, c_train)
    build = lambda: _Towers(x_train, ids_train, len_train, train_owner, prepare(x_valid, c_valid), score,  # noqa: E731
                            vocab_size, embed_dim, batch_size, layers, raw_logits)
    towers, outcome = fit(build, len(ids_train), epochs, learning_rate, batch_size, seed, desc,
                          after_step=None if raw_logits else _clamp_scale)
    x_t, ids_t, len_t, owner_t = prepare(x_test, c_test)
    audio_emb, text_emb = towers.embed(x_t, ids_t, len_t)
    return RetrievalResult(audio_emb, text_emb, owner_t, outcome.best_epoch, outcome.valid_scores, tokenizer_label,
                           layer_weights(towers.module), outcome)
