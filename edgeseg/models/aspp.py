"""Atrous Spatial Pyramid Pooling (Chen et al. 2017/2018) and its conv blocks.

Everything is built from plain Keras layers that TFLite int8 and tfmot QAT handle. Image pooling
is a spatial mean (TFLite MEAN) and a bilinear ``UpSampling2D`` from 1x1 (RESIZE_BILINEAR): with
these XNNPACK takes the whole int8 graph in one partition, where AVERAGE_POOL_2D and
RESIZE_NEAREST_NEIGHBOR left three (measured on the CamVid model).
"""

from __future__ import annotations

from edgeseg._tf import keras

L = keras.layers


def conv_bn_relu(x, filters: int, kernel: int, name: str, rate: int = 1, separable: bool = False,
                 bn_momentum: float = 0.99):
    """A conv + BN + ReLU block; ``separable`` makes a 3x3 an atrous *separable* convolution
    (depthwise + BN + ReLU, pointwise + BN + ReLU), as in the DeepLabv3+ paper."""
    if separable and kernel > 1:
        x = L.DepthwiseConv2D(kernel, padding="same", dilation_rate=rate, use_bias=False,
                              name=f"{name}_depthwise")(x)
        x = L.BatchNormalization(momentum=bn_momentum, name=f"{name}_depthwise_bn")(x)
        x = L.ReLU(name=f"{name}_depthwise_relu")(x)
        kernel, rate, name = 1, 1, f"{name}_pointwise"
    x = L.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def aspp(x, filters: int = 256, rates=(6, 12, 18), separable: bool = False, dropout: float = 0.1,
         bn_momentum: float = 0.99):
    """ASPP: a 1x1 branch, one 3x3 atrous branch per rate, image pooling; concat + 1x1 projection.

    Args:
        x: stride-OS backbone features with a static spatial size.
        filters: channels of each branch and of the projection (256 in the paper).
        rates: atrous rates of the 3x3 branches (6/12/18 at output stride 16, doubled at 8).
        separable: atrous separable convolutions in the 3x3 branches.
        dropout: dropout after the projection (training only).
        bn_momentum: BatchNormalization moving-average momentum.
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    branches = [conv_bn_relu(x, filters, 1, "aspp_conv_0", bn_momentum=bn_momentum)]
    for i, rate in enumerate(rates, 1):
        branches.append(conv_bn_relu(x, filters, 3, f"aspp_conv_{i}", rate=rate, separable=separable,
                                     bn_momentum=bn_momentum))
    pooled = L.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = conv_bn_relu(pooled, filters, 1, "aspp_pool_conv", bn_momentum=bn_momentum)
    # bilinear from 1x1 is a broadcast, like nearest, but XNNPACK runs it in int8 too
    branches.append(L.UpSampling2D(size=(h, w), interpolation="bilinear", name="aspp_pool_upsample")(pooled))
    y = L.Concatenate(name="aspp_concat")(branches)
    y = conv_bn_relu(y, filters, 1, "aspp_project", bn_momentum=bn_momentum)
    if dropout:
        y = L.Dropout(dropout, name="aspp_dropout")(y)
    return y
