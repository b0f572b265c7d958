"""Names from outside (remote keys, archive members, encoder ids) become paths in one place, and results files
are written under a temporary name unique to each writer."""

import json
import os
import random
import threading

import pytest

from xares_hf.paths import UnsafeNameError, atomic_file, atomic_write_text, child_path, inside, safe_component
from xares_hf.results import Results, TaskResult

HOSTILE = ["/etc/passwd", "../evil-000000.tar", "..", ".", "", "a/b.tar", "a\\b.tar", "x\x00y.tar", "x\ny.tar",
           "x\x1b[31m.tar", "C:evil.tar", "a" * 300]


@pytest.mark.parametrize("name", HOSTILE)
def test_child_path_refuses_names_that_are_not_one_plain_file_name(tmp_path, name):
    with pytest.raises(UnsafeNameError, match=r"^archive member .* refused"):
        child_path(tmp_path, name, "archive member")
    assert list(tmp_path.iterdir()) == []


def test_child_path_raises_the_callers_error_type_and_accepts_ordinary_names(tmp_path):
    class Mine(ValueError):
        pass

    with pytest.raises(Mine, match=r"Zenodo record 7, file key '\.\./x': "):
        child_path(tmp_path, "../x", "Zenodo record 7, file key", error=Mine)
    for name in ("wds-audio-fold-1-000000.tar", "résumé 2.flac", "..hidden.tar", "a..b"):
        assert child_path(tmp_path, name, "file") == tmp_path / name


def test_child_path_refuses_a_symlink_that_leads_out_of_the_folder(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "shard.tar").symlink_to(tmp_path / "elsewhere.tar")
    with pytest.raises(UnsafeNameError, match=r"'shard\.tar'.*outside"):
        child_path(tmp_path / "root", "shard.tar", "file key")


def test_safe_component_keeps_hub_ids_readable_and_neutralises_the_rest(tmp_path):
    assert safe_component("org/model") == "org__model"
    assert safe_component("xares-hf/log-mel") == "xares-hf__log-mel"
    assert safe_component("MIT/ast-finetuned-audioset-10-10-0.4593") == "MIT__ast-finetuned-audioset-10-10-0.4593"
    for text in HOSTILE + ["org__model", "org model", "a/b/c", "-rf", "CON", "nul.txt", "encoder.py:MyEncoder"]:
        name = safe_component(text)
        assert child_path(tmp_path, name, "folder") == tmp_path / name  # always one plain file name
        assert not name.startswith((".", "-")) and len(name.encode()) <= 160


def test_safe_component_never_gives_two_names_one_folder():
    rng = random.Random(0)
    alphabet = ["a", "B", "1", "/", "_", "__", ".", "-", ":", " ", "é", "layer-", "___"]
    texts = {"org/model", "org__model", "org_model", "org model", "org/model/", "org//model", "ORG/model"}
    texts |= {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(20_000)}
    names: dict[str, str] = {}
    for text in texts:
        name = safe_component(text, reserved=("__layer-",))
        assert names.setdefault(name, text) == text, f"{text!r} and {names[name]!r} both become {name!r}"
        assert "__layer-" not in name or name.endswith(tuple("0123456789abcdef"))


def _results(encoder_id: str, layer=None, tasks: int = 1) -> Results:
    encoder = {"id": encoder_id} | ({} if layer is None else {"layer": layer})
    return Results(encoder=encoder, tasks=[
        TaskResult(name=f"t{i}", formal_name="T", domain="speech", task_type="clip", metric="accuracy", mlp=0.5,
                   mlp_score=0.5, knn=None, knn_score=None, eval_weight=1.0, eval_size=10, seed=0)
        for i in range(tasks)
    ])


def test_encoder_ids_that_neutralise_alike_are_saved_apart(tmp_path):
    runs = [("org/model", None), ("org__model", None), ("org_model", None), ("org model", None),
            ("log-mel/layer-3", None), ("log-mel", 3), ("log-mel", "all"), ("..", None), ("/abs", None)]
    paths = {_results(i, layer).save(tmp_path / "out"): (i, layer) for i, layer in runs}
    assert len(paths) == len(runs)  # no two runs share a results.json
    for path, (encoder_id, layer) in paths.items():
        assert path.parent.parent == tmp_path / "out"
        assert Results.load(path).encoder == _results(encoder_id, layer).encoder
    assert (tmp_path / "out" / "org__model" / "results.json").is_file()
    assert (tmp_path / "out" / "log-mel__layer-all" / "results.json").is_file()


def test_concurrent_saves_all_succeed_and_a_reader_never_sees_a_partial_file(tmp_path):
    results = _results("org/model", tasks=300)  # ~190 kB of JSON: writes take long enough to overlap
    path = results.save(tmp_path)
    errors, partial, stop = [], [], threading.Event()

    def writer() -> None:
        for _ in range(8):
            try:
                results.save(tmp_path)
            except Exception as err:  # noqa: BLE001 - every failure counts
                errors.append(repr(err))

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except ValueError:
                partial.append(1)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer) for _ in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == [] and partial == []
    # no temp file left behind; the hidden lock that serialises the writers stays
    assert sorted(p.name for p in path.parent.iterdir()) == [".results.json.lock", "results.json"]
    assert Results.load(path).encoder["id"] == "org/model"


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_atomic_writes_keep_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644


def test_atomic_file_takes_any_writer_and_a_failing_one_leaves_the_old_file(tmp_path):
    import numpy as np

    target = tmp_path / "entry.npz"
    with atomic_file(target) as out:
        np.savez(out, x=np.arange(3))
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="encoder died"):
        with atomic_file(target) as out:
            out.write(b"half")
            raise RuntimeError("encoder died")
    assert np.load(target)["x"].tolist() == [0, 1, 2] and list(tmp_path.iterdir()) == [target]


def test_inside_resolves_dot_dots_and_links(tmp_path):
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "out").symlink_to(tmp_path)
    assert inside(tmp_path / "task", tmp_path / "task" / "a.tar")
    assert not inside(tmp_path / "task", tmp_path / "task" / ".." / "a.tar")
    assert not inside(tmp_path / "task", tmp_path / "task" / "out" / "a.tar")
