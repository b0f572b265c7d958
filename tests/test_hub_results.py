"""Hub publishing of results: model-index in the model card, .eval_results files, the benchmark's eval.yaml."""

import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import EvalResult, model_index_to_eval_results

from xares_hf import hub_results, model_card
from xares_hf.results import Results, TaskResult

REPO = "xares/xares-benchmark"

EXISTING_CARD = """---
license: apache-2.0
tags:
- audio
- speech
library_name: transformers
model-index:
- name: org/encoder
  results:
  - task:
      type: automatic-speech-recognition
    dataset:
      type: librispeech_asr
      name: LibriSpeech (clean)
      split: test
    metrics:
    - type: wer
      value: 3.1
      name: Test WER
  - task:
      type: audio-classification
    dataset:
      type: xares/xares-benchmark
      name: X-ARES ESC-50
      config: esc50
      split: test
    metrics:
    - type: accuracy
      value: 0.1
      name: MLP accuracy
---

# My encoder

A self-supervised audio encoder. Keep this paragraph.
"""


def _task(name, formal, domain, task_type, metric, mlp, knn=None, weight=1000.0, size=500):
    return TaskResult(
        name=name,
        formal_name=formal,
        domain=domain,
        task_type=task_type,
        metric=metric,
        mlp=mlp,
        mlp_score=mlp,
        knn=knn,
        knn_score=knn,
        eval_weight=weight,
        eval_size=size,
        seed=42,
    )


@pytest.fixture(scope="module")
def results() -> Results:
    tasks = [
        _task("esc50", "ESC-50", "sound", "clip", "accuracy", 0.812345678, knn=0.654321987, weight=2000, size=2000),
        _task("fsd50k", "FSD50k", "sound", "clip", "mAP", 0.41234),
        _task("desed", "DESED", "sound", "frame", "segmentf1_macro", 0.3333333),
        _task("clotho", "Clotho", "sound", "contrastive", "recallatk_r1", 0.05555),
        _task("librispeech", "LibriSpeech-100h", "speech", "asr", "WER_inv", 0.7777777, weight=3000),
    ]
    encoder = {"id": "org/encoder", "revision": "abc123", "layer": None, "sampling_rate": 16000, "output_dim": 768, "hop_size_in_ms": 20.0}
    return Results(encoder=encoder, tasks=tasks, created="2025-01-15T10:30:00+00:00")  # averages via xares_score


@pytest.fixture(scope="module")
def results_file(results, tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "results.json"
    path.write_text(json.dumps(results.to_dict()))
    return path


def _by_key(entries):
    return {(e.dataset_config, e.metric_name): e for e in entries}


def test_model_index_parses_back(results):
    index = hub_results.model_index(results, dataset_repo=REPO)
    name, entries = model_index_to_eval_results(index)
    assert name == "org/encoder"
    assert all(isinstance(e, EvalResult) for e in entries)
    # 5 MLP + 1 kNN + 2 averages
    assert len(entries) == 8
    got = _by_key(entries)
    esc = got[("esc50", "MLP accuracy")]
    assert (esc.task_type, esc.dataset_type, esc.dataset_split, esc.metric_type) == ("audio-classification", REPO, "test", "accuracy")
    assert esc.metric_value == 0.8123
    assert esc.source_name == "xares-hf" and esc.source_url
    knn = got[("esc50", "kNN accuracy")]
    assert knn.metric_type == "accuracy" and knn.metric_value == 0.6543
    assert got[("fsd50k", "MLP mAP")].metric_type == "mAP"
    assert got[("desed", "MLP segment F1 (macro)")].metric_type == "segmentf1_macro"
    assert got[("desed", "MLP segment F1 (macro)")].metric_value == 0.3333
    assert got[("clotho", "MLP R@1")].metric_type == "recallatk_r1"
    asr = got[("librispeech", "MLP inverse WER")]
    assert (asr.task_type, asr.metric_type, asr.metric_value) == ("automatic-speech-recognition", "WER_inv", 0.7778)
    avg = got[(None, "X-ARES weighted average (MLP)")]
    assert avg.metric_type == "xares_score" and avg.metric_value == round(results.mlp_average, 4)
    assert got[(None, "X-ARES weighted average (kNN)")].metric_value == round(results.knn_average, 4)
    # MLP and kNN of one task share one model-index result (same task and dataset)
    esc_blocks = [r for r in index[0]["results"] if r["dataset"].get("config") == "esc50"]
    assert len(esc_blocks) == 1 and len(esc_blocks[0]["metrics"]) == 2


def test_model_card_metadata_loads_as_card(results):
    meta = hub_results.model_card_metadata(results)
    card = ModelCard("---\n" + yaml.safe_dump(meta) + "---\n\nbody\n")
    assert card.data.model_name == "org/encoder"
    assert len(card.data.eval_results) == 8


def test_update_model_card_keeps_metadata_and_text(results):
    merged = model_card.update_model_card(EXISTING_CARD, results)
    card = ModelCard(merged)
    assert card.data.license == "apache-2.0"
    assert card.data.tags == ["audio", "speech"]
    assert card.data.library_name == "transformers"
    assert "A self-supervised audio encoder. Keep this paragraph." in card.text
    assert "## X-ARES results" in card.text
    got = _by_key(card.data.eval_results)
    # the other benchmark's result is kept, the stale X-ARES one replaced
    assert any(e.dataset_type == "librispeech_asr" and e.metric_value == 3.1 for e in card.data.eval_results)
    assert got[("esc50", "MLP accuracy")].metric_value == 0.8123
    assert sum(1 for e in card.data.eval_results if e.dataset_type == REPO) == 8
    # merging twice changes nothing (the results table is replaced, not appended)
    assert model_card.update_model_card(merged, results) == merged


def test_update_model_card_from_path_and_new(results, tmp_path):
    path = tmp_path / "README.md"
    path.write_text(EXISTING_CARD)
    assert ModelCard(model_card.update_model_card(path, results)).data.license == "apache-2.0"
    assert ModelCard(model_card.update_model_card(str(path), results)).data.license == "apache-2.0"
    new = ModelCard(model_card.update_model_card(None, results))
    assert new.data.model_name == "org/encoder" and len(new.data.eval_results) == 8


def test_eval_result_files(results):
    files = hub_results.eval_result_files(results, dataset_repo=REPO)
    assert list(files) == [".eval_results/xares-benchmark.yaml"]
    entries = yaml.safe_load(files[".eval_results/xares-benchmark.yaml"])
    ids = [e["dataset"]["task_id"] for e in entries]
    assert ids == ["esc50/mlp", "esc50/knn", "fsd50k/mlp", "desed/mlp", "clotho/mlp", "librispeech/mlp", "average/mlp", "average/knn"]
    esc = entries[0]
    assert esc["dataset"] == {"id": REPO, "task_id": "esc50/mlp"}  # revision: the benchmark's, only when given
    assert esc["value"] == 0.8123
    assert esc["date"] == "2025-01-15T10:30:00+00:00"
    assert esc["source"]["name"].startswith("xares-hf ") and esc["source"]["url"]
    assert "metric=accuracy" in esc["notes"] and "eval_size=2000" in esc["notes"] and "seed=42" in esc["notes"]
    assert "encoder_revision=abc123" in esc["notes"]
    assert entries[1]["value"] == 0.6543
    # the documented format, as huggingface_hub parses it
    parse = pytest.importorskip("huggingface_hub").__dict__.get("parse_eval_result_entries")
    if parse is not None:
        parsed = parse(entries)
        assert [p.task_id for p in parsed] == ids and parsed[0].dataset_id == REPO
    with_rev = hub_results.eval_result_files(results, dataset_repo=REPO, dataset_revision="f" * 40)
    assert yaml.safe_load(next(iter(with_rev.values())))[0]["dataset"]["revision"] == "f" * 40


def test_benchmark_eval_yaml(results):
    names = [t.name for t in results.tasks]
    data = yaml.safe_load(hub_results.benchmark_eval_yaml(names, knn_tasks=["esc50"]))
    ids = [t["id"] for t in data["tasks"]]
    assert {"esc50/mlp", "esc50/knn", "fsd50k/mlp", "desed/mlp", "clotho/mlp", "librispeech/mlp"} <= set(ids)
    assert "desed/knn" not in ids
    assert {"id": "esc50/mlp", "config": "esc50", "split": "test"} in data["tasks"]
    # every .eval_results task id is declared by the benchmark
    entries = yaml.safe_load(next(iter(hub_results.eval_result_files(results, REPO).values())))
    assert {e["dataset"]["task_id"] for e in entries} <= set(ids)


def test_export_writes_and_merges(results_file, tmp_path):
    (tmp_path / "README.md").write_text(EXISTING_CARD)
    written = model_card.export(results_file, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["README.md", ".eval_results/xares-benchmark.yaml"]
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.license == "apache-2.0" and "Keep this paragraph" in card.text
    assert len(yaml.safe_load((tmp_path / ".eval_results/xares-benchmark.yaml").read_text())) == 8


def test_push_dry_run_makes_no_network_call(results_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("dry run opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    text = model_card.push(results_file, "org/encoder", dry_run=True)
    assert "org/encoder" in text
    assert "CommitOperationAdd(path_in_repo='README.md'" in text
    assert "CommitOperationAdd(path_in_repo='.eval_results/xares-benchmark.yaml'" in text
    assert "model-index" in text and "esc50/mlp" in text
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_push_commits_merged_card_and_eval_results(results_file, tmp_path, monkeypatch):
    """The real push path, with huggingface_hub's client replaced by a recorder (no network)."""
    import huggingface_hub

    existing = tmp_path / "README.md"
    existing.write_text(EXISTING_CARD)
    calls = {}

    class FakeApi:
        def repo_exists(self, repo_id):
            return True

        def create_commit(self, repo_id, operations, **kwargs):
            calls.update(repo_id=repo_id, operations=operations, **kwargs)
            return type("Info", (), {"commit_url": "https://huggingface.co/org/encoder/commit/0", "pr_url": None})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **kw: str(existing))
    url = model_card.push(results_file, "org/encoder", dry_run=False)
    assert url.endswith("/commit/0")
    paths = [op.path_in_repo for op in calls["operations"]]
    assert paths == ["README.md", ".eval_results/xares-benchmark.yaml"]
    card = ModelCard(calls["operations"][0].path_or_fileobj.decode())
    assert card.data.license == "apache-2.0" and "Keep this paragraph" in card.text
    assert calls["commit_message"].startswith("Add X-ARES results")


# ----------------------------------------------------------------------------- hostile names (issue 15, item 3)

FORGED = "x\n- task_id: esc50/mlp\n  value: 0.999"


def _hostile_file(tmp_path, edit) -> Path:
    data = json.loads(json.dumps(Results(encoder={"id": "org/encoder", "revision": "abc123", "layer": None},
                                         tasks=[_task("esc50", "ESC-50", "sound", "clip", "accuracy", 0.5, knn=0.4)],
                                         created="2025-01-15T10:30:00+00:00").to_dict()))
    edit(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["encoder"].update(id=FORGED), "encoder.id"),
        (lambda d: d["encoder"].update(id="x\r\n## Injected heading"), "encoder.id"),
        (lambda d: d["encoder"].update(id="x\u2028- task_id: esc50/mlp"), "encoder.id"),
        (lambda d: d["encoder"].update(revision="main\n# Injected"), "encoder.revision"),
        (lambda d: d["encoder"].update(layer="all\n- task_id: esc50/knn"), "encoder.layer"),
        (lambda d: d.update(created="2025-01-15\n## Injected heading"), "created"),
        (lambda d: d.update(created="yesterday"), "created"),
        (lambda d: d.update(xares_hf_version="0.1\n- task_id: x"), "xares_hf_version"),
        (lambda d: d["tasks"][0].update(formal_name="ESC-50\n## Injected"), "tasks[0].formal_name"),
        (lambda d: d["tasks"][0].update(domain="sound\n- forged"), "tasks[0].domain"),
        (lambda d: d["tasks"][0].update(metric="accuracy\n# x"), "tasks[0].metric"),
        (lambda d: d["tasks"][0].update(metric="made_up"), "tasks[0].metric"),
        (lambda d: d["tasks"][0].update(name="esc50/mlp\n- x"), "tasks[0].name"),
        (lambda d: d["tasks"][0].update(name="../esc50"), "tasks[0].name"),
        (lambda d: d["tasks"].append(dict(d["tasks"][0])), "tasks[1].name"),
        (lambda d: d["tasks"][0].update(eval_weight=-400.0), "tasks[0].eval_weight"),
    ],
)
def test_export_card_refuses_names_that_would_inject_yaml_or_markdown(tmp_path, capsys, edit, field):
    from xares_hf.cli import main

    path = _hostile_file(tmp_path, edit)
    out = tmp_path / "card"
    with pytest.raises(ValueError, match=re.escape(f"'{field}'")):  # hub_results.CardError
        model_card.export(path, out)
    assert main(["export-card", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xares-hf: error:") and f"'{field}'" in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.rglob("*"))  # refused before anything is written
    with pytest.raises(ValueError, match=re.escape(f"'{field}'")):  # hub_results.CardError
        model_card.push(path, "org/encoder", dry_run=True)


def test_export_card_shows_markup_in_names_as_text(tmp_path):
    """Names with markdown, HTML, pipes or the table's own end marker are published, as text: the YAML has exactly
    the entries meant and the README no heading, link, HTML tag or table cell that the names brought in."""
    hostile = "<img src=x onerror=alert(1)> | ## h [a](http://e) **b** `c` <!-- xares-hf results: end -->"

    def edit(d):
        d["encoder"].update(id=hostile, revision="a|b", layer="weighted")
        d["tasks"][0].update(formal_name="ESC|50 <script>alert(1)</script> # x")

    path = _hostile_file(tmp_path, edit)
    model_card.export(path, tmp_path / "card")
    entries = yaml.safe_load((tmp_path / "card" / ".eval_results" / "xares-benchmark.yaml").read_text())
    assert [e["dataset"]["task_id"] for e in entries] == ["esc50/mlp", "esc50/knn", "average/mlp", "average/knn"]
    assert [e["value"] for e in entries] == [0.5, 0.4, 0.5, 0.4]
    card = ModelCard.load(tmp_path / "card" / "README.md")
    assert card.data.model_name == hostile and len(card.data.eval_results) == 4
    text = card.text
    assert "<img" not in text and "<script" not in text and "&lt;img" in text
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert len(headings) == 2 and headings[0].startswith("# &lt;img") and headings[1] == "## X-ARES results"
    assert text.count("<!-- xares-hf results: end -->") == 1 and "[a](" not in text and "**b**" not in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 4 and all(len(re.findall(r"(?<!\\)\|", r)) == 6 for r in rows)
    # merging into that card again keeps exactly one table
    again = model_card.update_model_card(tmp_path / "card" / "README.md", Results.load(path))
    assert again.count("<!-- xares-hf results: start -->") == 1


def test_benchmark_repo_must_be_a_repo_id(results):
    with pytest.raises(ValueError, match="not a Hub repo id"):
        hub_results.eval_result_files(results, dataset_repo="x/y\n- task_id: esc50/mlp")


def test_export_card_refuses_averages_the_tasks_do_not_give(tmp_path):
    path = _hostile_file(tmp_path, lambda d: d["averages"].update(mlp=0.999))
    with pytest.raises(ValueError, match=r"'averages.mlp' is 0.999, but recomputed from the tasks' values it is 0.5"):
        model_card.export(path, tmp_path / "card")
    assert not (tmp_path / "card").exists()


def test_seed_spreads_are_not_published_as_averages():
    def seeded(name, values):
        task = _task(name, name, "sound", "clip", "accuracy", sum(values) / len(values))
        task.seed_runs = [{"seed": 42 + i, "mlp": v, "mlp_score": v, "knn": None, "knn_score": None} for i, v in enumerate(values)]
        task.mlp_std = float(np.std(values, ddof=1))
        return task

    results = Results(encoder={"id": "org/encoder"}, tasks=[seeded("esc50", [0.5, 0.7]), seeded("fsd50k", [0.3, 0.4])],
                      created="2025-01-15T10:30:00+00:00")
    assert "mlp_std" in results.averages
    entries = yaml.safe_load(next(iter(hub_results.eval_result_files(results, REPO).values())))
    ids = [e["dataset"]["task_id"] for e in entries]
    assert ids == ["esc50/mlp", "fsd50k/mlp", "average/mlp"]
    assert set(ids) <= {t["id"] for t in yaml.safe_load(hub_results.benchmark_eval_yaml(["esc50", "fsd50k"]))["tasks"]}
    names = [e.metric_name for e in hub_results.eval_results(results)]
    assert names == ["MLP accuracy", "MLP accuracy", "X-ARES weighted average (MLP)"]
