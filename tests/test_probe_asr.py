"""The ASR probe: a CTC head that learns synthetic 'speech', an LLM head on a tiny frozen random Qwen2, the checks."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from helpers import save_tiny_qwen2
import torch

from xares_hf.probes import asr
from xares_hf.probes.asr import AsrResult, train_asr_probe

ALPHABET = "abcde"
DIM = 16


def iwer(hyps: list[str], refs: list[str]) -> float:
    return max(0.0, 1.0 - jiwer.wer(refs, hyps))


def _word(rng: np.random.Generator) -> str:
    chars = [rng.choice(list(ALPHABET))]
    while len(chars) < rng.integers(2, 5):  # no doubled letters: a per-frame head cannot separate "aa" from "a"
        chars.append(rng.choice([c for c in ALPHABET if c != chars[-1]]))
    return "".join(chars)


def synthetic_split(n: int, seed: int, constant: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Utterances of 1-3 words; each character is a fixed random vector held for 2-4 frames, plus noise.

    ``constant``: the same transcripts and lengths, but every frame is the same vector (a useless encoder).
    """
    vectors = np.random.default_rng(1234).normal(size=(len(ALPHABET) + 1, DIM)).astype(np.float32)
    index = {c: i for i, c in enumerate(ALPHABET + " ")}
    rng = np.random.default_rng(seed)
    frames, texts = [], []
    for _ in range(n):
        text = " ".join(_word(rng) for _ in range(rng.integers(1, 4)))
        rows = [vectors[index[c]] for c in text for _ in range(rng.integers(2, 5))]
        x = np.stack(rows) + 0.1 * rng.normal(size=(len(rows), DIM)).astype(np.float32)
        if constant:
            x = np.ones_like(x)
        frames.append(x.astype(np.float32))
        texts.append(text)
    return frames, texts


def splits(constant: bool = False, sizes=(120, 24, 24)):
    train = synthetic_split(sizes[0], 0, constant)
    valid = synthetic_split(sizes[1], 1, constant)
    test = synthetic_split(sizes[2], 2, constant)
    return train, valid, test


CTC_ARGS = dict(epochs=4, learning_rate=3e-3, batch_size=8, seed=0)


def test_ctc_head_learns_and_beats_a_constant_encoder():
    train, valid, (test_frames, test_refs) = splits()
    result = train_asr_probe(train, valid, test_frames, iwer, **CTC_ARGS)
    assert isinstance(result, AsrResult)
    assert result.head == "ctc" and result.decoder is None
    assert len(result.test_hypotheses) == len(test_refs)
    assert len(result.valid_scores) == CTC_ARGS["epochs"]
    assert result.valid_scores[result.best_epoch - 1] == max(result.valid_scores)
    assert iwer(result.test_hypotheses, test_refs) >= 0.5

    train, valid, (test_frames, test_refs) = splits(constant=True)
    constant = train_asr_probe(train, valid, test_frames, iwer, **CTC_ARGS)
    assert iwer(constant.test_hypotheses, test_refs) <= 0.1


def test_ctc_head_is_deterministic_for_a_seed():
    train, valid, (test_frames, _) = splits(sizes=(40, 8, 8))
    args = dict(CTC_ARGS, epochs=2)
    first = train_asr_probe(train, valid, test_frames, iwer, **args)
    second = train_asr_probe(train, valid, test_frames, iwer, **args)
    assert first.test_hypotheses == second.test_hypotheses
    assert first.valid_scores == second.valid_scores


def test_ctc_head_tolerates_unseen_characters_in_references():
    train, (valid_frames, valid_refs), (test_frames, _) = splits(sizes=(16, 4, 4))
    valid_refs = [r + " xyz!" for r in valid_refs]
    result = train_asr_probe(train, (valid_frames, valid_refs), test_frames, iwer, epochs=1)
    assert len(result.test_hypotheses) == 4 and all(isinstance(h, str) for h in result.test_hypotheses)


def test_invalid_arguments_raise_clear_errors():
    train, valid, (test_frames, _) = splits(sizes=(6, 2, 2))
    with pytest.raises(ValueError, match="unknown ASR head 'rnnt'"):
        train_asr_probe(train, valid, test_frames, iwer, head="rnnt")
    with pytest.raises(ValueError, match="needs a decoder"):
        train_asr_probe(train, valid, test_frames, iwer, head="llm")
    texts = list(train[1])
    texts[3] = "  "
    with pytest.raises(ValueError, match="train transcript 3 is empty"):
        train_asr_probe((train[0], texts), valid, test_frames, iwer)
    with pytest.raises(ValueError, match="valid transcript 1 is empty"):
        train_asr_probe(train, (valid[0], [valid[1][0], ""]), test_frames, iwer)
    with pytest.raises(ValueError, match="train has 5 frame arrays but 6 transcripts"):
        train_asr_probe((train[0][:5], train[1]), valid, test_frames, iwer)
    with pytest.raises(ValueError, match="valid has 2 frame arrays but 1 transcripts"):
        train_asr_probe(train, (valid[0], valid[1][:1]), test_frames, iwer)
    with pytest.raises(ValueError, match="test frames 0 have dim 8"):
        train_asr_probe(train, valid, [np.zeros((5, 8), np.float32)], iwer)


# ------------------------------------------------------------------------------------------------- LLM head


@pytest.fixture(scope="module")
def llm_data():
    return splits(sizes=(24, 4, 4))


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, llm_data):
    return save_tiny_qwen2(tmp_path_factory.mktemp("qwen2") / "tiny", llm_data[0][1])


LLM_ARGS = dict(head="llm", epochs=3, learning_rate=1e-2, batch_size=4, seed=0, max_new_tokens=6)


def test_llm_head_trains_only_the_adapter(tiny_qwen2, llm_data, monkeypatch):
    loaded = {}

    def load(decoder):
        lm, tokenizer = original(decoder)
        loaded["lm"], loaded["before"] = lm, {k: v.clone() for k, v in lm.state_dict().items()}
        return lm, tokenizer

    original = asr._load_decoder
    monkeypatch.setattr(asr, "_load_decoder", load)
    monkeypatch.setattr(asr, "_DECODERS", {})  # loaded once per process: start without the LMs of other tests
    train, valid, (test_frames, _) = llm_data
    result = asr.train_asr_probe(train, valid, test_frames, iwer, decoder=str(tiny_qwen2), **LLM_ARGS)
    losses = result.train_losses

    assert result.head == "llm" and result.decoder == str(tiny_qwen2)
    assert len(result.test_hypotheses) == len(test_frames) and all(isinstance(h, str) for h in result.test_hypotheses)
    assert len(result.valid_scores) == LLM_ARGS["epochs"] and 1 <= result.best_epoch <= LLM_ARGS["epochs"]
    assert all(0.0 <= s <= 1.0 for s in result.valid_scores)
    assert len(losses) == LLM_ARGS["epochs"] and all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # the adapter learns to steer the frozen LM
    lm = loaded["lm"]
    assert not any(p.requires_grad for p in lm.parameters())
    after = lm.state_dict()
    assert all(torch.equal(loaded["before"][k], after[k]) for k in after)


def test_llm_head_is_deterministic_and_public_api_matches(tiny_qwen2, llm_data):
    train, valid, (test_frames, _) = llm_data
    args = dict(LLM_ARGS, epochs=1)
    first = train_asr_probe(train, valid, test_frames, iwer, decoder=str(tiny_qwen2), **args)
    second = train_asr_probe(train, valid, test_frames, iwer, decoder=str(tiny_qwen2), **args)
    assert isinstance(first, AsrResult) and first.decoder == str(tiny_qwen2)
    assert first.test_hypotheses == second.test_hypotheses


def test_llm_loss_covers_only_transcript_and_eos(tiny_qwen2, llm_data):
    """The batched, right-padded loss equals the mean NLL of text + EOS tokens computed one utterance at a time."""
    lm, tokenizer = asr._load_decoder(str(tiny_qwen2))
    torch.manual_seed(0)
    head = asr._LlmHead(DIM, lm, tokenizer, torch.device("cpu"))
    frames, texts = llm_data[0][0][:3], llm_data[0][1][:3]
    with torch.no_grad():
        batched = head.loss(frames, texts).item()
        nll = []
        for f, text in zip(frames, texts):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            embeds = torch.cat([head.module(torch.as_tensor(f)), head.embed(torch.tensor([head.sep_id] + ids))])
            log_probs = lm(inputs_embeds=embeds[None]).logits[0].log_softmax(-1)
            # position T (the separator) predicts the first text token, ..., the last text token predicts EOS
            nll += [-log_probs[len(f) + k, token].item() for k, token in enumerate(ids)]
    assert batched == pytest.approx(float(np.mean(nll)), rel=1e-5)


def test_tiny_tokenizer_round_trips(tiny_qwen2):
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(str(tiny_qwen2))
    ids = tokenizer("abc de", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "abc de" and tokenizer.eos_token == "<|endoftext|>"


def test_llm_batched_generation_matches_one_by_one(tmp_path, llm_data):
    """Left-padded batches decode as single utterances do, repetition penalty included (needs repeats to show)."""
    # a wide initialisation, so that the random LM's continuations depend on the audio instead of echoing the separator
    folder = save_tiny_qwen2(tmp_path / "wide", llm_data[0][1], init=0.5)
    lm, tokenizer = asr._load_decoder(str(folder))
    torch.manual_seed(0)
    head = asr._LlmHead(DIM, lm, tokenizer, torch.device("cpu"))
    frames = llm_data[2][0] + llm_data[1][0]  # different lengths: the batch is left-padded
    assert len({len(f) for f in frames}) > 1
    batched = head.generate_ids(frames, batch_size=len(frames), max_new_tokens=8)
    single = [head.generate_ids([f], batch_size=1, max_new_tokens=8)[0] for f in frames]
    assert batched == single
    assert len({tuple(ids) for ids in single}) > 1  # not a trivial match: the continuations differ
    assert head.transcribe(frames, batch_size=3, max_new_tokens=8) == [
        " ".join(tokenizer.decode(ids, skip_special_tokens=True).split()) for ids in single
    ]


def test_llm_separator_prefers_vision_end_then_eos(tmp_path, llm_data):
    import transformers as tf

    texts = llm_data[0][1]
    with_sep = tf.AutoTokenizer.from_pretrained(save_tiny_qwen2(tmp_path / "a", texts))
    without = tf.AutoTokenizer.from_pretrained(save_tiny_qwen2(tmp_path / "b", texts, separator=False))
    assert asr._separator_id(with_sep) == with_sep.convert_tokens_to_ids("<|vision_end|>")
    assert asr._separator_id(without) == without.eos_token_id


# ------------------------------------------------------------------------------ xares 0.1.3's LLM head (protocol)


def test_xares013_head_makes_the_separator_a_target_predicted_from_the_last_audio_frame(tiny_qwen2, llm_data):
    from xares_hf.probes.asr_xares013 import Xares013LlmHead

    lm, tokenizer = asr._load_decoder(str(tiny_qwen2))
    torch.manual_seed(0)
    head = Xares013LlmHead(DIM, lm, tokenizer, torch.device("cpu"))
    frames, texts = llm_data[0][0][:3], llm_data[0][1][:3]
    assert len({len(f) for f in frames}) > 1
    with torch.no_grad():
        single = []
        for f, text in zip(frames, texts):
            ids = [head.sep_id] + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            embeds = torch.cat([head.module(torch.as_tensor(f)), head.embed(torch.tensor(ids))])
            log_probs = lm(inputs_embeds=embeds[None]).logits[0].log_softmax(-1)
            nll = [-log_probs[len(f) - 1 + k, token].item() for k, token in enumerate(ids)]  # the sep is the first target
            assert head.loss([f], [text]).item() == pytest.approx(float(np.mean(nll)), rel=1e-5)
            single.append(np.mean(nll))
        default = asr._LlmHead(DIM, lm, tokenizer, torch.device("cpu"))
        default.module.load_state_dict(head.module.state_dict())
        assert default.loss(frames[:1], texts[:1]).item() != pytest.approx(single[0], rel=1e-3)  # xares-hf's: no sep target
        # in a batch the text of a short clip comes after its padding (masked, but it shifts the positions)
        assert head.loss(frames, texts).item() != pytest.approx(default.loss(frames, texts).item(), rel=1e-3)
        forced = head.teacher_forced(frames, texts, batch_size=2)
    assert len(forced) == 3 and all(len(p) <= len(t) for p, t in zip(forced, texts))


def test_xares013_head_picks_its_epoch_on_teacher_forced_transcripts_and_generates_only_for_test(tiny_qwen2, llm_data,
                                                                                              monkeypatch):
    from xares_hf.probes.asr_xares013 import Xares013LlmHead

    calls = {"generate": 0, "forced": 0}
    generate, forced = Xares013LlmHead.generate_ids, Xares013LlmHead.teacher_forced

    def counting_generate(self, *a, **k):
        calls["generate"] += 1
        return generate(self, *a, **k)

    def counting_forced(self, *a, **k):
        calls["forced"] += 1
        return forced(self, *a, **k)

    monkeypatch.setattr(Xares013LlmHead, "generate_ids", counting_generate)
    monkeypatch.setattr(Xares013LlmHead, "teacher_forced", counting_forced)
    train, valid, (test_frames, _) = llm_data
    result = train_asr_probe(train, valid, test_frames, iwer, decoder=str(tiny_qwen2), xares_013=True, **LLM_ARGS)
    assert calls == {"generate": 1, "forced": LLM_ARGS["epochs"]}  # valid: teacher-forced each epoch; test: generated
    assert len(result.test_hypotheses) == len(test_frames) and all(0.0 <= s <= 1.0 for s in result.valid_scores)
    assert result.train_losses[-1] < result.train_losses[0]
