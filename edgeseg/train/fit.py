"""`edgeseg train`: build the data pipeline, model, loss and optimizer, and fit with resumable
checkpoints, full-frame validation and TensorBoard logs."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.core import metrics
from edgeseg._tf import device_line, keras, tf
from edgeseg.config import TrainConfig
from edgeseg.data.check import pixel_counts
from edgeseg.data.pipeline import (
    Augment, build_eval_dataset, build_train_dataset, load_source, source_size, TFRecordSplit,
)
from edgeseg.core.errors import ConfigError, EdgesegError
from edgeseg.losses import SegmentationLoss
from edgeseg.core.geometry import round_up
from edgeseg.models import build_deeplabv3plus
from edgeseg.rundir import RunDir, write_json_atomic
from edgeseg.train.callbacks import StepTimer, ValidateAndCheckpoint, save_weights_atomic
from edgeseg.train.keras_metrics import MeanIoU
from edgeseg.train.schedule import PolyDecayWithWarmup
from edgeseg.train.strategy import is_chief, make_strategy, worker_index

log = logging.getLogger("edgeseg")


def resolve(config: TrainConfig, train_src, val_src) -> TrainConfig:
    """Fill in what the data decides: evaluation size and class weights."""
    data, loss = config.data, config.loss
    os_ = config.model.output_stride
    if data.eval_size is None:
        h, w = first_frame_size(val_src)
        size = (round_up(round(h * data.base_scale), os_), round_up(round(w * data.base_scale), os_))
        config = config.override(data__eval_size=list(size))
    if isinstance(loss.class_weights, str) and loss.class_weights != "none":
        counts = label_pixel_counts(train_src)
        weights = metrics.class_weights(counts, loss.class_weights, loss.max_class_weight)
        config = config.override(loss__class_weights=[round(float(w), 4) for w in weights])
    config.model.check_input_size(config.data.eval_size)
    return config


def label_pixel_counts(source) -> np.ndarray:
    """Pixels per class over a split's labels (ignore pixels not counted)."""
    if not isinstance(source, TFRecordSplit):
        return pixel_counts(source.info, source.label_paths)
    from edgeseg.data.pipeline import decoded_dataset

    counts = np.zeros(source.info.num_classes, np.int64)
    for _, label in decoded_dataset(source):
        counts += np.bincount(label.numpy().ravel(), minlength=256)[: source.info.num_classes]
    return counts


def first_frame_size(source) -> tuple[int, int]:
    if isinstance(source, TFRecordSplit):
        from edgeseg.data.pipeline import decoded_dataset

        image, _ = next(iter(decoded_dataset(source).take(1)))
        return int(image.shape[0]), int(image.shape[1])
    import cv2

    image = cv2.imread(source.image_paths[0], cv2.IMREAD_COLOR)
    if image is None:
        from edgeseg.core.errors import DataError

        raise DataError(f"cannot read image {source.image_paths[0]}")
    return image.shape[0], image.shape[1]


def make_optimizer(config: TrainConfig, total_steps: int):
    o = config.optim
    schedule = PolyDecayWithWarmup(o.learning_rate, total_steps, o.warmup_steps, o.poly_power)
    if o.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=o.weight_decay)
    else:
        opt = keras.optimizers.SGD(learning_rate=schedule, momentum=o.momentum, nesterov=False,
                                   weight_decay=o.weight_decay)
    # No decay on BatchNorm parameters and biases, as in the reference implementations.
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def make_loss(config: TrainConfig, num_classes: int) -> SegmentationLoss:
    cw = config.loss.class_weights
    weights = cw if isinstance(cw, list) else None
    if weights is not None and len(weights) != num_classes:
        raise ConfigError(f"{len(weights)} class weights given for {num_classes} classes")
    dice = config.loss.dice_weight if config.loss.type == "hybrid" else 0.0
    return SegmentationLoss(num_classes, class_weights=weights, dice_weight=dice)


class RunFinished(EdgesegError):
    """``--resume`` of a run that has already finished: nothing to do (exit 0)."""

    exit_code = 0


def last_logged_epoch(run: RunDir) -> int:
    """Epochs in ``history.csv`` (what a resumed run continues after)."""
    path = run.path / "history.csv"
    if not path.is_file():
        return 0
    rows = [line for line in path.read_text().splitlines()[1:] if line.strip()]
    return len(rows)


def _check_new_run_dir(run: RunDir) -> None:
    if run.exists():
        raise ConfigError(f"run directory {run.path} already holds a run; pass --resume to continue it "
                          f"or choose another --run-dir")
    if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
        raise ConfigError(f"{run.path} exists and is not an empty folder or an edgeseg run; "
                          "choose a new --run-dir (nothing was written)")


def train(config: TrainConfig, run_dir: Path, resume: bool = False, verbose: int | None = None) -> dict:
    """Train (or resume) a run. Returns the run summary (also written to ``summary.json``).

    Raises:
        RunFinished: ``resume`` of a run whose training ended (its ``summary.json`` is there and
            no backup is left): resuming would retrain it from scratch.
    """
    run = RunDir(Path(run_dir))
    chief = is_chief()
    if resume:
        run.require()
        config = TrainConfig.load(run.config)
        if run.summary.is_file() and not run.has_backup():
            best = run.read_json(run.best_json)
            score = f"; best val mIoU {best['miou']:.4f} at epoch {best['epoch']}" if "miou" in best else ""
            raise RunFinished(f"run {run.path} has finished its {config.optim.epochs} epochs{score}; "
                              "nothing to resume (start a new run to train longer)")
        done = last_logged_epoch(run)
        log.info("resuming %s after epoch %d of %d", run.path, done, config.optim.epochs)
    else:
        if chief:
            _check_new_run_dir(run)
        from edgeseg.data import resolve_format

        config = config.override(data__format=resolve_format(config.data.root, config.data.format))
    # Multi-worker collectives must be configured before TensorFlow runs its first op (data
    # loading included), so the strategy comes first.
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    d = config.data
    train_src = load_source(d.root, d.format, d.train_split)
    val_src = load_source(d.root, d.format, d.val_split)
    info = train_src.info
    log.info(device_line())
    if not resume:
        config = resolve(config, train_src, val_src)
    if chief and not resume:
        run.path.mkdir(parents=True, exist_ok=True)
        config.save(run.config)
        write_json_atomic(run.dataset, {
            "name": info.name, "format": d.format, "root": d.root,
            "class_names": list(info.class_names), "colors": [list(c) for c in info.colors],
            "ignore_label": info.ignore_label,
        })

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _fit(config, run, strategy, train_src, val_src, chief, verbose)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _fit(config: TrainConfig, run: RunDir, strategy, train_src, val_src, chief: bool, verbose) -> dict:
    d, o = config.data, config.optim
    info = train_src.info
    n_train = source_size(train_src)
    steps_per_epoch = o.steps_per_epoch or max(1, n_train // d.batch_size)
    total_steps = steps_per_epoch * o.epochs

    cache = {"memory": True, "none": False}.get(d.cache, d.cache)
    if isinstance(cache, str):
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    augment = Augment(crop_size=d.crop_size, scale_range=d.scale_range, flip=d.flip, base_scale=d.base_scale)
    train_ds = build_train_dataset(train_src, d.batch_size, augment, cache=cache, seed=config.seed,
                                   deterministic=config.deterministic)
    val_ds = build_eval_dataset(val_src, batch_size=max(1, min(d.batch_size, 4)), size=d.eval_size,
                                base_scale=d.base_scale, cache=True)

    with strategy.scope():
        model = build_deeplabv3plus(config.model, info.num_classes, d.crop_size,
                                    backbone_weights=config.model.backbone_weights)
        model.compile(optimizer=make_optimizer(config, total_steps),
                      loss=make_loss(config, info.num_classes),
                      metrics=[MeanIoU(info.num_classes)],
                      jit_compile=config.xla)
    eval_model = build_deeplabv3plus(config.model, info.num_classes, d.eval_size)

    timer = StepTimer()
    # Logs of non-chief workers go to a folder named by their task index, the same after a
    # restart. The backup folder is the same for every worker: Keras restores all of them from
    # the chief's checkpoint in it (and writes the others' to temporary folders beside it).
    write_dir = run.path if chief else run.path / f"worker-{worker_index()}"
    write_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.backup), save_freq=config.backup_every_steps or "epoch"),
        ValidateAndCheckpoint(eval_model, val_ds, run, info.class_names, config.val_every,
                              o.epochs, write=chief),
        keras.callbacks.CSVLogger(str(write_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(write_dir / "logs"), update_freq="epoch", profile_batch=0),
        timer,
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    t0 = time.perf_counter()
    model.fit(train_ds, epochs=o.epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
              verbose=verbose)
    wall = time.perf_counter() - t0
    save_weights_atomic(model, write_dir / run.last_weights.name)
    best = run.read_json(run.best_json)
    summary = {
        "run": str(run.path),
        "best_epoch": best.get("epoch"),
        "val_miou": best.get("miou"),
        "val_pixel_accuracy": best.get("pixel_accuracy"),
        "per_class_iou": best.get("per_class_iou"),
        "epochs": o.epochs,
        "steps": total_steps,
        "wall_seconds_this_session": round(wall, 1),
        "sec_per_step": timer.median,
        "replicas": strategy.num_replicas_in_sync,
    }
    if chief:
        write_json_atomic(run.summary, summary)
    return summary


def load_run_model(run_dir: Path, input_size=None, weights: Path | None = None, **build_kwargs):
    """Rebuild a trained run's model at ``input_size`` (default: its evaluation size)."""
    run = RunDir(Path(run_dir)).require()
    config = TrainConfig.load(run.config)
    names = json.loads(run.dataset.read_text())["class_names"]
    size = tuple(input_size or config.data.eval_size)
    model = build_deeplabv3plus(config.model, len(names), size, **build_kwargs)
    # by_name: an export model without the final upsample has the same weighted layers.
    model.load_weights(str(weights or run.weights()), by_name=True)
    return model, config
