"""The leaderboard Space against hostile results files (issue 15, items 4 and 5): one schema for uploads and stored
files, every derived number recomputed, and a bad stored file skipped and reported instead of stopping the app."""

import json
import logging
import statistics
import sys
from pathlib import Path

import pytest

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"
sys.path.insert(0, str(SPACE))

import leaderboard_data as ld  # noqa: E402
import submission  # noqa: E402


def _good(model: str = "org/good") -> dict:
    """A consistent results file: a known x-ares task with kNN and 3 seeds, a mini task, averages as xares-hf writes them."""
    seeds = [0.7, 0.8, 0.9]
    tasks = []
    for name, mlp, knn, weight in (("esc50", 0.8, 0.6, 400.0), ("mini_keywords", 0.5, None, 10.0)):
        info = ld.KNOWN_TASKS[name]
        runs = [{"seed": 42 + i, "mlp": s * mlp / 0.8, "mlp_score": s * mlp / 0.8, "knn": knn, "knn_score": knn} for i, s in enumerate(seeds)]
        tasks.append({"name": name, "formal_name": info["formal_name"], "domain": info["domain"], "task_type": info["task_type"],
                      "metric": info["metric"], "mlp": statistics.fmean(r["mlp"] for r in runs), "knn": knn, "knn_score": knn,
                      "eval_weight": weight, "eval_size": 10, "seed": 42, "folds": {}, "details": {"head": "linear"},
                      "mlp_std": statistics.stdev(r["mlp"] for r in runs), "knn_std": None if knn is None else 0.0,
                      "seed_runs": runs, "layer": None, "layer_profile": {}, "layer_weights": None})
        tasks[-1]["mlp_score"] = tasks[-1]["mlp"]
    data = {"schema_version": 1, "xares_hf_version": "0.1.0", "created": "2026-11-27T00:00:00+00:00",
            "encoder": {"id": model, "revision": "main", "layer": None}, "run": {}, "averages": {}, "tasks": tasks}
    weights = [t["eval_weight"] for t in tasks]
    per_seed = [ld.weighted_average([t["seed_runs"][i]["mlp_score"] for t in tasks], weights) for i in range(len(seeds))]
    data["averages"] = {"mlp": ld.weighted_average([t["mlp_score"] for t in tasks], weights), "knn": 0.6,
                        "mlp_std": statistics.stdev(per_seed), "knn_std": 0.0}
    return data


def _edit(fn) -> dict:
    data = _good("org/bad")
    fn(data)
    return data


NAN_WEIGHT = _edit(lambda d: d["tasks"][0].update(eval_weight=float("nan")))
CASES = {  # name -> (results file as bytes, what the refusal says)
    "eval_weight NaN": (json.dumps(NAN_WEIGHT).encode(), "NaN is not a JSON number"),
    "eval_weight Infinity": (json.dumps(_edit(lambda d: d["tasks"][0].update(eval_weight=float("inf")))).encode(), "Infinity"),
    "eval_weight 1e999": (json.dumps(_edit(lambda d: d["tasks"][0].update(eval_weight=123.0))).replace("123.0", "1e999").encode(),
                          "tasks[0] ('esc50').eval_weight: input should be a finite number"),
    "seed_runs [1, 2]": (json.dumps(_edit(lambda d: d["tasks"][0].update(seed_runs=[1, 2]))).encode(), "tasks[0] ('esc50').seed_runs[0]"),
    "a list as task name": (json.dumps(_edit(lambda d: d["tasks"][0].update(name=["esc50"]))).encode(), "tasks[0].name: input should be a valid string"),
    "deep nesting": (b'{"schema_version": 1, "encoder": {"id": "x"}, "tasks": [{"name": "esc50", "details": '
                     + b"[" * 100_000 + b"]" * 100_000 + b"}]}", "nested more deeply than"),
    "nesting past the limit": (json.dumps(_edit(lambda d: d["tasks"][0].update(details=json.loads("[" * 40 + "]" * 40)))).encode(),
                               "nested more deeply than"),
    "mlp_score disagrees with mlp": (json.dumps(_edit(lambda d: d["tasks"][0].update(mlp=1.0, mlp_score=0.05, seed_runs=[], mlp_std=None,
                                                                                    knn_std=None))).encode(),
                                     "task 'esc50': mlp_score is 0.05, but its raw value 1.0 normalises to 1.0"),
    "knn_score disagrees with knn": (json.dumps(_edit(lambda d: d["tasks"][0].update(knn_score=0.9))).encode(), "knn_score is 0.9"),
    "a seed's score disagrees": (json.dumps(_edit(lambda d: d["tasks"][0]["seed_runs"][1].update(mlp_score=0.99))).encode(),
                                 "seed_runs[1].mlp_score is 0.99"),
    "mlp is not the seeds' mean": (json.dumps(_edit(lambda d: d["tasks"][0].update(mlp=0.95, mlp_score=0.95))).encode(),
                                   "mlp is 0.95, but its seed_runs average"),
    "mlp_std forged": (json.dumps(_edit(lambda d: d["tasks"][0].update(mlp_std=0.0))).encode(), "mlp_std is 0.0, but its seed_runs give"),
    "averages forged": (json.dumps(_edit(lambda d: d["averages"].update(mlp=0.99))).encode(), "averages.mlp is 0.99, but the tasks' scores give"),
    "eval_weight not the task's": (json.dumps(_edit(lambda d: d["tasks"][0].update(eval_weight=99999.0))).encode(),
                                   "task 'esc50': eval_weight is 99999.0, the task's is 400.0"),
    "domain not the task's": (json.dumps(_edit(lambda d: d["tasks"][1].update(domain="music"))).encode(), "domain is 'music', the task's is 'speech'"),
    "markup in encoder.layer": (json.dumps(_edit(lambda d: d["encoder"].update(layer="<img src=x onerror=alert(1)>"))).encode(),
                                "encoder.layer must be 1-200 plain characters"),
    "markup in domain": (json.dumps(_edit(lambda d: d["tasks"][0].update(domain="<b>sound</b>"))).encode(), "tasks[0] ('esc50').domain must be"),
    "markup in metric": (json.dumps(_edit(lambda d: d["tasks"][0].update(metric="<i>accuracy</i>"))).encode(), "metric must be"),
    "a link in encoder.id": (json.dumps(_edit(lambda d: d["encoder"].update(id="[x](javascript:alert(1))"))).encode(), "encoder.id must be"),
    "a newline after encoder.id": (json.dumps(_edit(lambda d: d["encoder"].update(id="org/x\n"))).encode(), "encoder.id must be"),
    "a known task with another metric": (json.dumps(_edit(lambda d: d["tasks"][0].update(metric="mAP"))).encode(),
                                         "task 'esc50': metric is 'mAP', the task's is 'accuracy'"),
    "markup in version": (json.dumps(_edit(lambda d: d.update(xares_hf_version="<script>"))).encode(), "xares_hf_version must be"),
    "markup in created": (json.dumps(_edit(lambda d: d.update(created="<i>2026</i>"))).encode(), "created must be"),
    "created not a date": (json.dumps(_edit(lambda d: d.update(created="yesterday"))).encode(), "created must be an ISO 8601 date"),
    "a string score": (json.dumps(_edit(lambda d: d["tasks"][0].update(mlp="0.8"))).encode(), "tasks[0] ('esc50').mlp: input should be a valid number"),
    "a boolean seed": (json.dumps(_edit(lambda d: d["tasks"][0].update(seed=True))).encode(), "seed: input should be a valid integer"),
    "encoder a list": (json.dumps(_edit(lambda d: d.update(encoder=["x"]))).encode(), "encoder: input should be"),
    "tasks an object": (json.dumps(_edit(lambda d: d.update(tasks={"esc50": {}}))).encode(), "tasks: input should be a valid list"),
    "a layer profile key that is no layer": (json.dumps(_edit(lambda d: d["tasks"][0].update(
        layer_profile={"x": {"mlp": 0.8, "mlp_score": 0.8, "valid": 0.8}}))).encode(), "layer_profile.x.[key]"),
    "layer weights that are text": (json.dumps(_edit(lambda d: d["tasks"][0].update(layer_weights=["a"]))).encode(), "layer_weights[0]"),
    "one seed run": (json.dumps(_edit(lambda d: d["tasks"][1].update(seed_runs=d["tasks"][1]["seed_runs"][:1]))).encode(), "lists one seed"),
    "a repeated key": (b'{"schema_version": 1, "schema_version": 1}', "key 'schema_version' appears twice"),
}


def test_the_good_file_passes():
    data = _good()
    assert submission.validate(json.dumps(data).encode()) == data


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_uploads_are_refused_with_a_reason(name):
    raw, message = CASES[name]
    with pytest.raises(submission.SubmissionError) as err:
        submission.validate(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_stored_files_are_skipped_and_reported(tmp_path, caplog):
    (tmp_path / "good.json").write_text(json.dumps(_good()))
    for i, (raw, _) in enumerate(CASES.values()):
        (tmp_path / f"bad-{i:02d}.json").write_bytes(raw)
    with caplog.at_level(logging.WARNING):
        runs = ld.load_runs(tmp_path)
    assert [r.model for r in runs] == ["org/good"]
    frame = ld.table(runs)  # the app's first view works on what is left
    assert list(frame["Model"]) == ["org/good"]
    for i in range(len(CASES)):
        assert f"bad-{i:02d}.json" in caplog.text
    _, skipped = ld.scan(tmp_path)
    assert len(skipped) == len(CASES) and all(line.startswith("bad-") and "\n" not in line for line in skipped)
    assert any("bad-00.json: " in line and "NaN" in line for line in skipped)


def test_a_forged_score_does_not_rank_first(tmp_path):
    forged = _edit(lambda d: d["tasks"][0].update(mlp=0.05, mlp_score=1.0, seed_runs=[], mlp_std=None, knn_std=None))
    forged["averages"] = {}
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    (tmp_path / "good.json").write_text(json.dumps(_good()))
    assert [r.model for r in ld.load_runs(tmp_path)] == ["org/good"]


def test_the_app_builds_with_bad_stored_files_and_lists_them(tmp_path):
    import gradio as gr

    import app

    (tmp_path / "good.json").write_text(json.dumps(_good()))
    (tmp_path / "nan-weight.json").write_text(json.dumps(NAN_WEIGHT))
    (tmp_path / "seed-ints.json").write_bytes(CASES["seed_runs [1, 2]"][0])
    (tmp_path / "deep.json").write_bytes(CASES["deep nesting"][0])
    demo = app.build(tmp_path)
    assert isinstance(demo, gr.Blocks)
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert "org/good" in by_id["leaderboard"].value["data"][0] or any("org/good" in str(r) for r in by_id["leaderboard"].value["data"])
    assert by_id["skipped-banner"].visible and "3 stored results files skipped" in by_id["skipped-banner"].value
    listed = by_id["skipped-files"].value.splitlines()
    assert [line.split(":")[0] for line in listed] == ["deep.json", "nan-weight.json", "seed-ints.json"]


def test_averages_computed_at_once_from_many_threads_agree():
    """Gradio runs page events in threads; each must get its own average, none a cache-file collision."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = [([0.1 * (i % 9), 0.5, 0.9], [1.0, 2.0, float(1 + i)]) for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda args: submission.weighted_average(*args), inputs))
    assert got == [submission.weighted_average(*args) for args in inputs]
    assert got[0] == pytest.approx((0.0 * 1 + 0.5 * 2 + 0.9 * 1) / 4)
