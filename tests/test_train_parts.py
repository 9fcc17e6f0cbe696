"""Pieces of the training loop: schedule, strategy choice, mixed precision, file cache."""

import json

import pytest

from edgeseg._tf import keras, tf
from edgeseg.core.errors import ConfigError
from edgeseg.config import ModelConfig
from edgeseg.models import build_deeplabv3plus
from edgeseg.train.schedule import PolyDecayWithWarmup
from edgeseg.train.strategy import is_chief, make_strategy


def test_poly_schedule_with_warmup():
    s = PolyDecayWithWarmup(1.0, total_steps=110, warmup_steps=10, power=1.0)
    assert float(s(0)) == pytest.approx(0.1)
    assert float(s(9)) == pytest.approx(1.0)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.5)
    assert float(s(110)) == pytest.approx(0.0)
    assert float(s(500)) == pytest.approx(0.0)


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON"):
        make_strategy("multiworker")


def test_chief_detection(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    cluster = {"worker": ["a:1", "b:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief()


def test_mixed_precision_keeps_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_deeplabv3plus(ModelConfig(alpha=0.35), 3, (32, 32))
        assert model.get_layer("classifier").compute_dtype == "float16"
        assert model.output.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_file_cache(synth_root, tmp_path):
    from edgeseg.data import load_split
    from edgeseg.data.augment import Augment
    from edgeseg.data.pipeline import build_train_dataset

    split = load_split(synth_root, "synthetic", "val")
    ds = build_train_dataset(split, 2, Augment((32, 32)), cache=str(tmp_path / "cache"), repeat=False)
    assert sum(1 for _ in ds) == 2
    assert list(tmp_path.glob("cache*.index"))
