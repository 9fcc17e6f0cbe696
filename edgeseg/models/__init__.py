"""DeepLabv3+ and its backbones (TensorFlow / tf-keras); the architecture's settings are
:class:`edgeseg.config.ModelConfig`."""

from edgeseg.models.backbones import BACKBONES, get_backbone
from edgeseg.models.deeplabv3plus import build_deeplabv3plus
from edgeseg.models.run_model import load_run_model

__all__ = ["BACKBONES", "build_deeplabv3plus", "get_backbone", "load_run_model"]
