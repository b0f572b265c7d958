"""Write the shipped task cards from the X-ARES facts file (scripts/xares_tasks.json).

Run once when the facts change; the cards it writes are committed and are the source of truth
at run time. Only task types the pipeline supports are written (see SUPPORTED below).

    python scripts/cards_from_xares_facts.py [--facts scripts/xares_tasks.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "xares_hf" / "tasks" / "cards"
SUPPORTED = {("clip", "accuracy"), ("clip", "mAP"), ("frame", "segmentf1_macro"), ("frame", "segmentf1_micro"),
             ("contrastive", "recallatk_r1"), ("asr", "WER_inv")}
INDEX_LABELS = {"esc50", "libricount"}
INLINE_CLASSES = 12  # longer class vocabularies go to <name>.classes.txt beside the card
IMPLICIT_CLASSES = {"librispeechmalefemale": ["M", "F"]}
# label specs the facts describe in prose (see each task's label_description)
SPECIAL_LABELS = {
    "fsd50k": {"kind": "multi_label", "field": "soundevent", "separator": ";"},
    "desed": {"kind": "events", "field": "label", "separator": ",", "onset_field": "onset", "offset_field": "offset"},
    "maestro": {"kind": "events", "field": "note", "onset_field": "start", "offset_field": "end"},
    "clotho": {"kind": "captions"},
    "librispeech": {"kind": "transcript", "field": "trans"},
}
SPECIAL_PROBE = {
    "maestro": {"pos_weight": 10.0},
    "clotho": {"embed_dim": 1024, "tokenizer": "google-bert/bert-base-uncased"},
    "librispeech": {"head": "llm", "decoder": "Qwen/Qwen2.5-0.5B", "max_new_tokens": 200},
}


def card_for(task: dict) -> dict:
    name = task["name"]
    splits = task["splits"]
    data: dict = {}
    if splits["k_fold_splits"]:
        data["folds"] = list(splits["k_fold_splits"])
        data["fold_pattern"] = task["audio_tar_pattern_template"]
    else:
        data["splits"] = {k: task["audio_tar_patterns"][k] for k in ("train", "valid", "test")}
    data["crop_length"] = task["crop_length"]
    data["zenodo_id"] = task["zenodo_id"]
    classes = task.get("class_names") or IMPLICIT_CLASSES.get(name)
    if name in SPECIAL_LABELS:
        labels = dict(SPECIAL_LABELS[name])
        if task["num_classes"]:
            labels.update(num_classes=task["num_classes"], classes=[str(c) for c in classes])
    else:
        labels = {"field": task["label_fields"][0], "num_classes": task["num_classes"]}
        if name in INDEX_LABELS or not classes:
            labels["kind"] = "index"
        else:
            labels["kind"] = "class_name"
            labels["classes"] = [str(c) for c in classes]
    order = ("kind", "field", "separator", "events_field", "onset_field", "offset_field", "num_classes", "classes")
    card = {
        "name": name,
        "formal_name": task["formal_name"],
        "domain": task["domain"],
        "task_type": task["task_type"],
        "metric": task["metric"],
        "eval_weight": task["eval_weight"],
        "knn": task["do_knn"],
        "private": task["private"],
        "description": "Labels in X-ARES: " + task["label_description"],
        "data": data,
        "labels": {k: labels[k] for k in order if k in labels},
        "probe": {
            "epochs": task["epochs"],
            "learning_rate": task["learning_rate"],
            "batch_size": task["batch_size_train"],
            "batch_size_encode": task["batch_size_encode"],
            **SPECIAL_PROBE.get(name, {}),
        },
    }
    segment = task["metric_args"].get("segment_length_in_s")
    if segment is not None:
        card["metric_args"] = {"segment_length_in_s": segment}
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", default=str(ROOT / "scripts" / "xares_tasks.json"))
    args = parser.parse_args()
    facts = json.loads(Path(args.facts).read_text())
    CARDS.mkdir(parents=True, exist_ok=True)
    written = []
    for name, task in facts["tasks"].items():
        if task["private"] or (task["task_type"], task["metric"]) not in SUPPORTED:
            continue
        card = card_for(task)
        classes = card["labels"].get("classes")
        vocabulary = CARDS / f"{name}.classes.txt"
        if classes and len(classes) > INLINE_CLASSES:
            if any("\n" in c or c == "" for c in classes):
                raise ValueError(f"{name}: a class name cannot be written one per line")
            vocabulary.write_text("\n".join(classes) + "\n", encoding="utf-8")
            card["labels"] = {**{k: v for k, v in card["labels"].items() if k != "classes"}, "classes_file": vocabulary.name}
        else:
            vocabulary.unlink(missing_ok=True)
        text = f"# X-ARES task '{name}' ({task['file']} in jimbozhang/xares v0.1.3)\n"
        text += yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=120)
        (CARDS / f"{name}.yaml").write_text(text)
        written.append(name)
    print(f"wrote {len(written)} cards to {CARDS}: {', '.join(written)}")


if __name__ == "__main__":
    main()
