"""`edgeseg train`: build the data pipeline, model, loss and optimizer, and fit with resumable
checkpoints, full-frame validation and TensorBoard logs."""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path

from edgeseg._tf import device_line, keras, tf
from edgeseg.config import TrainConfig
from edgeseg.core import metrics
from edgeseg.core.errors import ConfigError, EdgesegError
from edgeseg.core.files import OutputError, free_space, is_refused, sweep_temporaries, write_error
from edgeseg.data.augment import Augment
from edgeseg.core.metadata import ModelMetadata
from edgeseg.data.preflight import check_before_training
from edgeseg.data.pipeline import build_eval_dataset, build_train_dataset, explain_error, source_size
from edgeseg.models import build_deeplabv3plus
from edgeseg.rundir import RunDir, write_json_atomic
from edgeseg.train.callbacks import StepTimer, ValidateAndCheckpoint, WeightAverage, save_weights_atomic
from edgeseg.train.keras_metrics import MeanIoU
from edgeseg.train.recipe import make_loss, make_optimizer, mixed_source, resolve, training_sources
from edgeseg.train.scoring import confusion_over
from edgeseg.train.strategy import is_chief, make_strategy, worker_index

log = logging.getLogger("edgeseg")


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
        if chief:  # what the interrupted session was writing when it died
            sweep_temporaries(run.path)
    else:
        if chief:
            _check_new_run_dir(run)
        from edgeseg.data import resolve_format

        config = config.override(data__format=resolve_format(config.data.root, config.data.format))
        if config.data.val_root is not None:
            config = config.override(data__val_format=resolve_format(config.data.val_root, config.data.val_format))
    # Multi-worker collectives must be configured before TensorFlow runs its first op (data
    # loading included), so the strategy comes first.
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    d = config.data
    train_src, val_src, report_src = training_sources(config)
    info = train_src.info
    mix = mixed_source(config, info.class_names)
    # every frame is read as training will read it before anything is written: a refusal leaves
    # nothing behind, so the same command runs again once the data is fixed
    counts = check_before_training([train_src, val_src, report_src, mix[0] if mix else None],
                                   progress_factory=_progress_bar)
    log.info(device_line())
    if not resume:
        if config.init:
            _check_init(config, info.class_names)
        config = resolve(config, train_src, val_src, counts.get(id(train_src)))
    created = not run.path.exists()
    if chief and not resume:
        run.path.mkdir(parents=True, exist_ok=True)
        config.save(run.config)
        write_json_atomic(run.dataset, {
            "name": info.name, "format": d.format, "root": d.root,
            "class_names": list(info.class_names), "colors": [list(c) for c in info.colors],
            "ignore_label": info.ignore_label,
            **ModelMetadata.label_fields(info.label_map),
        })

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    sources = (train_src, val_src, report_src, mix)
    try:
        return _fit(config, run, strategy, sources, chief, verbose)
    except Exception as e:
        if chief and not resume:
            _remove_if_empty_handed(run, created)
        if isinstance(e, tf.errors.OpError):
            explained = explain_error(e, [train_src, val_src, report_src, *([mix[0]] if mix else [])])
            if explained is not None:
                raise explained from None
        raise
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _remove_if_empty_handed(run: RunDir, created: bool) -> None:
    """After a failure before the run saved anything worth resuming (no backup, no weights, no
    finished epoch), remove what it wrote, so that the same command runs again: the folder if
    this run made it, else what it put into the empty folder it was given."""
    import shutil

    if run.has_backup() or run.best_weights.is_file() or run.last_weights.is_file() or last_logged_epoch(run):
        return
    if created:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for name in (run.config.name, run.dataset.name, "history.csv", "logs", "backup", run.best_json.name):
        path = run.path / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def _progress_bar(total: int):
    """A progress bar on a terminal for the check of many frames (a context manager whose value
    is called once per frame); elsewhere nothing (the check logs its time when done)."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextlib.contextmanager
    def bar():
        with Progress(TextColumn("checking the data"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task("check", total=total)
            yield lambda: progress.advance(task)
    return bar()


def _fit(config: TrainConfig, run: RunDir, strategy, sources, chief: bool, verbose) -> dict:
    d, o = config.data, config.optim
    train_src, val_src, report_src, mix = sources
    info = train_src.info
    n_train = source_size(train_src)
    steps_per_epoch = o.steps_per_epoch or max(1, n_train // d.batch_size)
    total_steps = steps_per_epoch * o.epochs

    cache = {"memory": True, "none": False}.get(d.cache, d.cache)
    if isinstance(cache, str):
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    augment = Augment(crop_size=d.crop_size, scale_range=d.scale_range, flip=d.flip, base_scale=d.base_scale,
                      photometric=d.photometric, rare_classes=tuple(d.rare_classes or ()),
                      rare_crop_prob=d.rare_crop_prob, camera_shift=d.camera_shift, copy_paste=d.copy_paste)
    train_ds = build_train_dataset(train_src, d.batch_size, augment, cache=cache, seed=config.seed,
                                   deterministic=config.deterministic, mix=mix)
    val_ds = build_eval_dataset(val_src, batch_size=max(1, min(d.batch_size, 4)), size=d.eval_size,
                                base_scale=d.base_scale, cache=True)

    with strategy.scope():
        model = build_deeplabv3plus(config.model, info.num_classes, d.crop_size,
                                    backbone_weights=config.model.backbone_weights)
        model.compile(optimizer=make_optimizer(config, total_steps),
                      loss=make_loss(config, info.num_classes),
                      metrics=[MeanIoU(info.num_classes)],
                      jit_compile=config.xla)
        if config.init:  # a resumed run then takes its own progress from the backup
            start = RunDir(Path(config.init)).weights()
            model.load_weights(str(start))
            log.info("starting from %s", start)
    eval_model = build_deeplabv3plus(config.model, info.num_classes, d.eval_size)

    timer = StepTimer()
    # Logs of non-chief workers go to a folder named by their task index, the same after a
    # restart. The backup folder is the same for every worker: Keras restores all of them from
    # the chief's checkpoint in it (and writes the others' to temporary folders beside it).
    write_dir = run.path if chief else run.path / f"worker-{worker_index()}"
    write_dir.mkdir(parents=True, exist_ok=True)
    average = WeightAverage(o.ema) if o.ema else None
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.backup), save_freq=config.backup_every_steps or "epoch"),
        *([average] if average else []),
        ValidateAndCheckpoint(eval_model, val_ds, run, info.class_names, config.val_every,
                              o.epochs, write=chief, weights=average.averaged if average else None),
        keras.callbacks.CSVLogger(str(write_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(write_dir / "logs"), update_freq="epoch", profile_batch=0),
        timer,
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    t0 = time.perf_counter()
    try:
        model.fit(train_ds, epochs=o.epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                  verbose=verbose)
    except (OSError, tf.errors.OpError) as e:  # a full disk under a checkpoint: one line, not a traceback
        refused = refused_write(e, run.path)
        if refused is None:
            raise
        raise refused from None
    wall = time.perf_counter() - t0
    # with --ema the model holds the averaged weights from here on: last.h5 is the average
    save_weights_atomic(model, write_dir / run.last_weights.name)
    best = run.read_json(run.best_json)
    shipped = run.last_weights if config.ship == "last" or not best else run.best_weights
    summary = {
        "shipped": shipped.name,
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
        **({"init": config.init} if config.init else {}),
    }
    if report_src is not None:
        summary["report"] = _score_once(eval_model, shipped, report_src, config, info.class_names, d.val_split)
        log.info("%s, scored once with %s: mIoU %.4f", d.val_split, shipped.name, summary["report"]["miou"])
    if d.holdout:  # the frames of a place never trained on: the score that says how the model travels
        summary["holdout"] = _score_once(eval_model, shipped, val_src, config, info.class_names, d.holdout)
        log.info("held-out frames %s, scored with %s: mIoU %.4f (rare classes %s)", d.holdout, shipped.name,
                 summary["holdout"]["miou"], _fmt(summary["holdout"]["rare_class_mean"]))
    if chief:
        write_json_atomic(run.summary, summary)
    return summary


# what the C++ of TensorFlow says when the disk or the folder refuses a checkpoint
REFUSED_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large",
                 "Permission denied")


def refused_write(error: BaseException, folder: Path) -> OutputError | None:
    """``error`` as the one line of an OutputError (the file and the free space) when the disk
    or folder refused a write during training: Python's OSError (CSV log, HDF5 weights) or
    TensorFlow's (a BackupAndRestore checkpoint). None for anything else."""
    if isinstance(error, OutputError):
        return error
    if isinstance(error, OSError):
        return write_error(error.filename or folder, error) if is_refused(error) else None
    message = getattr(error, "message", str(error))
    text = next((t for t in REFUSED_TEXTS if t in message), None)
    if text is None:
        return None
    path = re.search(r"(/\S+?)(?:\.tempstate\d+)?;", message)
    where = Path(path.group(1)) if path else folder
    return OutputError(f"cannot write {where}: {text} ({free_space(where.parent if path else folder)})")


def _check_init(config: TrainConfig, class_names) -> None:
    """``--init RUN``: a finished run with weights, trained on the same classes."""
    start = RunDir(Path(config.init)).require()
    start.weights()
    trained = start.read_json(start.dataset).get("class_names")
    if trained is not None and tuple(trained) != tuple(class_names):
        raise ConfigError(f"--init {start.path} was trained on other classes ({', '.join(trained)}) "
                          f"than --data has ({', '.join(class_names)})")


def _score_once(eval_model, weights: Path, source, config: TrainConfig, class_names, split: str) -> dict:
    """The shipped weights on ``source``, with the mean IoU of the rare classes (those under 2%
    of the training pixels, ``data.rare_classes``) beside the mIoU."""
    eval_model.load_weights(str(weights), by_name=True)
    ds = build_eval_dataset(source, batch_size=4, size=config.data.eval_size, base_scale=config.data.base_scale)
    scores = metrics.summarize(confusion_over(eval_model, ds, len(class_names)), class_names)
    rare = [class_names[c] for c in config.data.rare_classes or ()]
    return {"split": split, "weights": weights.name, **scores, "rare_classes": rare,
            "rare_class_mean": metrics.class_mean(scores["per_class_iou"], rare)}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
