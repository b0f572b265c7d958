"""Inverted word error rate: iWER = max(0, 1 - WER), as X-ARES scores its ASR task (LibriSpeech)."""

import datasets
import evaluate
import jiwer

_CITATION = """\
@inproceedings{zhang2025xares,
  title     = {{X-ARES}: A Comprehensive Framework for Assessing Audio Encoder Performance},
  author    = {Zhang, Junbo and Dinkel, Heinrich and Song, Yadong and others},
  booktitle = {Proc. Interspeech},
  year      = {2025},
  note      = {arXiv:2505.16369}
}
@misc{vaessen2018jiwer,
  title        = {{JiWER}: Similarity measures for automatic speech recognition evaluation},
  author       = {Vaessen, Nik},
  year         = {2018},
  howpublished = {\\url{https://github.com/jitsi/jiwer}}
}
"""

_DESCRIPTION = """\
The inverted word error rate (iWER) turns the word error rate into a higher-is-better score:
iWER = max(0, 1 - WER). The WER is corpus-level: the word-level edit distance (substitutions + deletions +
insertions) summed over all utterances, divided by the total number of reference words, computed with
`jiwer.wer` on lowercased hypothesis and reference strings (no other normalisation beyond jiwer's default
whitespace handling). X-ARES scores its ASR task with it. The WER lies in [0, inf); the iWER lies in [0, 1],
clamped at 0 when the WER exceeds 1 (more edits than reference words). Higher iWER is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): hypothesis transcripts, one per utterance; an empty string is allowed and
        counts every reference word of that utterance as a deletion.
    references (`list` of `str`): reference transcripts, same length as `predictions`; at least one must
        contain a word.
Returns:
    iwer (`float`): max(0, 1 - wer), in [0, 1]; 1.0 is a perfect transcript.
    wer (`float`): corpus-level word error rate, in [0, inf); 0.0 is a perfect transcript.
Examples:
    >>> import evaluate
    >>> from xares_hf.scoring import metric_path
    >>> iwer = evaluate.load(metric_path("iwer"))
    >>> iwer.compute(references=["the cat sat", "on the mat"], predictions=["The cat sat", "on a mat"])
    {'iwer': 0.8333333333333334, 'wer': 0.16666666666666666}
    >>> iwer.compute(references=["hello world"], predictions=[""])
    {'iwer': 0.0, 'wer': 1.0}
    >>> iwer.compute(references=["yes"], predictions=["no no no"])
    {'iwer': 0.0, 'wer': 3.0}
"""


def _check_inputs(predictions, references):
    if len(predictions) != len(references):
        raise ValueError(
            f"iwer needs one prediction per reference, got {len(predictions)} predictions "
            f"and {len(references)} references"
        )
    if len(references) == 0:
        raise ValueError("iwer needs at least one prediction/reference pair, got empty input")
    for name, texts in (("predictions", predictions), ("references", references)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"iwer {name} must be strings, got {type(text).__name__} at index {i}")
    if all(not ref.strip() for ref in references):
        raise ValueError("iwer is undefined when every reference is empty (WER has no reference words)")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Iwer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/jitsi/jiwer"],
            reference_urls=["https://github.com/jimbozhang/xares", "https://en.wikipedia.org/wiki/Word_error_rate"],
        )

    def _compute(self, predictions, references):
        predictions, references = list(predictions), list(references)
        _check_inputs(predictions, references)
        wer = float(jiwer.wer([r.lower() for r in references], [p.lower() for p in predictions]))
        return {"iwer": max(0.0, 1.0 - wer), "wer": wer}
