"""DeepLabv3+ structure: shapes, atrous rates, layers QAT/TFLite can take, parameter counts."""

import numpy as np
import pytest

from edgeseg._tf import keras
from edgeseg.core.errors import ConfigError
from edgeseg.config import ModelConfig
from edgeseg.models import build_deeplabv3plus
from edgeseg.models.backbones import _copy_weights_by_name, _bgr_to_rgb_conv1, dilation_schedule
from edgeseg.models.deeplabv3plus import count_params

ALLOWED_LAYERS = {
    "InputLayer", "Rescaling", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
    "Activation", "Add", "GlobalAveragePooling2D", "MaxPooling2D", "UpSampling2D", "Concatenate", "Dropout",
}


@pytest.fixture(scope="module")
def tiny():
    return build_deeplabv3plus(ModelConfig(alpha=0.35), 5, (64, 96))


def test_output_and_feature_shapes(tiny):
    assert tiny.output_shape == (None, 64, 96, 5)
    assert tiny.get_layer("aspp_conv_0").output_shape == (None, 4, 6, 256)  # stride 16
    assert tiny.get_layer("decoder_project").output_shape == (None, 16, 24, 48)  # stride 4
    assert tiny.get_layer("aspp_pool").output_shape == (None, 1, 1, 112)  # image pooling (alpha 0.35)
    assert tiny.get_layer("aspp_pool_upsample").output_shape == (None, 4, 6, 256)


def test_only_layers_that_quantize(tiny):
    kinds = {type(layer).__name__ for layer in tiny.layers}
    assert kinds <= ALLOWED_LAYERS, kinds - ALLOWED_LAYERS
    assert "Lambda" not in kinds


def test_atrous_rates_at_output_stride_16_and_8():
    m16 = build_deeplabv3plus(ModelConfig(alpha=0.35, head="plain"), 3, (64, 64))
    assert [m16.get_layer(f"aspp_conv_{i}").dilation_rate for i in (1, 2, 3)] == [(6, 6), (12, 12), (18, 18)]
    assert m16.get_layer("block_13_depthwise").strides == (1, 1)
    assert m16.get_layer("block_13_depthwise").dilation_rate == (1, 1)
    assert m16.get_layer("block_14_depthwise").dilation_rate == (2, 2)
    m8 = build_deeplabv3plus(ModelConfig(alpha=0.35, output_stride=8), 3, (64, 64))
    assert m8.get_layer("aspp_conv_3_depthwise").dilation_rate == (36, 36)
    assert m8.get_layer("block_7_depthwise").dilation_rate == (2, 2)
    assert m8.get_layer("block_16_depthwise").dilation_rate == (4, 4)
    assert m8.get_layer("aspp_conv_0").output_shape[1:3] == (8, 8)


def test_resnet50_dilates_conv5_at_os16():
    m = build_deeplabv3plus(ModelConfig(backbone="resnet50"), 3, (64, 64))
    assert m.get_layer("conv5_block1_1_conv").strides == (1, 1)
    assert m.get_layer("conv5_block1_2_conv").dilation_rate == (2, 2)
    assert m.get_layer("conv4_block1_1_conv").strides == (2, 2)
    assert m.get_layer("decoder_project").input_shape[-1] == 256  # conv2_block3_out
    assert m.output_shape == (None, 64, 64, 3)


def test_dilation_schedule():
    assert dilation_schedule([2, 2, 2, 2, 2], 8) == [(2, 1), (2, 1), (2, 1), (1, 1), (1, 2)]
    assert dilation_schedule([4, 1, 2, 2, 2], 16, stride_in_filter=False) == [(4, 1), (1, 1), (2, 1), (2, 1), (1, 2)]


def _make_divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def _expected_params(num_classes, alpha, head):
    """Parameter count from the papers' tables, computed without looking at the Keras model."""
    conv = lambda k, i, o, bias=False: k * k * i * o + (o if bias else 0)  # noqa: E731
    bn = lambda c: 4 * c  # noqa: E731
    blocks = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    c = _make_divisible(32 * alpha)
    total = conv(3, 3, c) + bn(c)
    low = None
    block = 0
    for t, ch, n, _ in blocks:
        out = _make_divisible(ch * alpha)
        for _ in range(n):
            hidden = c * t
            if t != 1:
                total += conv(1, c, hidden) + bn(hidden)
            if block == 3:
                low = hidden
            total += 9 * hidden + bn(hidden) + conv(1, hidden, out) + bn(out)
            c, block = out, block + 1

    def block3x3(i, o):
        if head == "separable":
            return 9 * i + bn(i) + conv(1, i, o) + bn(o)
        return conv(3, i, o) + bn(o)

    total += conv(1, c, 256) + bn(256)  # ASPP 1x1
    total += 3 * block3x3(c, 256)  # three atrous branches
    total += conv(1, c, 256) + bn(256)  # image pooling
    total += conv(1, 5 * 256, 256) + bn(256)  # projection
    total += conv(1, low, 48) + bn(48)  # decoder low-level projection
    total += block3x3(256 + 48, 256) + block3x3(256, 256)
    total += conv(1, 256, num_classes, bias=True)
    return total


@pytest.mark.parametrize("alpha,head", [(0.35, "separable"), (1.0, "plain"), (0.5, "separable")])
def test_parameter_count_matches_independent_count(alpha, head):
    model = build_deeplabv3plus(ModelConfig(alpha=alpha, head=head), 11, (64, 64))
    assert count_params(model) == _expected_params(11, alpha, head)


def test_input_size_not_divisible_gives_a_hint():
    with pytest.raises(ConfigError, match="input 360x480 is not divisible by output stride 16; use 368x480"):
        ModelConfig().check_input_size((360, 480))
    with pytest.raises(ConfigError, match="input 360x480 is not divisible by output stride 16; use 368x480"):
        build_deeplabv3plus(ModelConfig(alpha=0.35), 11, (360, 480))


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'; choose one of: mobilenetv2, resnet50"):
        build_deeplabv3plus(ModelConfig(backbone="vgg"), 11, (64, 64))


def test_no_imagenet_weights_for_odd_alpha():
    with pytest.raises(ConfigError, match="no ImageNet weights for mobilenetv2 alpha=0.6"):
        build_deeplabv3plus(ModelConfig(alpha=0.6), 3, (32, 32), backbone_weights="imagenet")


def test_weights_file_loads_by_name(tmp_path, tiny):
    path = tmp_path / "backbone.h5"
    tiny.save_weights(str(path))
    other = build_deeplabv3plus(ModelConfig(alpha=0.35), 5, (64, 96), backbone_weights=str(path))
    np.testing.assert_array_equal(other.get_layer("block_5_project").get_weights()[0],
                                  tiny.get_layer("block_5_project").get_weights()[0])


def test_resnet50_imagenet_copy_flips_conv1_to_rgb():
    """The Keras Applications model (random weights here: no download) copies in by name."""
    source = keras.applications.ResNet50(input_shape=(64, 64, 3), include_top=False, weights=None)
    model = build_deeplabv3plus(ModelConfig(backbone="resnet50"), 3, (64, 64))
    copied = _copy_weights_by_name(model, source, _bgr_to_rgb_conv1)
    assert copied == sum(1 for layer in source.layers if layer.weights)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0],
                                  source.get_layer("conv1_conv").get_weights()[0][:, :, ::-1])
    np.testing.assert_array_equal(model.get_layer("conv4_block2_2_conv").get_weights()[0],
                                  source.get_layer("conv4_block2_2_conv").get_weights()[0])


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50"])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_backbones_hand_over_named_pyramid_features(backbone, output_stride):
    """P2..P5 by key (keras-hub's pyramid_outputs), at stride 4, 8, then the output stride; the
    decoder takes P2 and ASPP P5."""
    from edgeseg._tf import keras
    from edgeseg.models.backbones import get_backbone
    from edgeseg.models.deeplabv3plus import ASPP_TAP, DECODER_TAP

    spec = get_backbone(backbone)
    features = spec.build(keras.Input((64, 64, 3)), output_stride, 0.35 if backbone == "mobilenetv2" else 1.0, 0.9)
    assert sorted(features) == ["P2", "P3", "P4", "P5"] and (DECODER_TAP, ASPP_TAP) == ("P2", "P5")
    sides = {level: tuple(t.shape[1:3]) for level, t in features.items()}
    deep = 64 // output_stride
    assert sides == {"P2": (16, 16), "P3": (8, 8), "P4": (max(deep, 4), max(deep, 4)), "P5": (deep, deep)}
