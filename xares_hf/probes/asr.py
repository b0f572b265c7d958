"""The X-ARES ASR probe: frame embeddings -> transcripts, scored by a higher-is-better callable (iWER).

Two heads, both trained with Adam and a cosine LR decaying to 0.1x (stepped per epoch), keeping the epoch whose
greedy transcripts of ``valid`` score best:

- ``"ctc"`` (light, offline, fast): a per-frame MLP ``LayerNorm(D) -> Linear(D, max(2D, 256)) -> GELU ->
  Linear(., vocab)`` over a lowercased character vocabulary built from the training transcripts (blank = 0),
  trained with CTC and decoded greedily (argmax, collapse repeats, drop blanks).
- ``"llm"`` (the X-ARES paper's head): a frozen causal LM (X-ARES: ``Qwen/Qwen2.5-0.5B``) reads the audio frames
  through a trained SwiGLU adapter ``proj(SiLU(fc_1(x)) * fc_2(x))`` (``D -> intermediate_size -> hidden_size``),
  followed by a separator token and the transcript; only the adapter is trained, with the LM's cross-entropy on the
  transcript + EOS tokens. Transcripts are generated greedily after the separator (repetition penalty 1.1 on the
  generated tokens, as in X-ARES).

Batching in the ``"llm"`` head: training sequences ``[audio_i, sep, text_i, eos]`` are right-padded as a whole (no
padding between audio and text, positions start at 0); generation prompts ``[audio_i, sep]`` are left-padded with
an attention mask (``generate`` derives position ids from the mask), so a batch gives the same greedy
transcripts as one utterance at a time up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from .. import distributed
from ..store import Frames
from .frame import as_frames
from .layer_mix import layer_weights, with_layer_mix
from .trainer import Fit, fit, share_of_mean

HEADS = ("ctc", "llm")
XARES_SEPARATOR = "<|vision_end|>"
REPETITION_PENALTY = 1.1  # X-ARES's greedy decoding


@dataclass
class AsrResult:
    """The trained ASR probe's test transcripts and its selection history."""

    test_hypotheses: list[str]
    best_epoch: int
    valid_scores: list[float]
    head: str  # "ctc" or "llm"
    decoder: str | None  # the causal LM id/path for head "llm", else None
    layer_weights: list[float] | None = None  # learnt weights over stacked layers (``layers > 1``)
    train_losses: list[float] = field(default_factory=list)  # mean training loss of each epoch (diagnostics)
    fit: Fit | None = None


# ----------------------------------------------------------------------------------------------------- checks


def _check_frames(name: str, frames: Frames | list[np.ndarray], dim: int | None) -> int | None:
    if isinstance(frames, Frames):  # stored frames are 2-D and of one width by construction
        if len(frames) and dim is not None and frames.dim != dim:
            raise ValueError(f"{name} frames have dim {frames.dim}, expected {dim} like the others")
        return frames.dim if len(frames) else dim
    for i, f in enumerate(frames):
        shape = np.shape(f)
        if len(shape) != 2:
            raise ValueError(f"{name} frames {i} must be 2-D (frames, dim), got shape {tuple(shape)}")
        if dim is None:
            dim = shape[1]
        elif shape[1] != dim:
            raise ValueError(f"{name} frames {i} have dim {shape[1]}, expected {dim} like the others")
    return dim


def _check_split(name: str, split: tuple[list[np.ndarray], list[str]], dim: int | None) -> int | None:
    frames, transcripts = split
    if len(frames) != len(transcripts):
        raise ValueError(f"{name} has {len(frames)} frame arrays but {len(transcripts)} transcripts")
    if len(frames) == 0:
        raise ValueError(f"{name} split is empty")
    for i, text in enumerate(transcripts):
        if not isinstance(text, str):
            raise ValueError(f"{name} transcript {i} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{name} transcript {i} is empty")
    return _check_frames(name, frames, dim)


def _batch(frames: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Right-pad ``(T_i, D)`` arrays into ``(B, T_max, D)`` float32 on ``device``; also return the lengths."""
    lengths = [len(f) for f in frames]
    dim = np.shape(frames[0])[1]
    x = torch.zeros(len(frames), max(lengths + [1]), dim, dtype=torch.float32)
    for i, f in enumerate(frames):
        if len(f):
            x[i, : len(f)] = torch.as_tensor(np.asarray(f, dtype=np.float32))
    return x.to(device), lengths


def _clean(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------------- CTC


def ctc_vocabulary(transcripts: list[str]) -> list[str]:
    """The characters the CTC head can write: those of the lowercased training transcripts (a character seen only
    in valid or test transcripts can never be transcribed)."""
    return sorted(set("".join(t.lower() for t in transcripts)))


def ctc_min_frames(transcript: str) -> int:
    """The fewest frames CTC can align ``transcript`` to: one per character, plus a blank between repeated ones.

    A clip with fewer frames has an infinite CTC loss, which the head's ``zero_infinity`` turns into no gradient:
    the head learns nothing from it."""
    text = transcript.lower()
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


class _CtcHead:
    """Per-frame MLP over a character vocabulary, CTC loss, greedy decoding."""

    def __init__(self, dim: int, transcripts: list[str], device: torch.device) -> None:
        self.chars = ctc_vocabulary(transcripts)
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}  # 0 is the CTC blank
        hidden = max(2 * dim, 256)
        self.module = torch.nn.Sequential(
            torch.nn.LayerNorm(dim),
            torch.nn.Linear(dim, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, len(self.chars) + 1),
        ).to(device)
        self.device = device
        self.ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)

    def _logits(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Per-frame logits, right-padded to ``(B, T_max, C)``.

        The head acts on each frame alone, so the clips' frames go through it concatenated, without the
        padding a batch would carry (speech clips differ in length by up to 5x: half a padded batch was zeros).
        """
        lengths = [len(f) for f in frames]
        packed = torch.from_numpy(np.concatenate([np.asarray(f, dtype=np.float32) for f in frames])).to(self.device)
        logits = self.module(packed).float()
        return torch.nn.utils.rnn.pad_sequence(list(logits.split(lengths)), batch_first=True), lengths

    def units(self, texts: list[str]) -> list[int]:
        """What the loss is a mean over, per utterance: CTC's mean is over utterances."""
        return [1] * len(texts)

    def loss(self, frames: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        logits, lengths = self._logits(frames)
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, C)
        targets = [[self.index[c] for c in t.lower()] for t in texts]
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        return self.ctc(
            log_probs,
            flat.to(self.device),
            torch.tensor(lengths, dtype=torch.long),
            torch.tensor([len(t) for t in targets], dtype=torch.long),
        )

    def transcribe(self, frames: Frames | list[np.ndarray], batch_size: int) -> list[str]:
        self.module.eval()
        out: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(frames), batch_size):
                logits, lengths = self._logits(frames[start : start + batch_size])
                best = logits.argmax(-1).cpu()
                for row, length in zip(best, lengths):
                    ids = row[:length].tolist()
                    chars = [self.chars[i - 1] for j, i in enumerate(ids) if i != 0 and (j == 0 or ids[j - 1] != i)]
                    out.append(_clean("".join(chars)))
        return out


# ------------------------------------------------------------------------------------------------------- LLM


class _SwiGluAdapter(torch.nn.Module):
    """X-ARES's encoder adapter: ``proj(SiLU(fc_1(x)) * fc_2(x))``, applied per frame."""

    def __init__(self, dim: int, intermediate_size: int, hidden_size: int) -> None:
        super().__init__()
        self.fc_1 = torch.nn.Linear(dim, intermediate_size)
        self.fc_2 = torch.nn.Linear(dim, intermediate_size)
        self.proj = torch.nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.nn.functional.silu(self.fc_1(x)) * self.fc_2(x))


def _load_decoder(decoder: str):
    """The causal LM (float32) and its tokenizer; ``decoder`` is a Hub id or a local folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(decoder)
        lm = AutoModelForCausalLM.from_pretrained(decoder, dtype=torch.float32)
    except OSError as err:
        raise ValueError(
            f"cannot load the ASR decoder '{decoder}': {err}\n  (offline? cache it first, pass a local folder as the "
            "decoder, or use the light CTC head: asr_head='ctc' / --asr-head ctc)"
        ) from err
    return lm, tokenizer


def _separator_id(tokenizer) -> int:
    """X-ARES's ``<|vision_end|>`` when the tokenizer has it as one token, else its EOS, else its BOS."""
    vocab = tokenizer.get_vocab()
    if XARES_SEPARATOR in vocab:
        return int(vocab[XARES_SEPARATOR])
    for token_id in (tokenizer.eos_token_id, tokenizer.bos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError(
        "the decoder's tokenizer has neither '<|vision_end|>' nor an eos/bos token to separate audio and text"
    )


class _LlmHead:
    """Frozen causal LM reading adapted audio frames; only the adapter trains."""

    def __init__(self, dim: int, lm, tokenizer, device: torch.device) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the decoder's tokenizer has no eos token: the LLM head needs one to end transcripts")
        self.lm, self.tokenizer, self.device = lm.to(device), tokenizer, device
        self.lm.eval()
        for p in self.lm.parameters():
            p.requires_grad_(False)
        config = self.lm.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.module = _SwiGluAdapter(dim, config.intermediate_size, config.hidden_size).to(device)
        self.embed = self.lm.get_input_embeddings()
        self.sep_id = _separator_id(tokenizer)
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.eos_id
        self.autocast = device.type == "cuda"

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast)

    def _ids(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def units(self, texts: list[str]) -> list[int]:
        """What the loss is a mean over, per utterance: its target tokens (the transcript's and EOS)."""
        return [len(ids) + 1 for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def loss(self, frames: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        x, lengths = _batch(frames, self.device)
        with self._autocast():
            audio = self.module(x)
            embeds, labels = [], []
            for i, text in enumerate(texts):
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
                text_embeds = self.embed(self._ids([self.sep_id] + tokens)).to(audio.dtype)
                embeds.append(torch.cat([audio[i, : lengths[i]], text_embeds]))
                labels.append([-100] * (lengths[i] + 1) + tokens)
            width = max(len(e) for e in embeds)
            inputs = audio.new_zeros(len(embeds), width, audio.shape[-1])
            mask = torch.zeros(len(embeds), width, dtype=torch.long, device=self.device)
            target = torch.full((len(embeds), width), -100, dtype=torch.long, device=self.device)
            for i, (e, lab) in enumerate(zip(embeds, labels)):
                inputs[i, : len(e)], mask[i, : len(e)], target[i, : len(e)] = e, 1, self._ids(lab)
            return self.lm(inputs_embeds=inputs, attention_mask=mask, labels=target).loss.float()

    def generate_ids(self, frames: Frames | list[np.ndarray], batch_size: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations of ``[audio_i, sep]``, cut before the first EOS."""
        from transformers import GenerationConfig, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        generation = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
        )
        # The penalty is passed as our own processor, not as ``repetition_penalty=1.1``: with ``inputs_embeds``,
        # transformers (5.x) skips each row's first <left-padding length> *generated* tokens when penalising, so a
        # left-padded batch would decode differently from one utterance at a time. Here input_ids hold only the
        # generated tokens (the prompt is embeddings), so the penalty covers exactly those, as in X-ARES.
        penalty = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty=REPETITION_PENALTY)])
        self.module.eval()
        out: list[list[int]] = []
        sep = self.embed(self._ids([self.sep_id]))
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(frames), batch_size):
                x, lengths = _batch(frames[start : start + batch_size], self.device)
                audio = self.module(x)
                width = max(lengths) + 1
                inputs = audio.new_zeros(len(lengths), width, audio.shape[-1])
                mask = torch.zeros(len(lengths), width, dtype=torch.long, device=self.device)
                for i, length in enumerate(lengths):  # left padding: [pad..., audio_i, sep]
                    inputs[i, width - length - 1 : width - 1] = audio[i, :length]
                    inputs[i, width - 1] = sep[0].to(audio.dtype)
                    mask[i, width - length - 1 :] = 1
                generated = self.lm.generate(
                    inputs_embeds=inputs, attention_mask=mask, generation_config=generation, logits_processor=penalty
                )
                for row in generated.tolist():  # only new tokens: the prompt was embeddings
                    out.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return out

    def transcribe(self, frames: Frames | list[np.ndarray], batch_size: int, max_new_tokens: int) -> list[str]:
        ids = self.generate_ids(frames, batch_size, max_new_tokens)
        return [_clean(t) for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)] if ids else []


# ------------------------------------------------------------------------------------------------- training

_DECODERS: dict[str, tuple] = {}


def _shared_decoder(decoder: str) -> tuple:
    """The decoder LM and tokenizer, loaded once per process (every round and seed reuses the frozen LM)."""
    if decoder not in _DECODERS:
        _DECODERS[decoder] = _load_decoder(decoder)
    return _DECODERS[decoder]


class _AsrTraining:
    """The trainer's view of an ASR head: the loss of a batch of utterances and the validation transcripts."""

    def __init__(self, model, frames: Frames, texts: list[str], valid: tuple[Frames, list[str]], score: Callable,
                 transcribe: Callable[[Frames], list[str]], validate: Callable | None = None) -> None:
        self.model, self.module, self.frames, self.texts = model, model.module, frames, texts
        self.valid, self.score, self.transcribe, self.validate = valid, score, transcribe, validate
        self.units = np.asarray(model.units(texts), dtype=np.float64)  # what the loss is a mean over, per utterance

    def batch_loss(self, mine: list[int], batch: list[int]) -> torch.Tensor:
        loss = self.model.loss(self.frames.take(mine), [self.texts[i] for i in mine])
        return share_of_mean(loss, float(self.units[mine].sum()), float(self.units[batch].sum()))

    def transcribe_all(self, frames: Frames) -> list[str]:
        return distributed.predict_all(self.transcribe, frames)  # batches are read from the views as they go

    def validation_score(self) -> float:
        if self.validate is not None:  # xares 0.1.3: teacher-forced transcripts, the same in every process
            return float(self.score(self.validate(*self.valid), list(self.valid[1])))
        return float(self.score(self.transcribe_all(self.valid[0]), list(self.valid[1])))


def train_asr_probe(
    train: tuple[Frames | list[np.ndarray], list[str]],
    valid: tuple[Frames | list[np.ndarray], list[str]],
    test_frames: Frames | list[np.ndarray],
    score: Callable[[list[str], list[str]], float],
    head: str = "ctc",
    decoder: str | None = None,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 4,
    seed: int = 42,
    max_new_tokens: int = 200,
    device: str | torch.device = "cpu",
    desc: str = "asr",
    layers: int = 1,
    xares_013: bool = False,
) -> AsrResult:
    """Train an ASR head on per-utterance frames ``(T_i, D)``, keep the epoch scoring best on ``valid``
    (``score(hypotheses, references)``, higher is better), and transcribe ``test_frames`` with it.

    ``head="ctc"`` needs nothing but the frames; ``head="llm"`` loads ``decoder`` with ``AutoModelForCausalLM``
    (once per process; set ``HF_HUB_OFFLINE=1`` to use the Hub cache only), freezes it and trains the adapter.
    Deterministic for a seed on CPU; the loop is :mod:`.trainer`'s. Raises ``ValueError`` for an unknown head,
    ``"llm"`` without a decoder, mismatched frames and transcripts, or an empty transcript. ``xares_013`` lays out,
    trains and selects the ``"llm"`` head as xares 0.1.3 does (:mod:`.asr_xares013`; protocol ``"xares-0.1.3"``).
    """
    if head not in HEADS:
        raise ValueError(f"unknown ASR head {head!r}: expected one of {', '.join(map(repr, HEADS))}")
    if head == "llm" and not decoder:
        raise ValueError("ASR head 'llm' needs a decoder: a causal LM id or local path (X-ARES: 'Qwen/Qwen2.5-0.5B')")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    dim = _check_split("train", train, None)
    dim = _check_split("valid", valid, dim)
    _check_frames("test", test_frames, dim)
    device = torch.device(device)
    train_frames, valid_frames, test = as_frames(train[0]), as_frames(valid[0]), as_frames(test_frames)

    def build() -> _AsrTraining:
        validate = None
        if head == "ctc":
            model = _CtcHead(dim // layers, train[1], device)
            transcribe = lambda frames: model.transcribe(frames, batch_size)  # noqa: E731
        else:
            from .asr_xares013 import Xares013LlmHead

            lm, tokenizer = _shared_decoder(decoder)
            torch.manual_seed(seed)  # the adapter's initialisation must not depend on what loading the LM consumed
            model = (Xares013LlmHead if xares_013 else _LlmHead)(dim // layers, lm, tokenizer, device)
            transcribe = lambda frames: model.transcribe(frames, batch_size, max_new_tokens)  # noqa: E731
            if xares_013:
                validate = lambda frames, texts: model.teacher_forced(frames, texts, batch_size)  # noqa: E731
        model.module = with_layer_mix(model.module, layers).to(device)  # frames hold ``layers`` layers side by side
        return _AsrTraining(model, train_frames, list(train[1]), (valid_frames, list(valid[1])), score, transcribe,
                            validate)

    training, outcome = fit(build, len(train_frames), epochs, learning_rate, batch_size, seed, desc)
    hypotheses = training.transcribe_all(test) if len(test) else []
    return AsrResult(hypotheses, outcome.best_epoch, outcome.valid_scores, head, decoder if head == "llm" else None,
                     layer_weights(training.module), outcome.train_losses, outcome)
