import json
from pathlib import Path

import numpy as np
import pytest

from helpers import write_card
from xares_hf.tasks import LabelEncoder, LabelError, TaskCard, TaskCardError, load_task, load_tasks, shipped_cards

FACTS = Path(__file__).resolve().parents[1] / "scripts" / "xares_tasks.json"


def test_shipped_cards_carry_the_xares_facts():
    assert FACTS.is_file(), f"the X-ARES task facts are expected at {FACTS}"
    facts = json.loads(FACTS.read_text())["tasks"]
    cards = shipped_cards()
    assert len(cards) == 22
    for name in cards:
        card, fact = load_task(name), facts[name]
        assert card.eval_weight == fact["eval_weight"]
        assert card.labels.num_classes == fact["num_classes"]
        assert card.probe.epochs == fact["epochs"] and card.probe.batch_size == fact["batch_size_train"]
        assert card.knn == fact["do_knn"]
        assert card.data.crop_length == fact["crop_length"]
        if fact["splits"]["k_fold_splits"]:
            assert card.data.folds == fact["splits"]["k_fold_splits"]
            assert list(card.data.patterns().values()) == list(fact["audio_tar_patterns"].values())
        else:
            assert card.data.patterns() == fact["audio_tar_patterns"]
        if fact.get("class_names") and card.labels.kind != "index":
            assert card.labels.classes == [str(c) for c in fact["class_names"]]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"metric": None, "eval_weight": None}, "eval_weight"),
        ({"domain": "space"}, "domain"),
        ({"probe": {"epochs": "ten"}}, "probe.epochs"),
        ({"labels": {"kind": "class_name", "field": "label", "num_classes": 3, "classes": ["a", "b"]}}, "labels"),
        ({"data": {"folds": [1, 2], "fold_pattern": "fold.tar"}}, "data"),
        ({"data": {"splits": {"train": "a*.tar", "test": "b*.tar"}}}, "data"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_card_names_file_and_field(tmp_path, overrides, field):
    path = write_card(tmp_path / "bad.yaml", **overrides)
    with pytest.raises(TaskCardError) as err:
        TaskCard.from_yaml(path)
    assert str(path) in str(err.value)
    assert f"field '{field}" in str(err.value)


def test_unreadable_cards_are_clear_errors(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(TaskCardError, match="broken.yaml: not valid YAML"):
        load_task(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(TaskCardError, match="must be a YAML mapping"):
        load_task(tmp_path / "list.yaml")
    with pytest.raises(TaskCardError, match="unknown task 'nope'"):
        load_task("nope")


def test_load_tasks_by_folder_and_rejects_duplicates(tmp_path):
    write_card(tmp_path / "a.yaml", name="alpha")
    write_card(tmp_path / "b.yaml", name="beta")
    assert [c.name for c in load_tasks([tmp_path])] == ["alpha", "beta"]
    with pytest.raises(TaskCardError, match="more than once: alpha"):
        load_tasks([tmp_path, tmp_path / "a.yaml"])


def test_label_kinds_need_no_python(tmp_path):
    single = load_task(write_card(tmp_path / "a.yaml"))
    enc = LabelEncoder(single.labels, "toy")
    assert enc.encode_many([{"label": "high"}, {"label": "low"}], ["s1", "s2"]).tolist() == [1, 0]
    with pytest.raises(LabelError, match=r"task 'toy', file x.tar, sample 'k1': label 'mid' .* not one of"):
        enc.encode({"label": "mid"}, "file x.tar, sample 'k1'")
    with pytest.raises(LabelError, match="has no field 'label'"):
        enc.encode({"other": 1}, "s")

    index = load_task(write_card(tmp_path / "b.yaml", labels={"kind": "index", "field": "y", "num_classes": 3}))
    enc = LabelEncoder(index.labels, "toy")
    assert enc.encode_many([{"y": 2}, {"y": "0"}], ["a", "b"]).tolist() == [2, 0]
    with pytest.raises(LabelError, match="class index 3 outside 0..2"):
        enc.encode({"y": 3}, "s")
    with pytest.raises(LabelError, match="not an integer class index"):
        enc.encode({"y": 1.5}, "s")

    multi = load_task(
        write_card(tmp_path / "c.yaml", metric="mAP", knn=False, labels={"kind": "multi_label", "field": "tags", "num_classes": 3, "classes": ["a", "b", "c"], "separator": ";"})
    )
    enc = LabelEncoder(multi.labels, "toy")
    assert np.array_equal(enc.encode_many([{"tags": "a;c"}, {"tags": "b"}], ["x", "y"]), [[1, 0, 1], [0, 1, 0]])
    with pytest.raises(LabelError, match="'d'"):
        enc.encode({"tags": "a;d"}, "s")
