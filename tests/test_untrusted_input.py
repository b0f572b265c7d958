"""Input from others is not trusted: a model's own Python code runs only when allowed, results files are
checked against the schema before use (and never evaluated), and leaderboard submissions are stored atomically."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xares_hf import Results
from xares_hf.encoders import EncoderContractError, check_encoder, encode_batch, load_encoder
from xares_hf.results import TaskResult

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"

# --- trust_remote_code -----------------------------------------------------------------------------------------

MODELING = '''
from pathlib import Path

Path({marker!r}).write_text("the model's own code ran")  # at import time: proves whether it was executed

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class TinyCustomConfig(PretrainedConfig):
    model_type = "xares_tiny_custom"

    def __init__(self, hidden_size=8, hop=320, **kwargs):
        self.hidden_size = hidden_size
        self.hop = hop
        super().__init__(**kwargs)


class TinyCustomModel(PreTrainedModel):
    config_class = TinyCustomConfig
    main_input_name = "input_values"

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(config.hop, config.hidden_size)
        self.post_init()

    def forward(self, input_values, attention_mask=None, output_hidden_states=False, **kwargs):
        n = input_values.shape[1] // self.config.hop
        x = self.proj(input_values[:, : n * self.config.hop].reshape(input_values.shape[0], n, self.config.hop))
        return BaseModelOutput(last_hidden_state=x, hidden_states=(x, x) if output_hidden_states else None)
'''


@pytest.fixture()
def remote_code_model(tmp_path, monkeypatch):
    """A save_pretrained-style folder whose config.json maps AutoConfig/AutoModel to its own modeling file.

    Written by hand (config.json, weights, preprocessor config), so the custom module is never imported here;
    transformers' copy of trusted remote code goes to a temporary modules cache, not the user's."""
    import transformers.dynamic_module_utils as dynamic
    from safetensors.torch import save_file
    from transformers import Wav2Vec2FeatureExtractor

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # transformers appends its modules cache to sys.path
    folder = tmp_path / "custom_model"
    folder.mkdir()
    marker = tmp_path / "custom_code_ran"
    (folder / "modeling_custom.py").write_text(MODELING.format(marker=str(marker)))
    config = {
        "architectures": ["TinyCustomModel"],
        "auto_map": {"AutoConfig": "modeling_custom.TinyCustomConfig", "AutoModel": "modeling_custom.TinyCustomModel"},
        "model_type": "xares_tiny_custom",
        "hidden_size": 8,
        "hop": 320,
    }
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    save_file({"proj.weight": torch.randn(8, 320) * 0.05, "proj.bias": torch.zeros(8)}, str(folder / "model.safetensors"))
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder, marker, tmp_path / "hf_modules"


def test_model_with_its_own_code_is_refused_and_its_code_never_runs(remote_code_model):
    folder, marker, modules = remote_code_model
    with pytest.raises(EncoderContractError) as caught:
        load_encoder(str(folder))
    message = str(caught.value)
    assert f"transformers model '{folder}' ships its own Python code" in message
    assert str(folder.resolve()) in message  # where to review it
    assert "trust_remote_code=True" in message and "--trust-remote-code" in message
    assert isinstance(caught.value.__cause__, ValueError) and "trust_remote_code" in str(caught.value.__cause__)
    assert not marker.exists(), "the model's code was executed without trust_remote_code"
    assert not list(modules.rglob("modeling_custom.py")), "the model's code was copied into the modules cache"
    with pytest.raises(EncoderContractError, match="ships its own Python code"):
        load_encoder(str(folder), trust_remote_code=False)
    assert not marker.exists()


def test_model_with_its_own_code_loads_when_trusted(remote_code_model):
    folder, marker, _ = remote_code_model
    encoder = load_encoder(str(folder), trust_remote_code=True)
    assert marker.exists()
    assert type(encoder.model).__name__ == "TinyCustomModel"
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (16_000, 8, 20.0)
    assert not check_encoder(encoder).warnings
    frames = encode_batch(encoder, [np.zeros(16_000, np.float32), np.zeros(8_000, np.float32)], strict_frames=True)
    assert [f.shape for f in frames] == [(50, 8), (25, 8)]
    # the model's code is part of its identity: edited code never reuses embeddings cached for the old code
    before = encoder.identity["revision"]
    (folder / "modeling_custom.py").write_text((folder / "modeling_custom.py").read_text() + "\n# edited\n")
    assert load_encoder(str(folder), trust_remote_code=True).identity["revision"] != before


# --- Results.load ----------------------------------------------------------------------------------------------


def _results() -> Results:
    task = TaskResult(
        name="toy", formal_name="Toy task", domain="sound", task_type="clip", metric="accuracy",
        mlp=0.75, mlp_score=0.75, knn=0.5, knn_score=0.5, eval_weight=10, eval_size=12, seed=42,
        folds={"fold0": {"mlp": 0.75, "knn": 0.5, "best_epoch": 3}}, timings={"encode_s": 1.5, "probe_s": 0.25},
        details={"tokenizer": None},
    )
    return Results(encoder={"id": "org/enc", "revision": "abc", "layer": None}, tasks=[task], run={"device": "cpu"})


@pytest.fixture()
def results_file(tmp_path) -> Path:
    return _results().save(tmp_path)


def _rewrite(path: Path, mutate) -> Path:
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))  # json.dumps writes NaN / Infinity as bare words, as Python's json does
    return path


def test_a_results_file_round_trips(results_file):
    loaded = Results.load(results_file)
    assert loaded.to_dict() == _results().to_dict() | {"created": loaded.created}
    assert loaded["toy"].folds["fold0"]["best_epoch"] == 3


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def mutate(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _drop(*keys):
    def mutate(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


BAD_RESULTS = [
    (_set("schema_version", 2), r"field 'schema_version' is 2, this xares-hf reads schema_version 1"),
    (_set("schema_version", True), r"field 'schema_version' is True"),
    (_drop("tasks", 0, "mlp"), r"field 'tasks\[0\]\.mlp' \(task 'toy'\) is missing"),
    (_drop("encoder"), r"field 'encoder' is missing"),
    (_drop("averages"), r"field 'averages' is missing"),
    (_set("tasks", 0, "__class__", "os.system"), r"unknown field 'tasks\[0\]\.__class__' \(task 'toy'\)"),
    (_set("exec", "print(1)"), r"unknown field 'exec'"),
    (_set("tasks", 0, "mlp", "0.75"), r"field 'tasks\[0\]\.mlp' \(task 'toy'\) must be a finite number, got str '0.75'"),
    (_set("tasks", 0, "mlp", True), r"field 'tasks\[0\]\.mlp' \(task 'toy'\) must be a finite number, got bool True"),
    (_set("tasks", 0, "mlp", float("nan")), r"field 'tasks\[0\]\.mlp' \(task 'toy'\) must be a finite number, got nan"),
    (_set("tasks", 0, "knn_score", float("inf")), r"field 'tasks\[0\]\.knn_score' \(task 'toy'\) must be a finite number, got inf"),
    (_set("tasks", 0, "folds", "fold0", "mlp", float("nan")), r"field 'tasks\[0\]\.folds\.fold0\.mlp' \(task 'toy'\) must be a finite number"),
    (_set("tasks", 0, "details", "x", [1, float("-inf")]), r"field 'tasks\[0\]\.details\.x\[1\]' \(task 'toy'\) must be a finite number"),
    (_set("averages", "mlp", float("nan")), r"field 'averages\.mlp' must be a finite number, got nan"),
    (_set("tasks", 0, "name", 5), r"field 'tasks\[0\]\.name' must be a string, got int 5"),
    (_set("tasks", 0, "eval_size", 1.5), r"field 'tasks\[0\]\.eval_size' \(task 'toy'\) must be an integer, got float 1.5"),
    (_set("tasks", 0, "encoded", "yes"), r"field 'tasks\[0\]\.encoded' \(task 'toy'\) must be true or false"),
    (_set("tasks", 0, "timings", []), r"field 'tasks\[0\]\.timings' \(task 'toy'\) must be a JSON object, got list"),
    (_set("tasks", {"name": "toy"}), r"field 'tasks' must be a JSON list, got dict"),
    (_set("tasks", [7]), r"field 'tasks\[0\]' must be a JSON object, got int"),
    (_set("encoder", "id", ["a"]), r"field 'encoder\.id' must be a string, got \['a'\]"),
    (_set("run", "device", float("nan")), r"field 'run\.device' must be a finite number, got nan"),
    (_set("created", 20261127), r"field 'created' must be a string, got int 20261127"),
    # what the types cannot say: forged derived numbers, names that are not one line, unknown vocabularies
    (_set("tasks", 0, "mlp_score", 0.05), r"field 'tasks\[0\]\.mlp_score' is 0.05, but recomputed from accuracy 0.75 it is 0.75"),
    (_set("tasks", 0, "knn_score", 1.0), r"field 'tasks\[0\]\.knn_score' is 1.0, but recomputed from accuracy 0.5 it is 0.5"),
    (_set("averages", "mlp", 0.999), r"field 'averages\.mlp' is 0.999, but recomputed from the tasks' values it is 0.75"),
    (_set("tasks", 0, "seed_runs", [{"seed": 42, "mlp": 0.75, "mlp_score": 0.75, "knn": 0.5, "knn_score": 0.5}]),
     r"field 'tasks\[0\]\.seed_runs' has one run"),
    (_set("tasks", 0, "seed_runs", [{"seed": 42, "mlp": 0.7, "mlp_score": 0.7, "knn": 0.5, "knn_score": 0.5},
                                    {"seed": 43, "mlp": 0.9, "mlp_score": 0.9, "knn": 0.5, "knn_score": 0.5}]),
     r"field 'tasks\[0\]\.mlp' is 0.75, but recomputed from the mean of its seed runs it is 0.8"),
    (_set("encoder", "id", "org/enc\x1b[2J\nforged"), r"field 'encoder\.id' holds the control character '\\x1b'"),
    (_set("tasks", 0, "formal_name", "Toy\u2028task"), r"field 'tasks\[0\]\.formal_name' holds the control character"),
    (_set("tasks", 0, "metric", "made_up"), r"field 'tasks\[0\]\.metric' = 'made_up' is not a known metric"),
    (_set("tasks", 0, "task_type", "oracle"), r"field 'tasks\[0\]\.task_type' = 'oracle' is not a known task type"),
    (_set("tasks", 0, "eval_weight", -5), r"field 'tasks\[0\]\.eval_weight' must not be negative"),
    (lambda d: d["tasks"].append(dict(d["tasks"][0])), r"field 'tasks\[1\]\.name': task 'toy' appears twice"),
    (_set("tasks", 0, "details", "x", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
     r"JSON nested 37 levels deep; a results file has at most 32"),
]


@pytest.mark.parametrize("mutate, message", BAD_RESULTS)
def test_results_files_off_the_schema_are_refused_naming_file_and_field(results_file, mutate, message):
    _rewrite(results_file, mutate)
    with pytest.raises(ValueError, match=message) as caught:
        Results.load(results_file)
    assert str(caught.value).startswith(f"results file {results_file}: ")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xff\xfe{\x00}\x00", r"not valid UTF-8"),
        (b'{"schema_version": 1, ', r"not valid JSON"),
        (b"", r"not valid JSON"),
        (b'{"schema_version": 1, "schema_version": 1}', r"not valid JSON \(duplicate key 'schema_version'\)"),
        (b"[1, 2]", r"not an xares-hf results file \(a JSON object\), got list"),
        (b"__import__('os').system('touch pwned')", r"not valid JSON"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", r"JSON nested 100001 levels deep"),
        (b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[["}', r"field 'schema_version' is None"),
    ],
)
def test_files_that_are_not_json_objects_are_refused(tmp_path, raw, message):
    path = tmp_path / "results.json"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as caught:
        Results.load(path)
    assert str(caught.value).startswith(f"results file {path}: ")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_text_that_looks_like_code_stays_text(results_file, tmp_path):
    payload = f"__import__('pathlib').Path({str(tmp_path / 'ran')!r}).write_text('x')"
    _rewrite(results_file, _set("tasks", 0, "formal_name", payload))
    loaded = Results.load(results_file)
    assert loaded["toy"].formal_name == payload and not (tmp_path / "ran").exists()
    assert payload in str(loaded)


# --- atomic submission store -----------------------------------------------------------------------------------


@pytest.fixture()
def submission(monkeypatch):
    monkeypatch.syspath_prepend(str(SPACE))
    import submission as module

    return module


def _submission_data() -> dict:
    return {"schema_version": 1, "encoder": {"id": "org/my encoder"}, "tasks": [{"name": "mini_keywords", "mlp": 0.5}]}


def test_store_writes_the_whole_file_under_a_temporary_name_then_renames(submission, tmp_path, monkeypatch):
    folder = tmp_path / "submissions"
    data = _submission_data()
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        src, dst = Path(src), Path(dst)
        seen.append((src, dst, src.read_text(), dst.exists()))
        assert not src.name.endswith(".json")  # never visible to the leaderboard's *.json glob
        return real_replace(src, dst)

    monkeypatch.setattr(submission.os, "replace", replace)
    path = submission.store(data, folder)
    assert len(seen) == 1
    src, dst, content, existed = seen[0]
    assert src.parent == folder and dst == path and not existed
    assert json.loads(content) == data  # complete before it got its final name
    assert json.loads(path.read_text()) == data
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temporary left behind
    # named by the one sanitiser the package uses too (an id with a space gets a hash: it is not a plain Hub id)
    assert path.name.startswith("org__my_encoder___") and path.suffix == ".json"
    assert path.stat().st_mode & 0o644 == 0o644


def test_a_failed_store_leaves_nothing_behind(submission, tmp_path, monkeypatch):
    folder = tmp_path / "submissions"

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(submission.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        submission.store(_submission_data(), folder)
    assert list(folder.iterdir()) == []


def test_uploads_stored_in_the_same_instant_never_replace_each_other(submission, tmp_path, monkeypatch):
    monkeypatch.setattr(submission.time, "time_ns", lambda: 1_700_000_000_000_000_000)  # one clock tick for all
    monkeypatch.setattr(submission.time, "strftime", lambda fmt: "20261202T080000")
    paths = {submission.store(_submission_data(), tmp_path) for _ in range(50)}
    assert len(paths) == 50 and len(list(tmp_path.glob("*.json"))) == 50
