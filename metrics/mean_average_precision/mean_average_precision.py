"""Macro mean average precision for multi-label tasks, as X-ARES scores FSD50k (clip mAP) and frame-level tasks."""

import warnings

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score

_CITATION = """\
@inproceedings{zhang2025xares,
  title     = {{X-ARES}: A Comprehensive Framework for Assessing Audio Encoder Performance},
  author    = {Zhang, Junbo and Dinkel, Heinrich and Song, Yadong and others},
  booktitle = {Proc. Interspeech},
  year      = {2025},
  note      = {arXiv:2505.16369}
}
@article{scikit-learn,
  title   = {Scikit-learn: Machine Learning in {P}ython},
  author  = {Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
             Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
             Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal = {Journal of Machine Learning Research},
  volume  = {12},
  pages   = {2825--2830},
  year    = {2011}
}
"""

_DESCRIPTION = """\
Mean average precision (mAP) for multi-label tasks: for every class, the average precision (AP) of the
scores against the many-hot references, AP = sum_n (R_n - R_{n-1}) P_n over the descending score thresholds
(scikit-learn's `average_precision_score`, no interpolation), then the unweighted (macro) mean over classes.
X-ARES scores FSD50k this way (config "clip": one score vector per clip). Config "frame" takes a
frames x classes matrix per clip and flattens the frames of all clips before the same macro AP ("frame mAP").
Scores may be any real numbers (probabilities or logits); only their order matters. mAP lies in [0, 1];
higher is better. A class with no positive reference gets AP 0 (scikit-learn's and X-ARES' behaviour) unless
`ignore_empty_classes=True`, which averages only over classes that have positives.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: config "clip": `list` of `list` of `float`, one score vector (n_classes) per clip;
        config "frame": `list` of frames x n_classes matrices, one per clip. Scores must be finite.
    references: same shape as `predictions`, many-hot 0/1 integers.
    ignore_empty_classes (`bool`): if True, average only over classes with at least one positive reference;
        if False (default, as X-ARES), such classes count as AP 0.
Returns:
    mean_average_precision (`float`): macro mean of the per-class AP, in [0, 1]; 1.0 is a perfect ranking.
    classes_without_positives (`int`): number of classes that have no positive reference.
Examples:
    >>> import evaluate
    >>> from xares_hf.scoring import metric_path
    >>> mean_ap = evaluate.load(metric_path("mean_average_precision"))
    >>> mean_ap.compute(references=[[1, 0, 0], [0, 1, 0], [1, 1, 0]],
    ...                 predictions=[[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.4, 0.1, 0.3]])
    {'mean_average_precision': 0.611111111111111, 'classes_without_positives': 1}
    >>> mean_ap.compute(references=[[1, 0, 0], [0, 1, 0], [1, 1, 0]],
    ...                 predictions=[[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.4, 0.1, 0.3]], ignore_empty_classes=True)
    {'mean_average_precision': 0.9166666666666666, 'classes_without_positives': 1}
    >>> frame_map = evaluate.load(metric_path("mean_average_precision"), "frame")
    >>> frame_map.compute(references=[[[1, 0], [0, 1]], [[1, 1]]],
    ...                   predictions=[[[2.0, -1.0], [-3.0, 0.5]], [[0.1, 1.5]]])
    {'mean_average_precision': 1.0, 'classes_without_positives': 0}
"""

_CONFIGS = ("clip", "frame")


def _as_matrix(rows, name, config):
    """Stack the rows (clip) or the frames of all clips (frame) into an (n, n_classes) float array."""
    if config == "frame":
        rows = [frame for clip in rows for frame in clip]
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise ValueError(f"every row of {name} must have the same number of classes, got lengths {sorted(widths)}")
    if widths == {0}:
        raise ValueError(f"{name} have zero classes")
    return np.asarray(rows, dtype=np.float64)


def _check_many_hot(references):
    """Reject non-0/1 references before evaluate casts them to int64 (which would truncate 0.5 to 0 silently)."""
    if references is None:
        return
    try:
        rows = [np.asarray(references, dtype=np.float64)]
    except (TypeError, ValueError):  # ragged: check clip by clip, leave malformed rows to evaluate's format check
        rows = []
        for row in references:
            try:
                rows.append(np.asarray(row, dtype=np.float64))
            except (TypeError, ValueError):
                continue
    if any(not np.isin(row, (0, 1)).all() for row in rows):
        raise ValueError("references must be many-hot: only 0 and 1 are allowed")


def _check_inputs(predictions, references, config):
    if len(predictions) != len(references):
        raise ValueError(
            f"mean_average_precision needs one prediction per reference, got {len(predictions)} predictions "
            f"and {len(references)} references"
        )
    if config == "frame":
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            if len(pred) != len(ref):
                raise ValueError(f"clip {i} has {len(pred)} prediction frames but {len(ref)} reference frames")
    n_rows = sum(len(clip) for clip in predictions) if config == "frame" else len(predictions)
    if n_rows == 0:
        raise ValueError("mean_average_precision needs at least one prediction/reference pair, got empty input")
    scores, targets = _as_matrix(predictions, "predictions", config), _as_matrix(references, "references", config)
    if scores.shape[1] != targets.shape[1]:
        raise ValueError(f"predictions have {scores.shape[1]} classes but references have {targets.shape[1]}")
    if not np.isfinite(scores).all():
        raise ValueError("predictions contain non-finite scores (nan or inf)")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("references must be many-hot: only 0 and 1 are allowed")
    return scores, targets.astype(np.int64)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanAveragePrecision(evaluate.Metric):
    def _info(self):
        config = "clip" if self.config_name == "default" else self.config_name
        if config not in _CONFIGS:
            raise ValueError(f"unknown config '{self.config_name}' for mean_average_precision; use one of {_CONFIGS}")
        row_f, row_i = datasets.Sequence(datasets.Value("float64")), datasets.Sequence(datasets.Value("int64"))
        if config == "frame":
            row_f, row_i = datasets.Sequence(row_f), datasets.Sequence(row_i)
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": row_f, "references": row_i}),
            codebase_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.average_precision_score.html"],
            reference_urls=["https://github.com/jimbozhang/xares"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (references are checked to be 0/1 before int64 casting)."""
        _check_many_hot(references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference (the reference is checked to be 0/1 before int64 casting)."""
        _check_many_hot(None if reference is None else [reference])
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, ignore_empty_classes=False):
        config = "clip" if self.config_name == "default" else self.config_name
        scores, targets = _check_inputs(predictions, references, config)
        has_positive = targets.any(axis=0)
        if ignore_empty_classes:
            if not has_positive.any():
                raise ValueError("no class has a positive reference, so ignore_empty_classes leaves nothing to average")
            scores, targets = scores[:, has_positive], targets[:, has_positive]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No positive class found in y_true")
            # per class then the plain mean: identical to average="macro", and also valid for a single class
            per_class = [average_precision_score(targets[:, c], scores[:, c]) for c in range(targets.shape[1])]
        return {
            "mean_average_precision": float(np.mean(per_class)),
            "classes_without_positives": int((~has_positive).sum()),
        }
