"""A trained run's model, rebuilt from its saved config and weights: what export, QAT and
evaluate start from."""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.config import TrainConfig
from edgeseg.models.deeplabv3plus import build_deeplabv3plus
from edgeseg.rundir import RunDir


def load_run_model(run_dir: Path, input_size=None, weights: Path | None = None, **build_kwargs):
    """Rebuild a trained run's model at ``input_size`` (default: its evaluation size)."""
    run = RunDir(Path(run_dir)).require()
    config = TrainConfig.load(run.config)
    names = json.loads(run.dataset.read_text())["class_names"]
    size = tuple(input_size or config.data.eval_size)
    model = build_deeplabv3plus(config.model, len(names), size, **build_kwargs)
    # by_name: an export model without the final upsample has the same weighted layers.
    model.load_weights(str(weights or run.weights()), by_name=True)
    return model, config
