"""Recall@k for audio-text retrieval (audio-to-text and text-to-audio), as X-ARES scores Clotho."""

import numbers

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
@inproceedings{drossos2020clotho,
  title     = {Clotho: an Audio Captioning Dataset},
  author    = {Drossos, Konstantinos and Lipping, Samuel and Virtanen, Tuomas},
  booktitle = {Proc. IEEE ICASSP},
  pages     = {736--740},
  year      = {2020}
}
"""

_DESCRIPTION = """\
Recall@k for audio-text retrieval. Every caption (text) embedding is compared with every audio-clip embedding by
cosine similarity (both sides L2-normalised; an all-zero vector stays zero, so its similarity to anything is 0).
Text-to-audio (t2a): a caption is a hit at k if its own clip is among the k most similar clips.
Audio-to-text (a2t): a clip is a hit at k if ANY of its captions is among the k most similar captions.
Ties never help: a relevant item's rank is 1 + the number of NON-relevant candidates whose similarity is >= its
own (the worst place it can take among its ties). For a2t the clip's best-ranked relevant caption counts, i.e.
rank = 1 + #{captions of other clips with similarity >= the clip's highest similarity to one of its own captions}.
So constant embeddings score 0 at every k below the number of candidates, not 1.
R@k is the mean of a2t and t2a recall; X-ARES scores Clotho (5 captions per clip) with R@1.
t2a mAP@10 is the DCASE retrieval measure: each caption has one relevant clip, AP@10 = 1/rank if rank <= 10 else 0,
averaged over captions. All values lie in [0, 1]; higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): one caption (text) embedding per row, n_captions x dim.
    references (`list` of `int`): for each caption, the index (0 .. n_audio-1) of the audio clip it describes.
    audio_embeddings (2-D array-like of `float`): n_audio x dim audio-clip embeddings; required. Every clip needs
        at least one caption.
    k (`int` or `list` of `int`): cut-offs. Defaults to [1, 5, 10].
Returns:
    For each k: `a2t_R@k`, `t2a_R@k` and `R@k` (their mean), fractions in [0, 1]; and `t2a_mAP@10` in [0, 1].
Examples:
    >>> import evaluate
    >>> from xares_hf.scoring import metric_path
    >>> recall = evaluate.load(metric_path("recall_at_k"))
    >>> audio = [[1.0, 0.0], [0.0, 1.0]]
    >>> captions = [[1.0, 0.1], [0.9, 0.2], [0.1, 1.0], [0.8, 0.3]]
    >>> recall.compute(predictions=captions, references=[0, 0, 1, 1], audio_embeddings=audio, k=1)
    {'a2t_R@1': 1.0, 't2a_R@1': 0.75, 'R@1': 0.875, 't2a_mAP@10': 0.875}
    >>> recall.compute(predictions=[[1.0, 1.0]] * 4, references=[0, 0, 1, 1], audio_embeddings=[[1.0, 1.0]] * 2, k=[1, 2])
    {'a2t_R@1': 0.0, 't2a_R@1': 0.0, 'R@1': 0.0, 'a2t_R@2': 0.0, 't2a_R@2': 1.0, 'R@2': 0.5, 't2a_mAP@10': 0.5}
"""


def _matrix(values, name):
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be a 2-D array of numbers with rows of equal length ({err})") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows x dim), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


def _cutoffs(k):
    ks = [k] if isinstance(k, numbers.Integral) and not isinstance(k, bool) else list(k)
    if not ks or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in ks):
        raise ValueError(f"k must be a positive int or a non-empty list of positive ints, got {k!r}")
    return list(dict.fromkeys(int(v) for v in ks))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RecallAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://github.com/jimbozhang/xares", "https://zenodo.org/records/4783391"],
        )

    def _compute(self, predictions, references, audio_embeddings=None, k=(1, 5, 10)):
        ks = _cutoffs(k)
        if audio_embeddings is None:
            raise ValueError("audio_embeddings is required (n_audio x dim audio-clip embeddings)")
        if len(predictions) == 0:
            raise ValueError("recall_at_k needs at least one caption embedding")
        text = _matrix(predictions, "predictions (caption embeddings)")
        audio = _matrix(audio_embeddings, "audio_embeddings")
        if text.shape[1] != audio.shape[1]:
            raise ValueError(
                f"embedding dims differ: captions have {text.shape[1]}, audio_embeddings have {audio.shape[1]}"
            )
        refs = np.asarray(references, dtype=np.int64)
        n_audio = audio.shape[0]
        if refs.min() < 0 or refs.max() >= n_audio:
            raise ValueError(f"references must be audio clip indices in [0, {n_audio - 1}], got {refs.min()}..{refs.max()}")
        missing = np.flatnonzero(np.bincount(refs, minlength=n_audio) == 0)
        if missing.size:
            raise ValueError(f"every audio clip needs at least one caption; clips without one: {missing[:10].tolist()}")

        sim = text @ audio.T  # n_captions x n_audio
        rows = np.arange(len(refs))
        # t2a: 1 + clips other than the caption's own with similarity >= the own clip's (pessimistic ties)
        t2a_rank = (sim >= sim[rows, refs][:, None]).sum(axis=1)
        # a2t: 1 + captions of OTHER clips with similarity >= the clip's best similarity to one of its own captions
        sim_a = sim.T  # n_audio x n_captions
        relevant = refs[None, :] == np.arange(n_audio)[:, None]
        best = np.where(relevant, sim_a, -np.inf).max(axis=1)
        a2t_rank = 1 + ((sim_a >= best[:, None]) & ~relevant).sum(axis=1)

        result = {}
        for cutoff in ks:
            a2t, t2a = float(np.mean(a2t_rank <= cutoff)), float(np.mean(t2a_rank <= cutoff))
            result[f"a2t_R@{cutoff}"] = a2t
            result[f"t2a_R@{cutoff}"] = t2a
            result[f"R@{cutoff}"] = (a2t + t2a) / 2
        result["t2a_mAP@10"] = float(np.mean(np.where(t2a_rank <= 10, 1.0 / t2a_rank, 0.0)))
        return result
