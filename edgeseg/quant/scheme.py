"""The quantization scheme edgeseg's QAT uses: tensorflow-model-optimization's default 8-bit
scheme, corrected where it breaks DeepLabv3+ (the concat transforms of
tensorflow/model-optimization#1061, per-tensor depthwise ranges of #808), and the wrapping of a
tf-keras model into its fake-quantized copy. Every layer is wrapped except the input
``Rescaling`` (normalisation), which gets :class:`OutputQuantizeConfig`: it fake-quantizes its
output, so the converter folds the normalisation into the int8 input's scale and zero point.
"""

from __future__ import annotations

import functools

from edgeseg._tf import keras, tf
from edgeseg.core.errors import ExportError


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


@functools.cache  # one class per process: tfmot deserializes configs by class name
def _output_quantize_config_class():
    tfmot = _tfmot()
    quantizers = tfmot.quantization.keras.quantizers

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """No weights to quantize; an 8-bit asymmetric moving-average quantizer on the output."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

        def get_config(self):
            return {}

    return OutputQuantizeConfig


CUSTOM_CONFIGS = {keras.layers.Rescaling}


@functools.cache
def _depthwise_classes():
    """A per-channel weight quantizer for depthwise kernels and the quantize config using it.

    tfmot sizes its per-axis ranges by the kernel's last axis, which for a depthwise kernel
    (kh, kw, channels, 1) is the depth multiplier: every depthwise layer was simulated with one
    range for all channels (tensorflow/model-optimization#808), while TFLite and PTQ quantize
    them per channel.
    """
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    class DepthwiseKernelQuantizer(qk.quantizers.Quantizer):
        """8-bit symmetric narrow-range ranges per channel (axis -2), last value while training."""

        def build(self, tensor_shape, name, layer):
            channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
            make = lambda suffix, v: layer.add_weight(  # noqa: E731
                f"{name}_{suffix}", shape=(channels,), initializer=keras.initializers.Constant(v), trainable=False)
            return {"min_var": make("min", -6.0), "max_var": make("max", 6.0)}

        def __call__(self, inputs, training, weights, **kwargs):
            kh, kw, c, m = inputs.shape
            flat = tf.reshape(inputs, (kh, kw, c * m))
            lo, hi = weights["min_var"], weights["max_var"]
            if training:
                r = tf.maximum(-tf.reduce_min(flat, axis=[0, 1]), tf.reduce_max(flat, axis=[0, 1]))
                lo, hi = lo.assign(-r), hi.assign(r)
            q = tf.quantization.fake_quant_with_min_max_vars_per_channel(flat, lo, hi, num_bits=8, narrow_range=True)
            return tf.reshape(q, (kh, kw, c, m))

        def get_config(self):
            return {}

    class DepthwiseQuantizeConfig(registry.Default8BitConvQuantizeConfig):
        def __init__(self, weight_attrs=("depthwise_kernel",), activation_attrs=("activation",),
                     quantize_output=False):
            super().__init__(list(weight_attrs), list(activation_attrs), quantize_output)
            self.weight_quantizer = DepthwiseKernelQuantizer()

    class Registry(registry.Default8BitQuantizeRegistry):
        def _get_quantize_config(self, layer_type):
            if layer_type is keras.layers.DepthwiseConv2D:
                return DepthwiseQuantizeConfig()
            return super()._get_quantize_config(layer_type)

    return DepthwiseKernelQuantizer, DepthwiseQuantizeConfig, Registry


def _quantize_scheme():
    """tfmot's default 8-bit scheme without its Concatenate layout transforms, and with
    per-channel depthwise weights (see ``_depthwise_classes``).

    Those transforms reorder the inputs of a concatenation with more than two inputs
    (tensorflow/model-optimization#1061): the ASPP concat came out with the image-pooling
    branch first, so the QAT model computed something else than the float model it was
    meant to fine-tune (19% pixel agreement before fine-tuning, and QAT never recovered).
    Without them every concat input keeps its own output quantizer and the concat gets one
    more; the converter requantizes where the ranges differ.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_layout_transform as layout,
        default_8bit_quantize_scheme as scheme,
        default_8bit_transforms as t,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
        model_transformer,
    )

    class LayoutTransform(layout.Default8BitQuantizeLayoutTransform):
        def apply(self, model, layer_quantize_map):
            transforms = [
                t.InputLayerQuantize(),
                t.SeparableConv1DQuantize(),
                t.SeparableConvQuantize(),
                t.Conv2DReshapeBatchNormReLUQuantize(),
                t.Conv2DReshapeBatchNormActivationQuantize(),
                t.Conv2DBatchNormReLUQuantize(),
                t.Conv2DBatchNormActivationQuantize(),
                t.Conv2DReshapeBatchNormQuantize(),
                t.Conv2DBatchNormQuantize(),
                t.DenseBatchNormQuantize(),
                t.DenseBatchNormReLUQuantize(),
                t.DenseBatchNormActivationQuantize(),
                t.LayerReLUQuantize(),
                t.LayerReluActivationQuantize(),
            ]
            return model_transformer.ModelTransformer(
                model, transforms, set(layer_quantize_map.keys()), layer_quantize_map).transform()

    _, _, Registry = _depthwise_classes()

    class Scheme(scheme.Default8BitQuantizeScheme):
        def get_layout_transformer(self):
            return LayoutTransform()

        def get_quantize_registry(self):
            return Registry(disable_per_axis=self._disable_per_axis)

    return Scheme()


def quantize_model(model: keras.Model) -> keras.Model:
    """A QAT copy of ``model`` (same weights) with fake-quantization everywhere.

    Raises:
        ExportError naming the layer tfmot cannot wrap.
    """
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    OutputQuantizeConfig = _output_quantize_config_class()

    def annotate(layer):
        if type(layer) in CUSTOM_CONFIGS:
            return qk.quantize_annotate_layer(layer, quantize_config=OutputQuantizeConfig())
        return layer

    try:
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        annotated = qk.quantize_annotate_model(annotated)
        quantizer, config, _ = _depthwise_classes()
        with qk.quantize_scope({"OutputQuantizeConfig": OutputQuantizeConfig, "DepthwiseKernelQuantizer": quantizer,
                                "DepthwiseQuantizeConfig": config}):
            return qk.quantize_apply(annotated, scheme=_quantize_scheme())
    except (RuntimeError, ValueError) as e:
        msg = str(e).splitlines()[0]
        raise ExportError(f"tensorflow-model-optimization cannot wrap the model: {msg}") from None
