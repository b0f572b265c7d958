"""The task-type and metric registries: every registration is complete, and cards, results, the Hub export and
the Space accept exactly what they register."""

import typing
from pathlib import Path

import pytest

from xares_hf import scoring
from xares_hf.metric_modules import metric_path
from xares_hf.task_types import KNN_METRIC, TASK_TYPES, task_type
from xares_hf.tasks import load_tasks, shipped_cards
from xares_hf.tasks.card import LabelKind, Metric, TaskType

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(TASK_TYPES))
def test_every_task_type_is_a_whole_registration(name):
    spec = task_type(name)
    assert callable(spec.evaluate_round())  # its evaluator module exists and scores a round
    assert spec.label_kinds and spec.label_kinds <= set(typing.get_args(LabelKind))
    assert spec.metrics and spec.metrics <= set(scoring.METRICS)
    assert spec.display_name and spec.hub_task_type
    assert not spec.strict_frames or spec.needs_frames  # frame counts are only checked where frames are kept


@pytest.mark.parametrize("name", list(scoring.METRICS))
def test_every_metric_is_a_whole_registration(name):
    spec = scoring.metric_spec(name)
    assert (Path(metric_path(spec.module)) / f"{spec.module}.py").is_file()  # its published evaluate module
    assert spec.worst != spec.best and spec.display_name
    assert any(name in t.metrics for t in TASK_TYPES.values())  # some task type scores with it


def test_cards_accept_exactly_the_registered_names():
    assert typing.get_args(TaskType) == tuple(TASK_TYPES) and typing.get_args(Metric) == tuple(scoring.METRICS)
    assert [n for n, m in scoring.METRICS.items() if "knn" in m.probes] == [KNN_METRIC]  # one metric reports k-NN
    assert all("mlp" in m.probes for m in scoring.METRICS.values())
    cards = load_tasks(list(shipped_cards()))
    assert {c.task_type for c in cards} == set(TASK_TYPES)  # the 22 X-ARES tasks use every type
    for card in cards:
        assert card.metric in task_type(card.task_type).metrics and card.labels.kind in task_type(card.task_type).label_kinds
        assert not card.knn or task_type(card.task_type).knn


def test_the_space_offers_the_registered_task_types():
    import json

    known = json.loads((ROOT / "spaces_app" / "known_tasks.json").read_text())
    assert {t["task_type"] for t in known.values()} == set(TASK_TYPES)


def test_the_result_cache_hashes_every_registered_evaluator_and_metric_module():
    from xares_hf.metric_modules import metric_path
    from xares_hf.pipeline import scoring_sources

    sources = {p.resolve() for p in scoring_sources()}
    for spec in TASK_TYPES.values():
        assert (ROOT / "xares_hf" / "evaluators" / f"{spec.evaluator}.py").resolve() in sources
    for spec in scoring.METRICS.values():
        assert (Path(metric_path(spec.module)) / f"{spec.module}.py").resolve() in sources
    assert (ROOT / "xares_hf" / "protocols.py").resolve() in sources and (ROOT / "xares_hf" / "probes" / "knn.py").resolve() in sources
