"""Quantization-aware fine-tuning of a trained run: the fine-tuning driver, the QAT weights
saved in the run (``RUN/qat.npz`` + ``qat.json``) and rebuilt at the export size, and their
validation score with fake quantization. The scheme is in :mod:`edgeseg.quant.scheme`, the
starting ranges in :mod:`edgeseg.quant.ranges`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edgeseg._tf import keras, tf
from edgeseg.config import QAT_LR_FACTOR, QAT_STEPS
from edgeseg.core.errors import ConfigError, ExportError
from edgeseg.core.files import atomic_path
from edgeseg.quant.ranges import init_quantizer_ranges
from edgeseg.quant.scheme import quantize_model

log = logging.getLogger("edgeseg")


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
    from edgeseg.data.augment import Augment
    from edgeseg.data.pipeline import build_train_dataset
    from edgeseg.rundir import RunDir, write_json_atomic
    from edgeseg.models import load_run_model
    from edgeseg.train.fit import make_loss
    from edgeseg.train.recipe import mixed_source, trained_frames

    run = RunDir(Path(run_dir)).require()
    if steps < 0:
        raise ConfigError(f"--qat-steps must be >= 0, got {steps}")
    config = TrainConfig.load(run.config)
    d = config.data
    src = trained_frames(config)  # a drive held out of training stays out of QAT: the run is scored on it
    float_train, _ = load_run_model(run.path, d.crop_size, decoder_interpolation=decoder_interpolation)
    qat_train = quantize_model(float_train)
    ds = build_train_dataset(src, batch_size or d.batch_size,
                             Augment(d.crop_size, d.scale_range, d.flip, d.base_scale), seed=config.seed + 1,
                             mix=mixed_source(config, src.info.class_names))  # a fine-tuned run's old data too
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
    from edgeseg.models import load_run_model

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
    from edgeseg.core import metrics
    from edgeseg.config import TrainConfig
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.train.scoring import confusion_over
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

    ds = build_eval_dataset(load_source(*d.val_data(), d.val_split), batch_size, size, d.base_scale)
    result = metrics.summarize(confusion_over(model, ds, len(names), predict), names)
    info = run.read_json(run.qat_json)
    info["val"] = result
    write_json_atomic(run.qat_json, info)
    return result
