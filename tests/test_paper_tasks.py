"""Each of the 22 shipped X-ARES cards loads its data from the X-ARES layout, a Hub-layout folder and Zenodo.

The shards are small stand-ins the test writes, named by each card's own patterns and labelled through
each card's own label spec, so every card's patterns, label fields and class vocabularies are exercised.
"""

import shutil

import pytest

from helpers import tone
from xares_hf.data import ensure_task_data, iter_audio, write_shards
from xares_hf.data.hub_publish import dataset_card
from xares_hf.tasks import LabelEncoder, load_task, shipped_cards
from zenodo_server import FakeZenodo

CARDS = sorted(shipped_cards())


def _meta(card, i):
    spec = card.labels
    if spec.kind == "index":
        return {spec.field: i % spec.num_classes}
    if spec.kind == "class_name":
        return {spec.field: spec.classes[i % spec.num_classes]}
    if spec.kind == "multi_label":
        return {spec.field: spec.separator.join(spec.classes[:2])}
    if spec.kind == "events":
        return [{spec.onset_field: 0.1, spec.offset_field: 0.3, spec.field: spec.classes[i % spec.num_classes]}]
    if spec.kind == "captions":
        return {f"caption_{k}": f"a sound number {i} caption {k}" for k in range(1, 6)}
    return {spec.field: "hello world"}


def _write(card, folder):
    for split, pattern in card.data.patterns().items():
        name = pattern.replace("*", "000000")
        if not (folder / name).exists():
            samples = [(f"{split}_{i}", tone(300 + 100 * i, 0.5), 16_000, _meta(card, i)) for i in range(2)]
            write_shards(samples, folder / (pattern.replace("*", "%06d") if "*" in pattern else pattern))


def _check_loads(card, data_dir):
    files = ensure_task_data(card, data_dir)
    assert set(files) == set(card.data.patterns())
    labels = LabelEncoder(card.labels, card.name)
    for split, split_files in files.items():
        samples = list(iter_audio(split_files, 16_000, card.name, split, card.data.crop_length))
        assert samples, f"{card.name}/{split}: no samples"
        for s in samples:
            labels.encode(s.meta, s.where, duration=s.audio.shape[0] / 16_000)


@pytest.mark.parametrize("name", CARDS)
def test_card_loads_from_every_source(name, tmp_path, monkeypatch):
    card = load_task(name)
    source = tmp_path / "xares" / card.name
    _write(card, source)
    _check_loads(card, tmp_path / "xares")  # X-ARES layout

    hub = tmp_path / "hub"
    shutil.copytree(source, hub / card.name)
    (hub / "README.md").write_text(dataset_card([card]))
    _check_loads(card, hub)  # Hub layout, configs from the dataset card

    with FakeZenodo() as server:  # Zenodo: the record serves the same files
        server.add_folder(card.data.zenodo_id, source)
        monkeypatch.setenv("XARES_HF_ZENODO_URL", server.url)
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "XARES_HF_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        _check_loads(card, tmp_path / "zenodo")
        assert any(path == f"/api/records/{card.data.zenodo_id}" for path, _ in server.requests)


def test_all_22_public_tasks_ship():
    assert len(CARDS) == 22
    assert all(not load_task(n).private and load_task(n).data.zenodo_id for n in CARDS)
