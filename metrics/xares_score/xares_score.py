"""X-ARES benchmark score: per-task metrics normalised to 0-1, averaged with each task's weight."""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{zhang2025xares,
  title     = {{X-ARES}: A Comprehensive Framework for Assessing Audio Encoder Performance},
  author    = {Zhang, Junbo and Dinkel, Heinrich and Song, Yadong and others},
  booktitle = {Proc. Interspeech},
  year      = {2025},
  note      = {arXiv:2505.16369}
}
"""

_DESCRIPTION = """\
The X-ARES aggregation. Each task's metric value is normalised to 0-1 between its worst and best values,
(value - worst) / (best - worst), clipped to [0, 1]; the benchmark score is the weighted mean of the normalised
scores, sum(score * weight) / sum(weight), where X-ARES' weight is the task's evaluation-set size (capped; see
the task cards). MLP and kNN are aggregated separately, with one call each. Tasks with weight 0 drop out, as in
X-ARES (a disabled task, or kNN on a task without kNN).
"""

_KWARGS_DESCRIPTION = """
Args:
    scores (`list` of `float`): each task's raw metric value (accuracy, mAP, F1, Recall@1, iWER, ...).
    weights (`list` of `float`): each task's weight (X-ARES: its eval_weight); non-negative.
    worst (`float` or `list` of `float`): the metric value that normalises to 0. Defaults to 0.
    best (`float` or `list` of `float`): the metric value that normalises to 1. Defaults to 1.
Returns:
    score (`float`): the weighted mean of the normalised scores, in [0, 1].
    normalised_scores (`list` of `float`): each task's normalised score.
    total_weight (`float`): the sum of the weights.
Examples:
    >>> import evaluate
    >>> from xares_hf.scoring import metric_path
    >>> xares_score = evaluate.load(metric_path("xares_score"))
    >>> xares_score.compute(scores=[0.9, 0.5], weights=[300, 100])
    {'score': 0.8, 'normalised_scores': [0.9, 0.5], 'total_weight': 400.0}
    >>> xares_score.compute(scores=[0.25, 1.5], weights=[1, 1], worst=[0.0, 1.0], best=[0.5, 2.0])
    {'score': 0.5, 'normalised_scores': [0.5, 0.5], 'total_weight': 2.0}
"""


def _per_task(value, n, name):
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"'{name}' must be one number or one per task ({n}), got {len(array)}")
    if not np.isfinite(array).all():
        raise ValueError(f"'{name}' holds a non-finite value")
    return array


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class XaresScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"scores": datasets.Value("float64"), "weights": datasets.Value("float64")}),
            reference_urls=["https://github.com/jimbozhang/xares", "https://arxiv.org/abs/2505.16369"],
        )

    def _compute(self, scores, weights, worst=0.0, best=1.0):
        scores = np.asarray(scores, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        n = scores.shape[0]
        if n == 0:
            raise ValueError("xares_score needs at least one task score")
        if not np.isfinite(scores).all():
            raise ValueError(f"xares_score got a non-finite task score: {scores.tolist()}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"weights must be finite and non-negative, got {weights.tolist()}")
        worst, best = _per_task(worst, n, "worst"), _per_task(best, n, "best")
        if (best == worst).any():
            raise ValueError("'best' and 'worst' must differ for every task")
        normalised = np.clip((scores - worst) / (best - worst), 0.0, 1.0)
        total = float(weights.sum())
        if total <= 0:
            raise ValueError("the weights sum to 0: no task counts towards the score")
        score = float((normalised * weights).sum() / total)
        return {"score": score, "normalised_scores": [float(v) for v in normalised], "total_weight": total}
