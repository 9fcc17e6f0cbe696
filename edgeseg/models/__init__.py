"""DeepLabv3+ and its backbones (TensorFlow / tf-keras)."""

from edgeseg.models.backbones import BACKBONES, get_backbone
from edgeseg.models.deeplabv3plus import ModelConfig, build_deeplabv3plus, check_input_size

__all__ = ["BACKBONES", "ModelConfig", "build_deeplabv3plus", "check_input_size", "get_backbone"]
