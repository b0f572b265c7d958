"""Build the leaderboard's reference rows and task list from the X-ARES facts (scripts/xares_tasks.json, a copy of the facts X-ARES 0.1.3 was read into).

The published X-ARES numbers (dasheng, wav2vec2, whisper, data2vec; README of X-ARES v0.1.3) become results
files in xares-hf's own format, marked as references and as protocol ``xares-0.1.3`` (they were computed by
xares 0.1.3's code, k-NN included), so the Space shows them beside runs of that protocol only:

    python scripts/build_reference_results.py [--facts scripts/xares_tasks.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xares_hf.results import Results, TaskResult
from xares_hf.results_schema import json_schema_text
from xares_hf.tasks import load_task, shipped_cards

ROOT = Path(__file__).resolve().parents[1]
KNN_NOTE = ("k-NN by xares 0.1.3's code, which normalises each feature dimension over the training set "
            "(xares/trainer.py, KNN), not each embedding: not cosine k-NN")
OUT = ROOT / "spaces_app"
REFERENCE_LABEL = "xares 0.1.3 README (commit 161f0ef)"
MINI_TASKS = {  # the built-in suite's tasks, so its results are accepted too
    "mini_keywords": ("Mini keywords (espeak-ng)", "speech", "clip", "accuracy"),
    "mini_language": ("Mini language ID (espeak-ng)", "speech", "clip", "accuracy"),
    "mini_gender": ("Mini voice gender (espeak-ng)", "speech", "clip", "accuracy"),
    "mini_digits": ("Mini digit strings ASR (espeak-ng)", "speech", "asr", "WER_inv"),
    "mini_instrument": ("Mini instruments (FluidR3 GM)", "music", "clip", "accuracy"),
    "mini_notes": ("Mini piano notes (FluidR3 GM)", "music", "frame", "segmentf1_micro"),
    "mini_sounds": ("Mini sound classes (ufoai-sound)", "sound", "clip", "accuracy"),
    "mini_sound_events": ("Mini sound event detection (ufoai-sound)", "sound", "frame", "segmentf1_macro"),
    "mini_sound_tags": ("Mini sound tagging (ufoai-sound)", "sound", "clip", "mAP"),
    "mini_sound_captions": ("Mini audio captions retrieval (ufoai-sound)", "sound", "contrastive", "recallatk_r1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", default=str(ROOT / "scripts" / "xares_tasks.json"))
    args = parser.parse_args()
    facts = json.loads(Path(args.facts).read_text())
    published = facts["published_results"]
    cards = {name: load_task(name) for name in shipped_cards()}

    tasks = {n: {"formal_name": c.formal_name, "domain": c.domain, "task_type": c.task_type, "metric": c.metric,
                 "eval_weight": c.eval_weight, "suite": "x-ares"} for n, c in cards.items()}
    tasks.update({n: {"formal_name": f, "domain": d, "task_type": t, "metric": m, "eval_weight": None, "suite": "xares-mini"}
                  for n, (f, d, t, m) in MINI_TASKS.items()})
    (OUT / "known_tasks.json").write_text(json.dumps(tasks, indent=1) + "\n")
    (OUT / "results.schema.json").write_text(json_schema_text())  # the package's schema, which the Space checks with

    for model, description in published["models"].items():
        rows = []
        for name, card in cards.items():
            mlp = dict(published["mlp"].get(name, [])).get(model)
            if mlp is None:
                continue
            knn = dict(published["knn"].get(name, [])).get(model) if card.knn else None
            rows.append(TaskResult(
                name=name, formal_name=card.formal_name, domain=card.domain, task_type=card.task_type, metric=card.metric,
                mlp=float(mlp), mlp_score=float(mlp), knn=None if knn is None else float(knn),
                knn_score=None if knn is None else float(knn), eval_weight=card.eval_weight, eval_size=0, seed=42,
                details={"source": published["source"]},
            ))
        results = Results(
            encoder={"id": f"{REFERENCE_LABEL}: {model}", "revision": "published", "reference": True,
                     "description": f"{description} {KNN_NOTE}."},
            tasks=rows, created="2025-05-22T00:00:00+00:00", run={"source": published["source"], "protocol": "xares-0.1.3"},
        )
        path = OUT / "reference" / f"{model}.json"
        path.write_text(json.dumps(results.to_dict(), indent=1) + "\n")
        print(f"wrote {path} ({len(rows)} tasks)")


if __name__ == "__main__":
    main()
