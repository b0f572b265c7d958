"""On the mini suite the scores mean something: the baseline is above chance and below perfect, and a real
pretrained encoder (silero-vad) beats an encoder that ignores its input, on every task.

This is the slowest test file (a few minutes): it builds xares-mini at its demo size and evaluates three encoders.
"""

import pytest

from helpers import ConstantEncoder
from xares_hf import evaluate
from xares_hf.suites import build_mini_suite

MARGIN = {"mini_digits": 0.02}  # a linear CTC probe on log-mel frames hardly reads speech; chance is 0


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_scores")
    suite = build_mini_suite(root / "suite", size="mini", seed=0)
    run = lambda model: evaluate(model, tasks=[suite / "cards"], data_dir=suite, cache_dir=root / "cache", output_dir=None)
    return {"suite": suite, "log-mel": run("log-mel"), "constant": run(ConstantEncoder()), "silero-vad": run("silero-vad")}


def test_baseline_is_above_chance_and_below_perfect(scores):
    for task in scores["log-mel"].tasks:
        chance = scores["constant"][task.name]
        assert task.mlp < 1.0, f"{task.name}: the baseline is perfect, the task is too easy"
        assert task.mlp >= chance.mlp + MARGIN.get(task.name, 0.1), f"{task.name}: {task.mlp:.3f} vs chance {chance.mlp:.3f}"


def test_constant_encoder_sits_at_chance_on_classification(scores):
    from xares_hf.tasks import load_task

    for task in scores["constant"].tasks:
        if task.metric == "accuracy":
            classes = load_task(scores["suite"] / "cards" / f"{task.name}.yaml").labels.num_classes
            assert task.mlp <= 1 / classes + 0.15, f"{task.name}: a constant encoder scores {task.mlp:.3f}"


def test_a_real_encoder_beats_the_constant_encoder_everywhere(scores):
    for task in scores["silero-vad"].tasks:
        chance = scores["constant"][task.name]
        assert task.mlp >= chance.mlp + MARGIN.get(task.name, 0.05), f"{task.name}: {task.mlp:.3f} vs {chance.mlp:.3f}"
    assert scores["silero-vad"].mlp_average > scores["constant"].mlp_average + 0.2
