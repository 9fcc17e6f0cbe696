"""DeepLabv3+ (Chen et al., ECCV 2018): backbone -> ASPP -> decoder -> classifier."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from edgeseg._tf import keras
from edgeseg.errors import ConfigError, ModelError
from edgeseg.models.aspp import aspp, conv_bn_relu
from edgeseg.models.backbones import BACKBONES, get_backbone, imagenet_alpha_ok

L = keras.layers


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DeepLabv3+ model.

    Args:
        num_classes: output classes (the ignore label is not a class).
        backbone: a name in ``edgeseg.models.backbones.BACKBONES``.
        alpha: MobileNetV2 width multiplier.
        output_stride: 16 (ASPP rates 6/12/18) or 8 (12/24/36).
        head: ``plain`` 3x3 convolutions or ``separable`` atrous separable ones in ASPP and decoder.
        aspp_filters, decoder_filters, low_level_filters: 256 / 256 / 48 in the paper.
        input_size: (height, width); both multiples of ``output_stride``.
        dropout: after the ASPP projection.
        bn_momentum: BatchNormalization moving-average momentum. 0.99 suits long schedules;
            short from-scratch runs need a faster one (0.9): the moving variance starts at 1
            and otherwise still lags the real statistics when training stops.
    """

    num_classes: int
    backbone: str = "mobilenetv2"
    alpha: float = 1.0
    output_stride: int = 16
    head: str = "separable"
    aspp_filters: int = 256
    decoder_filters: int = 256
    low_level_filters: int = 48
    input_size: tuple[int, int] = (256, 256)
    dropout: float = 0.1
    bn_momentum: float = 0.99

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        get_backbone(self.backbone)
        if self.output_stride not in (8, 16):
            raise ConfigError(f"output stride must be 8 or 16, got {self.output_stride}")
        if self.head not in ("plain", "separable"):
            raise ConfigError(f"head must be 'plain' or 'separable', got '{self.head}'")
        if self.num_classes < 2:
            raise ConfigError(f"need at least 2 classes, got {self.num_classes}")
        if not 0 < self.bn_momentum < 1:
            raise ConfigError(f"bn momentum must be in (0, 1), got {self.bn_momentum}")
        if not 0 < self.alpha <= 2:
            raise ConfigError(f"alpha must be in (0, 2], got {self.alpha}")
        check_input_size(self.input_size, self.output_stride)

    @property
    def aspp_rates(self) -> tuple[int, ...]:
        return (6, 12, 18) if self.output_stride == 16 else (12, 24, 36)

    def replace(self, **changes) -> "ModelConfig":
        return ModelConfig(**{**asdict(self), **changes})

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model setting(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def check_input_size(size, output_stride: int) -> None:
    h, w = size
    if h <= 0 or w <= 0 or h % output_stride or w % output_stride:
        raise ConfigError(
            f"input {h}x{w} is not divisible by output stride {output_stride}; "
            f"use {round_up(max(h, output_stride), output_stride)}x{round_up(max(w, output_stride), output_stride)}"
        )


def build_deeplabv3plus(config: ModelConfig, backbone_weights: str | None = None,
                        final_upsample: bool = True, decoder_interpolation: str = "bilinear") -> keras.Model:
    """Build DeepLabv3+ for a fixed input size.

    The model takes RGB pixels in [0, 255] (float) and returns per-pixel logits
    ``(N, H, W, num_classes)``, or at stride 4 with ``final_upsample=False``.

    Args:
        config: the architecture.
        backbone_weights: ``None``/``"none"``, ``"imagenet"`` (Keras Applications weights,
            needs internet the first time) or a path to a Keras weights file (``.h5``) whose
            layer names match.
        final_upsample: include the last x4 bilinear upsample to the input size (exports leave
            it to the runtime and output stride-4 logits).
        decoder_interpolation: ``bilinear`` (the paper) or ``nearest`` for the x4 upsample of
            the ASPP output; int8 TFLite computes nearest exactly (same weights either way).

    Example:
        >>> model = build_deeplabv3plus(ModelConfig(num_classes=11, alpha=0.35, input_size=(64, 64)))
        >>> model.output_shape
        (None, 64, 64, 11)
    """
    spec = get_backbone(config.backbone)
    h, w = config.input_size
    separable = config.head == "separable"
    inputs = keras.Input((h, w, 3), name="image")
    x = L.Rescaling(list(spec.scale), list(spec.offset), name="preprocess")(inputs)
    low, high = spec.build(x, config.output_stride, config.alpha, config.bn_momentum)
    bn = config.bn_momentum

    y = aspp(high, config.aspp_filters, config.aspp_rates, separable, config.dropout, bn)
    up = config.output_stride // 4
    if decoder_interpolation not in ("bilinear", "nearest"):
        raise ConfigError(f"decoder interpolation must be bilinear or nearest, got '{decoder_interpolation}'")
    y = L.UpSampling2D(up, interpolation=decoder_interpolation, name="decoder_upsample")(y)
    low = conv_bn_relu(low, config.low_level_filters, 1, "decoder_project", bn_momentum=bn)
    y = L.Concatenate(name="decoder_concat")([y, low])
    y = conv_bn_relu(y, config.decoder_filters, 3, "decoder_conv_1", separable=separable, bn_momentum=bn)
    y = conv_bn_relu(y, config.decoder_filters, 3, "decoder_conv_2", separable=separable, bn_momentum=bn)
    y = L.Conv2D(config.num_classes, 1, name="classifier")(y)
    if final_upsample:
        y = L.UpSampling2D(4, interpolation="bilinear", name="logits_upsample")(y)
    # float32 logits also under mixed precision: softmax/loss in half precision is unstable.
    y = L.Activation("linear", dtype="float32", name="logits")(y)
    model = keras.Model(inputs, y, name=f"deeplabv3plus_{config.backbone}")
    load_backbone_weights(model, config, backbone_weights)
    return model


def load_backbone_weights(model, config: ModelConfig, weights: str | None) -> None:
    if weights in (None, "", "none"):
        return
    if weights == "imagenet":
        if not imagenet_alpha_ok(config.backbone, config.alpha):
            raise ConfigError(
                f"no ImageNet weights for {config.backbone} alpha={config.alpha}; "
                f"use one of {BACKBONES[config.backbone].alphas} or --backbone-weights none"
            )
        try:
            get_backbone(config.backbone).load_imagenet(model, config.alpha)
        except (OSError, ValueError) as e:  # download or file problems
            raise ModelError(f"could not load ImageNet weights for {config.backbone}: {e}") from e
        return
    from pathlib import Path

    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"--backbone-weights: file not found: {path}")
    try:
        model.load_weights(str(path), by_name=True, skip_mismatch=True)
    except Exception as e:  # noqa: BLE001 - h5py/keras raise many kinds
        raise ModelError(f"could not load backbone weights from {path}: {e}") from e


def count_params(model) -> int:
    return int(sum(int(w.shape.num_elements()) for w in model.weights))
