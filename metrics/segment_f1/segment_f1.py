"""Segment-based F1 for frame-level sound event detection, as X-ARES scores DESED (macro) and MAESTRO (micro)."""

import math
import numbers

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score

_CITATION = """\
@inproceedings{zhang2025xares,
  title     = {{X-ARES}: A Comprehensive Framework for Assessing Audio Encoder Performance},
  author    = {Zhang, Junbo and Dinkel, Heinrich and Song, Yadong and others},
  booktitle = {Proc. Interspeech},
  year      = {2025},
  note      = {arXiv:2505.16369}
}
@article{mesaros2016metrics,
  title   = {Metrics for Polyphonic Sound Event Detection},
  author  = {Mesaros, Annamaria and Heittola, Toni and Virtanen, Tuomas},
  journal = {Applied Sciences},
  volume  = {6},
  number  = {6},
  pages   = {162},
  year    = {2016}
}
"""

_DESCRIPTION = """\
Segment-based F1 for frame-level (sound event detection) tasks. Frame predictions are binarised with
`prediction > threshold` (X-ARES rounds sigmoid outputs, so exactly 0.5 becomes 0), then predictions and 0/1
targets are max-pooled per clip over non-overlapping windows of ceil(segment_length_in_s / hop) frames: a class is
active in a segment if it is active in any of its frames. As in X-ARES, a trailing partial window is dropped;
unlike X-ARES (which cannot pool it), a clip shorter than one window is pooled as one segment so its events still
count. The segments of all clips are stacked and scored with scikit-learn's multi-label `f1_score`
(`zero_division=0`): `macro` averages the per-class F1 (X-ARES: DESED, 1 s segments), `micro` pools the counts
over classes (X-ARES: MAESTRO, 0.1 s segments). The value lies in [0, 1]; higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of frames x classes `float` arrays): per clip, frame probabilities (or 0/1 decisions).
    references (`list` of frames x classes `int` arrays): per clip, 0/1 frame targets, same shape as the prediction.
    hop_size_in_ms (`float`): frame hop in milliseconds; required.
    segment_length_in_s (`float`): segment length in seconds. Defaults to 1.0.
    average (`str`): "macro" (mean of per-class F1) or "micro" (F1 of the pooled counts). Defaults to "macro".
    threshold (`float`): a frame is active if its prediction is strictly greater. Defaults to 0.5; pass 0 for logits.
Returns:
    segment_f1 (`float`): F1 in [0, 1].
    num_segments (`int`): the number of segments scored (over all clips; each holds every class).
Examples:
    >>> import evaluate
    >>> import numpy as np
    >>> from xares_hf.scoring import metric_path
    >>> segment_f1 = evaluate.load(metric_path("segment_f1"))
    >>> refs = np.zeros((9, 2), dtype=int); refs[1:3, 0] = 1; refs[5, 1] = 1; refs[8, 1] = 1
    >>> probs = np.zeros((9, 2)); probs[3, 0] = 0.9; probs[6, 0] = 0.7; probs[5, 1] = 0.5
    >>> segment_f1.compute(predictions=[probs], references=[refs], hop_size_in_ms=250)
    {'segment_f1': 0.3333333333333333, 'num_segments': 2}
    >>> segment_f1.compute(predictions=[probs], references=[refs], hop_size_in_ms=250, average="micro")
    {'segment_f1': 0.5, 'num_segments': 2}
    >>> segment_f1.compute(predictions=[[[0.2], [0.8]]], references=[[[0], [1]]], hop_size_in_ms=250)
    {'segment_f1': 1.0, 'num_segments': 1}
"""


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _clip(values, name, dtype):
    try:
        array = np.asarray(values, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be a frames x classes array with rows of equal length ({err})") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty frames x classes array, got shape {array.shape}")
    return array


def _pool(active, window):
    """Max-pool frames over non-overlapping windows; drop a trailing partial one unless the clip is shorter."""
    n_segments = active.shape[0] // window
    if n_segments == 0:
        return active.max(axis=0, keepdims=True)
    return active[: n_segments * window].reshape(n_segments, window, -1).max(axis=1)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SegmentF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                }
            ),
            reference_urls=["https://github.com/jimbozhang/xares", "https://doi.org/10.3390/app6060162"],
        )

    def _compute(
        self, predictions, references, hop_size_in_ms=None, segment_length_in_s=1.0, average="macro", threshold=0.5
    ):
        if hop_size_in_ms is None:
            raise ValueError("hop_size_in_ms is required (the frame hop of the predictions, in milliseconds)")
        hop = _positive(hop_size_in_ms, "hop_size_in_ms")
        segment = _positive(segment_length_in_s, "segment_length_in_s")
        if average not in ("macro", "micro"):
            raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if len(predictions) == 0:
            raise ValueError("segment_f1 needs at least one clip")
        # rounding to 9 decimals absorbs float error, e.g. 1.1 s / 100 ms = 11 frames, not 12
        window = math.ceil(round(segment / (hop / 1000.0), 9))

        pooled_pred, pooled_true, n_classes = [], [], None
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            pred = _clip(pred, f"predictions[{i}]", np.float64)
            ref = _clip(ref, f"references[{i}]", np.int64)
            if pred.shape[0] != ref.shape[0]:
                raise ValueError(f"clip {i}: predictions have {pred.shape[0]} frames but references have {ref.shape[0]}")
            n_classes = pred.shape[1] if n_classes is None else n_classes
            if pred.shape[1] != n_classes or ref.shape[1] != n_classes:
                raise ValueError(
                    f"clip {i}: class count differs (predictions {pred.shape[1]}, references {ref.shape[1]}, "
                    f"expected {n_classes})"
                )
            if not np.isfinite(pred).all():
                raise ValueError(f"clip {i}: predictions contain non-finite values (NaN or inf)")
            if not np.isin(ref, (0, 1)).all():
                raise ValueError(f"clip {i}: references must be 0/1 targets")
            pooled_pred.append(_pool(pred > threshold, window))
            pooled_true.append(_pool(ref == 1, window))

        y_pred = np.concatenate(pooled_pred).astype(np.int64)
        y_true = np.concatenate(pooled_true).astype(np.int64)
        if n_classes == 1:  # a one-column array is "binary" to sklearn, which would average over labels 0 and 1
            score = f1_score(y_true[:, 0], y_pred[:, 0], average="binary", zero_division=0)
        else:
            score = f1_score(y_true, y_pred, average=average, zero_division=0)
        return {"segment_f1": float(score), "num_segments": int(y_true.shape[0])}
