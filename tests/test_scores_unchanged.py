"""The embedding store and the trainer change how probes read and train, never what they compute: on xares-mini
(tiny), on the synthetic suite (which has a k-fold task), and with a learnt layer mix, every score, validation
history and best epoch equals the one recorded before they were introduced.

``tests/data/scores_before_store.json`` was written by ``python tests/test_scores_unchanged.py`` at commit c85a667
(the in-memory npz cache and the four separate training loops). A change that moves these numbers on purpose
regenerates the file and says in its commit which numbers moved and why.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "scores_before_store.json"
TOLERANCE = 1e-6


def _summary(results) -> dict:
    out = {}
    for task in results.tasks:
        out[task.name] = {"mlp": task.mlp, "knn": task.knn, "layer": task.layer, "layer_weights": task.layer_weights,
                          "folds": {name: {k: v for k, v in fold.items() if isinstance(v, (int, float)) and v is not None}
                                    for name, fold in task.folds.items()}}
    return out


def compute(root: Path) -> dict:
    """The scores of the runs this test pins down, computed with fresh caches under ``root``."""
    from helpers import save_tiny_model, save_tiny_qwen2
    from xares_hf import evaluate
    from xares_hf.suites import build_mini_suite, build_synthetic_suite

    mini = build_mini_suite(root / "mini", size="tiny", seed=0)
    synthetic = root / "synthetic"
    synthetic_cards = build_synthetic_suite(synthetic, size="tiny", seed=0)
    model = save_tiny_model("wav2vec2", root / "w2v")
    decoder = save_tiny_qwen2(root / "qwen2", ["one two three", "four five six seven eight nine zero"])
    run = lambda encoder, suite, tasks, **kw: _summary(evaluate(
        encoder, tasks=tasks, data_dir=suite, cache_dir=root / "cache", output_dir=None, **kw))
    mini_cards = mini / "cards"
    return {
        "probes": probe_histories(root),
        "log-mel mini": run("log-mel", mini, [mini_cards]),
        "log-mel synthetic": run("log-mel", synthetic, [synthetic_cards]),
        "log-mel llm asr": run("log-mel", mini, [mini_cards / "mini_digits.yaml"], asr_head="llm", asr_decoder=str(decoder)),
        "wav2vec2 weighted": run(str(model), mini, [mini_cards / f"{t}.yaml" for t in
                                                      ("mini_sounds", "mini_sound_events", "mini_digits", "mini_sound_captions")],
                                 layer="weighted"),
    }


def probe_histories(root: Path) -> dict:
    """Each head's validation history, training losses (ASR) and test output on the probe tests' synthetic data."""
    import test_probe_asr as asr_data
    import test_probe_retrieval as retrieval_data
    from helpers import save_tiny_qwen2
    from xares_hf.probes import train_asr_probe, train_retrieval_probe

    train, valid, test = asr_data.splits()
    ctc = train_asr_probe(train, valid, test[0], asr_data.iwer, **asr_data.CTC_ARGS)
    small = asr_data.splits(sizes=(24, 4, 4))
    decoder = save_tiny_qwen2(root / "qwen2-probe", small[0][1])
    llm = train_asr_probe(*small[:2], small[2][0], asr_data.iwer, decoder=str(decoder), **asr_data.LLM_ARGS)
    retrieval = train_retrieval_probe(*retrieval_data.splits(), retrieval_data.recall_at_1, seed=0, **retrieval_data.FAST)
    return {
        "ctc": {"valid": ctc.valid_scores, "losses": ctc.train_losses, "best_epoch": ctc.best_epoch, "test": ctc.test_hypotheses},
        "llm": {"valid": llm.valid_scores, "losses": llm.train_losses, "best_epoch": llm.best_epoch, "test": llm.test_hypotheses},
        "retrieval": {"valid": retrieval.valid_scores, "best_epoch": retrieval.best_epoch,
                      "test_audio": retrieval.audio_embeddings[:4, :4].round(5).tolist()},
    }


def _assert_close(before, after, where: str) -> None:
    if isinstance(before, dict):
        assert set(before) == set(after), f"{where}: keys {sorted(before)} became {sorted(after)}"
        for key in before:
            _assert_close(before[key], after[key], f"{where}/{key}")
    elif isinstance(before, list):
        assert len(before) == len(after), f"{where}: {len(before)} values became {len(after)}"
        for i, (b, a) in enumerate(zip(before, after)):
            _assert_close(b, a, f"{where}[{i}]")
    elif isinstance(before, float) and after is not None:
        assert math.isclose(before, after, rel_tol=TOLERANCE, abs_tol=TOLERANCE), f"{where}: {before} became {after}"
    else:
        assert before == after, f"{where}: {before!r} became {after!r}"


def test_scores_equal_those_before_the_store_and_trainer(tmp_path):
    before = json.loads(GOLDEN.read_text())
    _assert_close(before, compute(tmp_path), "scores")


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp:
        scores = compute(Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(scores, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
