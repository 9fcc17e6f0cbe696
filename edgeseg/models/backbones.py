"""Backbones with atrous convolution for a chosen output stride, in a registry.

A builder takes the normalised input tensor and returns its named pyramid features, as
keras-hub's backbones do: ``{"P2": stride 4, "P3": stride 8, "P4": stride 16, "P5": the last
level}`` (with atrous convolution P4 and P5 stay at the output stride); DeepLabv3+ takes P2 for
its decoder and P5 for ASPP, by key. Layer names follow Keras Applications, so the ImageNet
weights load by name; adding a backbone is one registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgeseg._tf import keras
from edgeseg.core.errors import ConfigError, ModelError
from edgeseg.core.geometry import PAD_VALUE

L = keras.layers


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Args:
        build: ``build(inputs, output_stride, alpha, bn_momentum) -> {"P2": ..., "P5": ...}``,
            the pyramid features (Keras tensors) by level.
        scale, offset: per-channel input normalisation of RGB pixels in [0, 255]
            (``x * scale + offset``), folded into the model so a device feeds raw pixels.
        load_imagenet: ``load_imagenet(model, alpha)`` copies Keras Applications weights.
        alphas: width multipliers the builder accepts (ImageNet weights exist for these).
    """

    build: Callable
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    load_imagenet: Callable
    alphas: tuple[float, ...] = (1.0,)


def dilation_schedule(strides: list[int], output_stride: int, stride_in_filter: bool = True) -> list[tuple[int, int]]:
    """(stride, dilation) for each stage so the network stops at ``output_stride``.

    As in the DeepLab code, once the output stride is reached strides become 1 and later 3x3
    filters are dilated by the removed strides. With ``stride_in_filter`` (MobileNetV2: the 3x3
    depthwise filter itself is strided) the layer whose stride is removed keeps the current rate;
    otherwise (ResNet: a 1x1 conv is strided, the 3x3 filter comes after it) it is dilated too.
    """
    current, rate, out = 1, 1, []
    for s in strides:
        if current >= output_stride:
            if not stride_in_filter:
                rate *= s
            out.append((1, rate))
            if stride_in_filter:
                rate *= s
        else:
            out.append((s, rate))
            current *= s
    return out


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _copy_weights_by_name(model, source, transform=None) -> int:
    """Copy weights from ``source`` into same-named layers of ``model``; returns the count."""
    copied = 0
    for layer in source.layers:
        if not layer.weights:
            continue
        try:
            target = model.get_layer(layer.name)
        except ValueError:
            continue
        weights = layer.get_weights()
        if transform:
            weights = transform(layer.name, weights)
        if [w.shape for w in weights] != [w.shape for w in target.get_weights()]:
            raise ModelError(f"ImageNet weights for layer {layer.name} do not fit this model")
        target.set_weights(weights)
        copied += 1
    if not copied:
        raise ModelError("no backbone layer matched the ImageNet weights")
    return copied


# --- MobileNetV2 (Sandler et al. 2018) -------------------------------------------------------
# (expansion, output channels, stride) per inverted-residual block.
_MBV2_BLOCKS = [
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
]
# the pyramid taps: each level's first expansion activation (block 3's is stride 4, 144 * alpha
# channels: DeepLabv3+'s low-level features), and the last block's output for P5
_MBV2_LEVEL_BLOCKS = {3: "P2", 6: "P3", 13: "P4"}


def _bn(name, momentum):
    return L.BatchNormalization(epsilon=1e-3, momentum=momentum, name=name)


def _inverted_residual(x, block_id: int, expansion: int, filters: int, stride: int, rate: int,
                       alpha: float, bn_momentum: float):
    """Returns the block output and its expansion activation (the low-level tap of block 3)."""
    in_ch = x.shape[-1]
    out_ch = _make_divisible(filters * alpha, 8)
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    y = x
    if block_id:
        y = L.Conv2D(expansion * in_ch, 1, use_bias=False, name=prefix + "expand")(y)
        y = _bn(prefix + "expand_BN", bn_momentum)(y)
        y = L.ReLU(6.0, name=prefix + "expand_relu")(y)
    expanded = y
    y = L.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding="same", use_bias=False,
                          name=prefix + "depthwise")(y)
    y = _bn(prefix + "depthwise_BN", bn_momentum)(y)
    y = L.ReLU(6.0, name=prefix + "depthwise_relu")(y)
    y = L.Conv2D(out_ch, 1, use_bias=False, name=prefix + "project")(y)
    y = _bn(prefix + "project_BN", bn_momentum)(y)
    if stride == 1 and in_ch == out_ch:
        y = L.Add(name=prefix + "add")([x, y])
    return y, expanded


def build_mobilenetv2(inputs, output_stride: int, alpha: float, bn_momentum: float = 0.99):
    x = L.Conv2D(_make_divisible(32 * alpha, 8), 3, strides=2, padding="same", use_bias=False,
                 name="Conv1")(inputs)
    x = _bn("bn_Conv1", bn_momentum)(x)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    schedule = dilation_schedule([2] + [s for _, _, s in _MBV2_BLOCKS], output_stride)[1:]
    features = {}
    for i, ((t, c, _), (stride, rate)) in enumerate(zip(_MBV2_BLOCKS, schedule)):
        x, expanded = _inverted_residual(x, i, t, c, stride, rate, alpha, bn_momentum)
        if i in _MBV2_LEVEL_BLOCKS:
            features[_MBV2_LEVEL_BLOCKS[i]] = expanded
    features["P5"] = x
    return features


def load_mobilenetv2_imagenet(model, alpha: float) -> int:
    source = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=alpha, include_top=False, weights="imagenet")
    return _copy_weights_by_name(model, source)


# --- ResNet50 (He et al. 2016, Keras Applications variant) -----------------------------------
_RESNET50_STAGES = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]  # filters, blocks, stride


def _bottleneck(x, filters: int, stride: int, rate: int, name: str, shortcut: bool, bn_momentum: float):
    if shortcut:
        s = L.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        s = L.BatchNormalization(epsilon=1.001e-5, momentum=bn_momentum, name=name + "_0_bn")(s)
    else:
        s = x
    y = L.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    y = L.BatchNormalization(epsilon=1.001e-5, momentum=bn_momentum, name=name + "_1_bn")(y)
    y = L.Activation("relu", name=name + "_1_relu")(y)
    y = L.Conv2D(filters, 3, padding="same", dilation_rate=rate, name=name + "_2_conv")(y)
    y = L.BatchNormalization(epsilon=1.001e-5, momentum=bn_momentum, name=name + "_2_bn")(y)
    y = L.Activation("relu", name=name + "_2_relu")(y)
    y = L.Conv2D(4 * filters, 1, name=name + "_3_conv")(y)
    y = L.BatchNormalization(epsilon=1.001e-5, momentum=bn_momentum, name=name + "_3_bn")(y)
    y = L.Add(name=name + "_add")([s, y])
    return L.Activation("relu", name=name + "_out")(y)


def build_resnet50(inputs, output_stride: int, alpha: float, bn_momentum: float = 0.99):
    x = L.Conv2D(64, 7, strides=2, padding="same", name="conv1_conv")(inputs)
    x = L.BatchNormalization(epsilon=1.001e-5, momentum=bn_momentum, name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    # conv1 and pool1 reach stride 4; the stages then add 1, 2, 2, 2.
    schedule = dilation_schedule([4] + [s for _, _, s in _RESNET50_STAGES], output_stride,
                                 stride_in_filter=False)[1:]
    features = {}
    for stage, ((filters, blocks, _), (stride, rate)) in enumerate(zip(_RESNET50_STAGES, schedule), 2):
        for b in range(1, blocks + 1):
            first = b == 1
            x = _bottleneck(x, filters, stride if first else 1, rate, f"conv{stage}_block{b}", first,
                            bn_momentum)
        features[f"P{stage}"] = x  # conv2..conv5: P2..P5
    return features


def _bgr_to_rgb_conv1(name, weights):
    # Keras' ResNet50 weights expect BGR (caffe) input; edgeseg feeds RGB, so flip conv1's
    # input channels once instead of flipping every frame.
    if name == "conv1_conv":
        return [weights[0][:, :, ::-1, :], *weights[1:]]
    return weights


def load_resnet50_imagenet(model, alpha: float) -> int:
    source = keras.applications.ResNet50(input_shape=(224, 224, 3), include_top=False, weights="imagenet")
    return _copy_weights_by_name(model, source, _bgr_to_rgb_conv1)


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenetv2": BackboneSpec(
        build=build_mobilenetv2,
        scale=(1 / PAD_VALUE,) * 3,  # 0..255 -> -1..1: the pad value (mid-grey) becomes 0
        offset=(-1.0,) * 3,
        load_imagenet=load_mobilenetv2_imagenet,
        alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    ),
    "resnet50": BackboneSpec(
        build=build_resnet50,
        scale=(1.0,) * 3,
        offset=(-123.68, -116.779, -103.939),  # caffe mean, RGB order
        load_imagenet=load_resnet50_imagenet,
    ),
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}") from None


def imagenet_alpha_ok(name: str, alpha: float) -> bool:
    return any(np.isclose(alpha, a) for a in get_backbone(name).alphas)
