"""Accuracy: the fraction of clips whose predicted class equals the reference class (X-ARES clip tasks)."""

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
Accuracy is the proportion of correct predictions among all predictions: (number of predictions equal to
the reference) / (number of predictions). X-ARES scores every single-label clip task with it (the argmax of the
probe's logits against the integer class label). It lies in [0, 1]; higher is better.
This module is the offline-loadable accuracy that xares-hf scores with; its values equal evaluate's canonical
`accuracy` module and scikit-learn's `accuracy_score`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class indices.
    references (`list` of `int`): reference class indices, same length as `predictions`.
    normalize (`bool`): if False, return the number of correct predictions instead of the fraction. Defaults to True.
Returns:
    accuracy (`float` or `int`): fraction (or count) of correct predictions; 1.0 is perfect.
Examples:
    >>> import evaluate
    >>> from xares_hf.scoring import metric_path
    >>> accuracy = evaluate.load(metric_path("accuracy"))
    >>> accuracy.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 2])
    {'accuracy': 0.5}
    >>> accuracy.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 2], normalize=False)
    {'accuracy': 2}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://github.com/jimbozhang/xares"],
        )

    def _compute(self, predictions, references, normalize=True):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.size == 0:
            raise ValueError("accuracy needs at least one prediction")
        correct = int((predictions == references).sum())
        return {"accuracy": correct / predictions.size if normalize else correct}
