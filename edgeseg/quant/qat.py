"""Quantization-aware training with tensorflow-model-optimization on the tf-keras DeepLabv3+.

tfmot's default 8-bit scheme wraps every layer of the model except the input ``Rescaling``
(normalisation), which gets :class:`OutputQuantizeConfig`: it fake-quantizes its output, so the
converter folds the normalisation into the int8 input's scale and zero point.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path

import numpy as np

from edgeseg._tf import keras, tf
from edgeseg.config import QAT_LR_FACTOR, QAT_STEPS
from edgeseg.core.files import atomic_path
from edgeseg.errors import ConfigError, ExportError

log = logging.getLogger("edgeseg")


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


def init_quantizer_ranges(qat_model: keras.Model, float_model: keras.Model, frames) -> int:
    """Start every activation quantizer at the range the float model really produces.

    tfmot's moving-average quantizers start at [-6, 6] and move with an EMA decay of 0.999,
    so after a few hundred fine-tuning steps ranges that should reach 50 (logits, pre-add
    features) or 255 (input pixels) are still clipped near 6, and the QAT model starts far
    from the float one (4% pixel agreement on CamVid before this). Observed min/max over
    ``frames`` (float32 NxHxWx3 batches) fix that; QAT then only refines them.
    """
    by_name = {layer.name: layer for layer in float_model.layers}
    targets, outputs = [], []
    for layer in qat_model.layers:
        kind = type(layer).__name__
        if kind == "QuantizeLayer":
            continue
        inner = getattr(layer, "layer", None)
        source = by_name.get(inner.name if inner is not None else layer.name)
        ranges = [v for v in layer.weights if v.name.split("/")[-1].split(":")[0] in
                  ("output_min", "output_max", "post_activation_min", "post_activation_max")]
        if source is None or not ranges:
            continue
        targets.append((layer, ranges))
        outputs.append(source.output)
    probe = keras.Model(float_model.input, outputs)
    lo = [np.inf] * len(outputs)
    hi = [-np.inf] * len(outputs)
    for batch in frames:
        values = probe(batch, training=False)
        values = values if isinstance(values, list) else [values]
        for i, v in enumerate(values):
            lo[i] = min(lo[i], float(tf.reduce_min(v)))
            hi[i] = max(hi[i], float(tf.reduce_max(v)))
    for (layer, ranges), a, b in zip(targets, lo, hi):
        for v in ranges:
            v.assign(min(a, 0.0) if v.name.split("/")[-1].startswith(("output_min", "post_activation_min")) else max(b, 0.0))
    for layer in qat_model.layers:
        # Weight quantizers keep the range of the last training step and start at [-6, 6]:
        # before the first step, inference would round most weights of a trained layer to 0.
        for weight, quantizer, quantizer_vars in getattr(layer, "_weight_vars", []):
            quantizer(weight, training=True, weights=quantizer_vars)
        if type(layer).__name__ == "QuantizeLayer":  # the model input: RGB pixels 0-255
            for v in layer.weights:
                name = v.name.split("/")[-1].split(":")[0]  # quantize_layer[_N]_min / _max
                if name.endswith("_min"):
                    v.assign(0.0)
                elif name.endswith("_max"):
                    v.assign(255.0)
    return len(targets)


def _stable_name(layer) -> str:
    # tfmot names wrappers "quant_<layer>", but its input QuantizeLayer gets a counter suffix
    # ("quantize_layer_1") in the second model built in the same process.
    return "quantize_layer" if type(layer).__name__ == "QuantizeLayer" else layer.name


def save_qat_weights(model: keras.Model, path: Path) -> None:
    """Weights and quantizer ranges of a QAT model, by layer name (``.npz``, written atomically):
    they load into a QAT model of any input size."""
    arrays = {f"{_stable_name(layer)}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_qat_weights(model: keras.Model, path: Path) -> int:
    """Set ``model``'s weights from :func:`save_qat_weights`'s file; the number of layers set.

    Raises:
        ExportError naming the first layer the file lacks or does not fit.
    """
    with np.load(path) as data:
        by_layer: dict[str, dict[int, np.ndarray]] = {}
        for key in data.files:
            name, i = key.rsplit("/", 1)
            by_layer.setdefault(name, {})[int(i)] = data[key]
    done = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        saved = by_layer.get(_stable_name(layer))
        if saved is None:
            raise ExportError(f"{path}: no QAT weights for layer {layer.name}")
        try:
            layer.set_weights([saved[i] for i in range(len(saved))])
        except (ValueError, KeyError) as e:
            raise ExportError(f"{path}: QAT weights do not fit layer {layer.name}: {e}") from None
        done += 1
    return done


def qat_finetune(run_dir, steps: int = QAT_STEPS, lr_factor: float = QAT_LR_FACTOR, batch_size: int | None = None,
                 decoder_interpolation: str = "bilinear", freeze_bn: bool = True, verbose: int = 2) -> dict:
    """Fine-tune a float run with fake quantization on its training data and crops, and save the QAT
    weights in the run (``RUN/qat.npz``, described by ``RUN/qat.json``, which is returned).
    ``load_qat_model`` rebuilds the model at the export size from them. ``freeze_bn`` keeps
    BatchNorm in inference mode (moving statistics, no updates), as QAT recipes do late in
    fine-tuning.

    The defaults are what measured best on CamVid (val mIoU of the QAT int8 model, fp32 0.6090):
    300 steps at 1/1000 of the float learning rate with BN frozen 0.6083; 500 steps at 1/100
    (published recipes) with BN training 0.6026 and at 1/1000 0.6046; no fine-tuning 0.6068.
    Longer fine-tuning drifts from the validation-selected float checkpoint faster than it
    recovers quantization error."""
    from edgeseg.config import TrainConfig
    from edgeseg.data.pipeline import Augment, build_train_dataset, load_source
    from edgeseg.rundir import RunDir, write_json_atomic
    from edgeseg.train import load_run_model
    from edgeseg.train.fit import make_loss

    run = RunDir(Path(run_dir)).require()
    if steps < 0:
        raise ConfigError(f"--qat-steps must be >= 0, got {steps}")
    config = TrainConfig.load(run.config)
    d = config.data
    src = load_source(d.root, d.format, d.train_split)
    float_train, _ = load_run_model(run.path, d.crop_size, decoder_interpolation=decoder_interpolation)
    qat_train = quantize_model(float_train)
    ds = build_train_dataset(src, batch_size or d.batch_size,
                             Augment(d.crop_size, d.scale_range, d.flip, d.base_scale), seed=config.seed + 1)
    calibration = [images for images, _ in ds.take(8)]
    n = init_quantizer_ranges(qat_train, float_train, calibration)
    log.info("QAT: %d activation ranges initialised from the float model", n)
    frozen = []
    if freeze_bn:
        for layer in qat_train.layers:
            inner = getattr(layer, "layer", layer)
            if isinstance(inner, keras.layers.BatchNormalization):
                inner.trainable = False  # tf.keras: a frozen BN also runs in inference mode
                frozen.append(inner)
    lr = config.optim.learning_rate * lr_factor
    schedule = keras.optimizers.schedules.PolynomialDecay(lr, max(steps, 1), lr * 0.1, power=0.9)
    qat_train.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=make_loss(config, src.info.num_classes))
    t = time.perf_counter()
    if steps > 0:
        qat_train.fit(ds, epochs=1, steps_per_epoch=steps, verbose=verbose)
    for inner in frozen:  # back to the weight order of a freshly built model before saving
        inner.trainable = True
    save_qat_weights(qat_train, run.qat_weights)
    info = {"steps": steps, "learning_rate": lr, "lr_factor": lr_factor, "batch_size": batch_size or d.batch_size,
            "decoder_interpolation": decoder_interpolation, "freeze_bn": freeze_bn,
            "seconds": time.perf_counter() - t,
            "float_weights": run.weights().name}
    write_json_atomic(run.qat_json, info)
    log.info("QAT: %d steps at lr %.2g in %.0fs; weights in %s", steps, lr, info["seconds"], run.qat_weights)
    return info


def load_qat_model(run_dir, size=None, decoder_interpolation: str | None = None) -> keras.Model:
    """The run's QAT model (from ``qat_finetune``) at ``size`` (default: its evaluation size),
    logits at stride 4, ready for the TFLite converter.

    Raises:
        ExportError when the run has no QAT weights or they were trained with another decoder
        upsampling than ``decoder_interpolation``.
    """
    from edgeseg.rundir import RunDir
    from edgeseg.train import load_run_model

    run = RunDir(Path(run_dir)).require()
    if not run.qat_weights.is_file():
        raise ExportError(f"run {run.path} has no QAT weights; run `edgeseg train --qat --from {run.path}` "
                          "or `edgeseg export --qat`")
    info = run.read_json(run.qat_json)
    trained = info.get("decoder_interpolation", "bilinear")
    if decoder_interpolation is not None and decoder_interpolation != trained:
        raise ExportError(f"{run.qat_weights} was fine-tuned with {trained} decoder upsampling, not "
                          f"{decoder_interpolation}; pass --decoder-upsample {trained} or redo QAT")
    float_export, _ = load_run_model(run.path, size, final_upsample=False, decoder_interpolation=trained)
    model = quantize_model(float_export)
    load_qat_weights(model, run.qat_weights)
    return model


def evaluate_qat(run_dir, batch_size: int = 4) -> dict:
    """mIoU of the run's QAT model (fake quantization in TensorFlow) on its validation split,
    logits upsampled bilinearly as the runtime does; also stored in ``RUN/qat.json``."""
    from edgeseg import metrics
    from edgeseg.config import TrainConfig
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.evaluate import confusion_over
    from edgeseg.rundir import RunDir, write_json_atomic

    run = RunDir(Path(run_dir)).require()
    config = TrainConfig.load(run.config)
    d = config.data
    size = tuple(d.eval_size)
    model = load_qat_model(run.path, size)
    names = json.loads(run.dataset.read_text())["class_names"]

    @tf.function(reduce_retracing=True)
    def predict(images):
        logits = tf.image.resize(model(images, training=False), size, method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    ds = build_eval_dataset(load_source(d.root, d.format, d.val_split), batch_size, size, d.base_scale)
    result = metrics.summarize(confusion_over(model, ds, len(names), predict), names)
    info = run.read_json(run.qat_json)
    info["val"] = result
    write_json_atomic(run.qat_json, info)
    return result
