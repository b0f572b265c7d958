"""A run's settings are checked once, when the run starts, with messages naming the bad value."""

import pytest

from xares_hf import evaluate
from xares_hf.run_config import RunConfig


@pytest.mark.parametrize("field, value, message", [
    ("on_bad_sample", "ignore", "on_bad_sample must be 'error' or 'skip', got 'ignore'"),
    ("seeds", 0, "seeds must be a positive integer, got 0"),
    ("seeds", True, "seeds must be a positive integer, got True"),
    ("layer_mode", "mean", "layer mode must be one of"),
    ("mixed_precision", "fp8", "mixed_precision must be 'bf16', 'fp16', 'no' or None, got 'fp8'"),
    ("protocol", "xares-0.2", "protocol must be one of"),
])
def test_bad_settings_are_refused_naming_the_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{field: value})


def test_settings_are_normalised_and_frozen():
    config = RunConfig(protocol="xares-0.1.3", mixed_precision="no", seed=7, seeds=3)
    assert config.protocol.name == "xares-0.1.3" and config.mixed_precision is None and config.seed_list == [7, 8, 9]
    with pytest.raises(AttributeError):
        config.seed = 1


def test_evaluate_refuses_bad_settings_before_touching_any_data(tmp_path):
    with pytest.raises(ValueError, match="mixed_precision must be"):
        evaluate("log-mel", tasks=["esc50"], data_dir=tmp_path / "nothing-here", output_dir=None, mixed_precision="fp8")
    assert not (tmp_path / "nothing-here").exists()
