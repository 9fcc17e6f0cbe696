"""DeepLabv3+ (Chen et al., ECCV 2018): backbone -> ASPP -> decoder -> classifier."""

from __future__ import annotations

from edgeseg._tf import keras
from edgeseg.config import DECODER_UPSAMPLING, ModelConfig
from edgeseg.core.errors import ConfigError, ModelError
from edgeseg.models.aspp import aspp, conv_bn_relu
from edgeseg.models.backbones import BACKBONES, get_backbone, imagenet_alpha_ok

L = keras.layers


DECODER_TAP, ASPP_TAP = "P2", "P5"  # the decoder's stride-4 features; ASPP's, at the output stride


def build_deeplabv3plus(config: ModelConfig, num_classes: int, input_size, backbone_weights: str | None = None,
                        final_upsample: bool = True, decoder_interpolation: str = "bilinear",
                        normalize: bool = True) -> keras.Model:
    """Build DeepLabv3+ for a fixed input size.

    The model takes RGB pixels in [0, 255] (float) and returns per-pixel logits
    ``(N, H, W, num_classes)``, or at stride 4 with ``final_upsample=False``.

    Args:
        config: the architecture.
        num_classes: output classes (the ignore label is not a class).
        input_size: (height, width), both multiples of the output stride.
        backbone_weights: ``None``/``"none"``, ``"imagenet"`` (Keras Applications weights,
            needs internet the first time) or a path to a Keras weights file (``.h5``) whose
            layer names match.
        final_upsample: include the last x4 bilinear upsample to the input size (exports leave
            it to the runtime and output stride-4 logits).
        decoder_interpolation: ``bilinear`` (the paper) or ``nearest`` for the x4 upsample of
            the ASPP output; int8 TFLite computes nearest exactly (same weights either way).
        normalize: include the backbone's input normalisation (a Rescaling layer); False: the
            model takes normalised input (the IMX500 refuses Rescaling and normalises on the
            sensor from the input quantization). The weights are the same either way.

    Example:
        >>> model = build_deeplabv3plus(ModelConfig(alpha=0.35), num_classes=11, input_size=(64, 64))
        >>> model.output_shape
        (None, 64, 64, 11)
    """
    spec = get_backbone(config.backbone)
    h, w = config.check_input_size(input_size)
    if num_classes < 2:
        raise ConfigError(f"need at least 2 classes, got {num_classes}")
    separable = config.head == "separable"
    inputs = keras.Input((h, w, 3), name="image")
    x = L.Rescaling(list(spec.scale), list(spec.offset), name="preprocess")(inputs) if normalize else inputs
    features = spec.build(x, config.output_stride, config.alpha, config.bn_momentum)
    low, high = features[DECODER_TAP], features[ASPP_TAP]
    bn = config.bn_momentum

    y = aspp(high, config.aspp_filters, config.aspp_rates, separable, config.dropout, bn)
    up = config.output_stride // 4
    if decoder_interpolation not in DECODER_UPSAMPLING:
        raise ConfigError(f"decoder interpolation must be one of {', '.join(DECODER_UPSAMPLING)}, "
                          f"got '{decoder_interpolation}'")
    y = L.UpSampling2D(up, interpolation=decoder_interpolation, name="decoder_upsample")(y)
    low = conv_bn_relu(low, config.low_level_filters, 1, "decoder_project", bn_momentum=bn)
    y = L.Concatenate(name="decoder_concat")([y, low])
    y = conv_bn_relu(y, config.decoder_filters, 3, "decoder_conv_1", separable=separable, bn_momentum=bn)
    y = conv_bn_relu(y, config.decoder_filters, 3, "decoder_conv_2", separable=separable, bn_momentum=bn)
    y = L.Conv2D(num_classes, 1, name="classifier")(y)
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
