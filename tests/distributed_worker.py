"""Trains every probe head on small synthetic data and writes what it learnt: run by test_distributed_heads.py as
one process and under ``accelerate launch`` with two, which must agree."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import test_probe_asr as asr_data  # noqa: E402
import test_probe_retrieval as retrieval_data  # noqa: E402
from xares_hf import distributed  # noqa: E402
from xares_hf.probes import train_asr_probe, train_frame_probe, train_linear_probe, train_retrieval_probe  # noqa: E402


def clip_data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    return (np.eye(3)[y] @ rng.normal(size=(3, 8)) + 0.5 * rng.normal(size=(n, 8))).astype(np.float32), y


def frame_data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    frames = [rng.normal(size=(int(t), 6)).astype(np.float32) for t in rng.integers(3, 12, size=n)]
    return frames, [(f[:, :2] > 0).astype(np.float32) for f in frames]


def accuracy(logits, labels) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())


def frame_score(probs, targets) -> float:
    return float(np.mean([((p > 0.5) == t).mean() for p, t in zip(probs, targets)]))


def main(decoder: str, out: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    results = {}
    (x, y), (xv, yv), (xt, _) = clip_data(0, 45), clip_data(1, 12), clip_data(2, 9)
    linear = train_linear_probe((x, y), (xv, yv), xt, 3, accuracy, epochs=4, learning_rate=0.05, batch_size=7, seed=0,
                                desc="linear")
    results["linear"] = (linear.valid_scores, linear.fit.train_losses, linear.test_predictions.tolist(), linear.fit)
    (f, t), (fv, tv), (ft, _) = frame_data(0, 21), frame_data(1, 6), frame_data(2, 5)
    frame = train_frame_probe((f, t), (fv, tv), ft, 2, frame_score, epochs=4, learning_rate=0.05, batch_size=5, seed=0,
                              desc="frame")
    results["frame"] = (frame.valid_scores, frame.fit.train_losses, [p.tolist() for p in frame.test_predictions], frame.fit)
    retrieval = train_retrieval_probe(*retrieval_data.splits(), retrieval_data.recall_at_1, seed=0,
                                      **{**retrieval_data.FAST, "batch_size": 13, "epochs": 3}, desc="retrieval")
    results["retrieval"] = (retrieval.valid_scores, retrieval.fit.train_losses, retrieval.audio_embeddings.tolist(), retrieval.fit)
    train, valid, test = asr_data.splits(sizes=(30, 6, 5))
    ctc = train_asr_probe(train, valid, test[0], asr_data.iwer, epochs=3, learning_rate=3e-3, batch_size=7, seed=0, desc="ctc")
    results["ctc"] = (ctc.valid_scores, ctc.train_losses, ctc.test_hypotheses, ctc.fit)
    small = asr_data.splits(sizes=(11, 4, 3))
    llm = train_asr_probe(*small[:2], small[2][0], asr_data.iwer, decoder=decoder,
                          **{**asr_data.LLM_ARGS, "batch_size": 3, "epochs": 2}, desc="llm")
    results["llm"] = (llm.valid_scores, llm.train_losses, llm.test_hypotheses, llm.fit)
    if distributed.is_main():
        Path(out).write_text(json.dumps({name: {"valid": v, "losses": l, "test": t, "best_epoch": fit.best_epoch,
                                                "items_per_process": fit.items_per_process}
                                         for name, (v, l, t, fit) in results.items()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
