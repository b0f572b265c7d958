"""One results schema: pydantic models made from the Results/TaskResult fields check files in the package, and
their JSON Schema, shipped with the Space, checks uploads there."""

import json
import sys
from pathlib import Path

import pytest

from xares_hf.results import Results, TaskResult
from xares_hf.results_schema import SCHEMA_VERSION, check, json_schema, json_schema_text

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"
sys.path.insert(0, str(SPACE))

import submission  # noqa: E402


def _results() -> dict:
    task = TaskResult(name="esc50", formal_name="ESC-50", domain="sound", task_type="clip", metric="accuracy", mlp=0.75,
                      mlp_score=0.75, knn=0.5, knn_score=0.5, eval_weight=400, eval_size=40, seed=42)
    return Results(encoder={"id": "org/enc"}, tasks=[task], created="2026-12-03T00:00:00+00:00").to_dict()


def test_the_space_ships_the_package_s_schema():
    assert (SPACE / "results.schema.json").read_text() == json_schema_text()  # scripts/build_reference_results.py
    schema = json_schema()
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION, "title": "Schema Version"}
    task = schema["$defs"]["TaskResult"]
    assert set(task["properties"]) == {f for f in TaskResult.__dataclass_fields__}  # made from the dataclass fields
    assert task["additionalProperties"] is False and "mlp" in task["required"] and "folds" not in task["required"]


def test_a_file_xares_hf_writes_passes_both_checks():
    data = _results()
    check(data, "written")
    submission._schema_check(data)
    assert submission.check(json.loads(json.dumps(data)))["encoder"]["id"] == "org/enc"


@pytest.mark.parametrize("mutate, package_message, space_message", [
    (lambda d: d["tasks"][0].update(made_up=1), r"unknown field 'tasks\[0\]\.made_up' \(task 'esc50'\)",
     r"tasks\[0\]: Additional properties are not allowed \('made_up' was unexpected\)"),
    (lambda d: d.update(exec="print(1)"), r"unknown field 'exec'", r"top level: Additional properties are not allowed"),
    (lambda d: d["tasks"][0].pop("eval_size"), r"field 'tasks\[0\]\.eval_size' \(task 'esc50'\) is missing",
     r"tasks\[0\]: 'eval_size' is a required property"),
    (lambda d: d["tasks"][0].update(encoded="yes"), r"field 'tasks\[0\]\.encoded' \(task 'esc50'\) must be true or false",
     r"tasks\[0\]\.encoded: 'yes' is not of type 'boolean'"),
])
def test_both_checks_refuse_what_the_schema_does_not_allow(mutate, package_message, space_message):
    data = _results()
    mutate(data)
    with pytest.raises(ValueError, match=package_message):
        check(data, "file")
    with pytest.raises(submission.SubmissionError, match=space_message):
        submission._schema_check(data)
    with pytest.raises(submission.SubmissionError):  # and so an upload is refused
        submission.check(data)


def test_the_package_and_the_space_average_with_one_shared_file():
    import averages
    from xares_hf import results
    from xares_hf.leaderboard_app import averages as package_averages

    assert Path(package_averages.__file__).resolve() == (SPACE / "averages.py").resolve() == Path(averages.__file__).resolve()
    assert results.weighted_average.__code__.co_filename == package_averages.weighted_average.__code__.co_filename
    data = _results()
    data["tasks"].append({**data["tasks"][0], "name": "fsd50k", "formal_name": "FSD50k", "mlp": 0.25, "mlp_score": 0.25,
                          "knn": None, "knn_score": None, "eval_weight": 100.0, "metric": "mAP"})
    loaded = Results(encoder=data["encoder"], tasks=[TaskResult(**t) for t in data["tasks"]])  # averages computed
    space = submission.weighted_average([t["mlp_score"] for t in data["tasks"]], [t["eval_weight"] for t in data["tasks"]])
    assert loaded.mlp_average == pytest.approx(space) == pytest.approx((0.75 * 400 + 0.25 * 100) / 500)
    assert loaded.knn_average == pytest.approx(0.5)  # the task without k-NN does not count


def test_one_file_name_sanitiser_for_the_package_and_the_space(tmp_path):
    import names
    from xares_hf.paths import safe_component

    assert Path(safe_component.__code__.co_filename).resolve() == Path(names.safe_component.__code__.co_filename).resolve()
    stored = submission.store({**_results(), "encoder": {"id": "org/enc"}}, tmp_path)
    assert stored.name.startswith("org__enc-")  # the Space names uploads as the package names results folders
    odd = submission.store({**_results(), "encoder": {"id": "../x y"}}, tmp_path)
    assert odd.parent == tmp_path and odd.name.startswith(names.safe_component("../x y"))
