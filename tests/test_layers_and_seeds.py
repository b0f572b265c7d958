"""Layer-wise evaluation (a sweep over every layer, a learnt weighted sum) and scores over several seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers as tf
from transformers.modeling_outputs import BaseModelOutput

from helpers import write_card
from xares_hf import Results, evaluate
from xares_hf.data import write_shards
from xares_hf.scoring import aggregate

DIM = 8
INFORMATIVE = 1


class LayeredConfig(tf.PretrainedConfig):
    model_type = "xares-test-layered"

    def __init__(self, hidden_size: int = DIM, num_hidden_layers: int = 2, conv_stride=(320,), **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_size, self.num_hidden_layers, self.conv_stride = hidden_size, num_hidden_layers, list(conv_stride)


class LayeredModel(tf.PreTrainedModel):
    """Three hidden states of which only layer 1 carries the task (loudness): layers 0 and 2 are noise."""

    config_class = LayeredConfig
    main_input_name = "input_values"

    def __init__(self, config: LayeredConfig) -> None:
        super().__init__(config)
        self.gain = torch.nn.Parameter(torch.ones(1))
        self.post_init()

    def forward(self, input_values: torch.Tensor, output_hidden_states: bool = False, **_) -> BaseModelOutput:
        batch, samples = input_values.shape
        steps = samples // 320
        frames = input_values[:, : steps * 320].reshape(batch, steps, 320)
        noise = torch.randn(batch, steps, DIM, generator=torch.Generator().manual_seed(int(frames.abs().sum() * 1e3) % 2**31))
        loudness = torch.log(frames.pow(2).mean(-1) + 1e-6) * self.gain
        informative = 0.1 * noise.clone()  # loudness beside a constant: a direction a LayerNorm keeps
        informative[..., 0] += loudness
        informative[..., 1] += 1.0
        states = (noise, informative, torch.roll(noise, 1, dims=-1) * 2.0)
        return BaseModelOutput(last_hidden_state=states[-1], hidden_states=states if output_hidden_states else None)


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    root = tmp_path_factory.mktemp("layered")
    extractor_dir = root / "extractor"
    tf.Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(extractor_dir)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("valid", 16), ("test", 24)):
        items = []
        for i in range(n):
            loud = i % 2 == 0
            t = np.arange(8000) / 16_000
            wave = (0.5 if loud else 0.03) * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) * rng.uniform(0.7, 1.0)
            items.append((f"{split}{i:02d}", wave.astype(np.float32), 16_000, {"label": "high" if loud else "low"}))
        write_shards(items, root / "data" / "toy" / f"{split}-%03d.tar")
    card = write_card(root / "toy.yaml", probe={"epochs": 30, "learning_rate": 0.05, "batch_size": 8, "batch_size_encode": 8})

    def model() -> LayeredModel:
        m = LayeredModel(LayeredConfig())
        m.config.name_or_path = str(extractor_dir)
        return m

    return {"root": root, "card": card, "model": model}


def _run(layered, **kwargs) -> Results:
    return evaluate(layered["model"](), tasks=[layered["card"]], data_dir=layered["root"] / "data",
                    cache_dir=layered["root"] / "cache", output_dir=layered["root"] / "out", **kwargs)


def test_sweep_probes_every_layer_and_picks_the_informative_one(layered):
    results = _run(layered, layer="all")
    task = results["toy"]
    assert sorted(task.layer_profile) == ["0", "1", "2"]
    assert task.layer == INFORMATIVE
    assert task.layer_profile["1"]["mlp"] >= 0.95
    assert task.layer_profile["0"]["mlp"] <= 0.75 and task.layer_profile["2"]["mlp"] <= 0.75
    assert task.mlp == task.layer_profile["1"]["mlp"]  # the task's score is the chosen layer's
    assert results.encoder["layer"] == "all"
    saved = Results.load(next((layered["root"] / "out").glob("*__layer-all/results.json")))  # beside other layers' runs
    assert saved["toy"].layer_profile == task.layer_profile


def test_weighted_sum_learns_to_prefer_the_informative_layer_without_encoding_again(layered):
    _run(layered, layer="all")
    results = _run(layered, layer="weighted")
    task = results["toy"]
    assert not task.encoded  # the sweep's cached embeddings hold every layer
    weights = task.layer_weights
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0)
    assert int(np.argmax(weights)) == INFORMATIVE and weights[INFORMATIVE] > 0.4
    assert task.mlp >= 0.95 and task.layer == "weighted"
    assert results.encoder["layer"] == "weighted"


def test_a_single_layer_is_still_one_hidden_state(layered):
    one = _run(layered, layer=INFORMATIVE)["toy"]
    noise = _run(layered, layer=0)["toy"]
    assert one.mlp >= 0.95 and noise.mlp <= 0.75 and one.layer_profile == {}


def test_layer_modes_need_a_transformers_model(layered, tmp_path):
    where = dict(tasks=[layered["card"]], data_dir=layered["root"] / "data", cache_dir=tmp_path, output_dir=None)
    with pytest.raises(ValueError, match="layer=all needs a transformers model"):
        evaluate("log-mel", layer="weighted", **where)
    with pytest.raises(ValueError, match="'all' or 'weighted'"):
        evaluate(layered["model"](), layer="best", **where)


def test_seeds_give_distinct_runs_whose_mean_and_std_are_reported(tiny_suite, tmp_path):
    cards = [tiny_suite / "cards" / f"{n}.yaml" for n in ("synth_noise", "synth_vowel")]
    results = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path / "c", output_dir=tmp_path / "o",
                       seeds=3, seed=7)
    for task in results.tasks:
        runs = task.seed_runs
        assert [r["seed"] for r in runs] == [7, 8, 9]
        mlp = [r["mlp"] for r in runs]
        assert task.mlp == pytest.approx(np.mean(mlp)) and task.mlp_std == pytest.approx(np.std(mlp, ddof=1))
        knn = [r["knn"] for r in runs]
        assert task.knn == pytest.approx(np.mean(knn)) and task.knn_std == pytest.approx(np.std(knn, ddof=1))
    # each seed's run is the run a single-seed evaluation with that seed gives
    single = evaluate("log-mel", tasks=cards, data_dir=tiny_suite, cache_dir=tmp_path / "c", output_dir=None, seed=8)
    for task in results.tasks:
        assert task.seed_runs[1]["mlp"] == pytest.approx(single[task.name].mlp)
    assert len({r["mlp"] for t in results.tasks for r in t.seed_runs}) > 2  # the seeds really differ
    per_seed = [aggregate([t.seed_runs[i]["mlp"] for t in results.tasks], [t.eval_weight for t in results.tasks],
                          [t.metric for t in results.tasks])[1] for i in range(3)]
    assert results.averages["mlp_std"] == pytest.approx(np.std(per_seed, ddof=1))
    saved = json.loads(next((tmp_path / "o").rglob("results.json")).read_text())
    assert saved["averages"]["mlp_std"] == pytest.approx(results.averages["mlp_std"]) and saved["run"]["seeds"] == 3
