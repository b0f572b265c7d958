import importlib.util

import evaluate
import jiwer
import numpy as np
import pytest

from xares_hf.scoring import metric_path

VOCAB = ["the", "The", "CAT", "sat", "on", "a", "mat", "Dog", "ran", "home", "it's", "ok."]


@pytest.fixture(scope="module")
def iwer():
    return evaluate.load(metric_path("iwer"))


def _sentence(rng, low, high):
    return " ".join(rng.choice(VOCAB, size=rng.integers(low, high)))


def test_iwer_matches_jiwer_on_lowercased_strings(iwer):
    rng = np.random.default_rng(0)
    for _ in range(5):
        refs = [_sentence(rng, 1, 12) for _ in range(40)]
        hyps = [_sentence(rng, 0, 12) for _ in range(40)]  # includes empty hypotheses
        expected = jiwer.wer([r.lower() for r in refs], [h.lower() for h in hyps])
        result = iwer.compute(predictions=hyps, references=refs)
        assert set(result) == {"iwer", "wer"}
        assert result["wer"] == pytest.approx(expected, abs=1e-9)
        assert result["iwer"] == pytest.approx(max(0.0, 1.0 - expected), abs=1e-9)


def test_wer_is_corpus_level_not_mean_of_utterances(iwer):
    # utterance WERs 1/1 and 0/3: corpus WER 1/4, the mean of utterance WERs would be 1/2
    result = iwer.compute(references=["one", "two three four"], predictions=["uno", "two three four"])
    assert result == {"iwer": pytest.approx(0.75, abs=1e-12), "wer": pytest.approx(0.25, abs=1e-12)}


def test_empty_hypothesis_counts_as_deletions(iwer):
    result = iwer.compute(references=["a b c", "d"], predictions=["", "d"])
    assert result["wer"] == pytest.approx(3 / 4, abs=1e-12)
    assert result["iwer"] == pytest.approx(1 / 4, abs=1e-12)
    assert iwer.compute(references=["hello world"], predictions=[""]) == {"iwer": 0.0, "wer": 1.0}


def test_wer_above_one_clamps_iwer_to_zero(iwer):
    result = iwer.compute(references=["yes"], predictions=["no no no"])
    assert result == {"iwer": 0.0, "wer": 3.0}
    result = iwer.compute(references=["a b"], predictions=["x y z"])  # 2 substitutions + 1 insertion
    assert result["wer"] == pytest.approx(1.5, abs=1e-12) and result["iwer"] == 0.0


def test_case_insensitive_but_no_other_normalisation(iwer):
    assert iwer.compute(references=["Hello World"], predictions=["hELLO wORLD"]) == {"iwer": 1.0, "wer": 0.0}
    # punctuation is not stripped: "world." differs from "world"
    result = iwer.compute(references=["hello world."], predictions=["hello world"])
    assert result["wer"] == pytest.approx(0.5, abs=1e-12)


def test_some_empty_references_are_allowed(iwer):
    # the empty reference contributes its hypothesis word as an insertion: 1 edit over 2 reference words
    result = iwer.compute(references=["a b", ""], predictions=["a b", "x"])
    assert result["wer"] == pytest.approx(0.5, abs=1e-12)


def test_add_batch_accumulates_like_one_compute(iwer):
    refs, hyps = ["the cat sat", "on the mat", "hello"], ["the cat", "on a mat", "hello there"]
    iwer.add_batch(references=refs[:2], predictions=hyps[:2])
    iwer.add_batch(references=refs[2:], predictions=hyps[2:])
    assert iwer.compute() == iwer.compute(references=refs, predictions=hyps)


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        (["a"], ["a", "b"], "Mismatch in the number of predictions"),
        ([], [], "at least one prediction/reference pair"),
        (["a", "b"], ["", "   "], "every reference is empty"),
        ([None], ["a"], "don't match the expected format"),
    ],
)
def test_bad_input_raises(iwer, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        iwer.compute(predictions=predictions, references=references)


def test_module_check_rejects_mismatch_directly():
    # _compute's own check, independent of evaluate's batching
    module = _load_module_file()
    with pytest.raises(ValueError, match="one prediction per reference"):
        module._check_inputs(["a"], ["a", "b"])


def _load_module_file():
    spec = importlib.util.spec_from_file_location("xares_iwer_module", metric_path("iwer") + "/iwer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
