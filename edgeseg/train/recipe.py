"""What a training run is made of, decided before it starts: the splits it trains, selects and
reports on, what the data fills into the config (evaluation size, class weights, rare classes),
and the optimizer and loss the config describes."""

from __future__ import annotations

import logging

import numpy as np

from edgeseg._tf import keras
from edgeseg.config import TrainConfig
from edgeseg.core import metrics
from edgeseg.core.errors import ConfigError
from edgeseg.core.geometry import round_up
from edgeseg.core.images import read_image
from edgeseg.data.check import pixel_counts
from edgeseg.data.pipeline import TFRecordSplit, load_source
from edgeseg.losses import SegmentationLoss
from edgeseg.train.schedule import PolyDecayWithWarmup

log = logging.getLogger("edgeseg")
RARE_SHARE = 0.02  # a class under this share of the labelled training pixels is rare


def trained_frames(config: TrainConfig):
    """The frames of ``config``'s own data that it trains on: its training split(s) without the
    ``--holdout`` frames (what QAT fine-tunes on, as training did)."""
    d = config.data
    train = load_source(d.root, d.format, d.train_split)
    return train.partition(d.holdout)[0] if d.holdout else train


def training_sources(config: TrainConfig):
    """``(train, select, report)``: the frames trained on, the frames that validate and select
    checkpoints, and the split scored once at the end with the shipped weights (None when
    nothing is left that the run was not selected or trained on). With ``data.holdout`` the
    selecting frames are that part of the training split(s); with ``ship: last`` and no holdout,
    val only watches the run and is also the split reported."""
    d = config.data
    train = load_source(d.root, d.format, d.train_split, True)
    val_root, val_format = d.val_data()
    if d.holdout:
        train, select = train.partition(d.holdout)
        log.info("training on %d frames, selecting on %d held-out ones (%s); %s is scored once at the end",
                 len(train.items), len(select.items), d.holdout, d.val_split)
        return train, select, load_source(val_root, val_format, d.val_split, True)
    val = load_source(val_root, val_format, d.val_split, True)
    if val_root == d.root and set(d.val_split.split(",")) <= set(d.train_split.split(",")):
        log.warning("validating on frames that are trained on (%s): the score says nothing about unseen "
                    "frames%s", d.val_split, "" if config.ship == "last" else "; pass --ship last")
        return train, val, None
    return train, val, val if config.ship == "last" else None


def mixed_source(config: TrainConfig, class_names):
    """``(frames, share)`` of the dataset drawn into every batch (``data.mix``), or None."""
    mix = config.data.mix
    if not mix:
        return None
    from edgeseg.data import resolve_format

    fmt = resolve_format(mix["root"], mix.get("format"))
    source = load_source(mix["root"], fmt, mix.get("split") or "train", True)
    if mix.get("holdout"):
        source, _ = source.partition(mix["holdout"])
    if tuple(source.info.class_names) != tuple(class_names):
        raise ConfigError(f"--data-mix {mix['root']} has other classes than --data: "
                          f"{', '.join(source.info.class_names)}")
    log.info("mixing %d frames of %s into every batch (%.0f%% of the frames)", len(source.items),
             mix["root"] or "the generated synthetic set",
             100 * float(mix["share"]))
    return source, float(mix["share"])


def resolve(config: TrainConfig, train_src, val_src, counts=None) -> TrainConfig:
    """Fill in what the data decides: evaluation size, class weights, rare classes (``counts``:
    the training labels' pixels per class, when the check before training counted them)."""
    data, loss = config.data, config.loss
    os_ = config.model.output_stride
    if data.eval_size is None:
        h, w = first_frame_size(val_src)
        size = (round_up(round(h * data.base_scale), os_), round_up(round(w * data.base_scale), os_))
        config = config.override(data__eval_size=list(size))
    # rare classes: for the crops centred on them, and for the held-out score's rare-class mean
    wants_rare = (data.rare_crop_prob > 0 or data.copy_paste > 0 or data.holdout) and data.rare_classes is None
    needs_counts = (isinstance(loss.class_weights, str) and loss.class_weights != "none") or wants_rare
    if needs_counts and counts is None:
        counts = label_pixel_counts(train_src)
    if isinstance(loss.class_weights, str) and loss.class_weights != "none":
        weights = metrics.class_weights(counts, loss.class_weights, loss.max_class_weight)
        config = config.override(loss__class_weights=[round(float(w), 4) for w in weights])
    if wants_rare:
        share = counts / max(counts.sum(), 1)
        rare = [int(c) for c in np.flatnonzero(share < RARE_SHARE)]
        log.info("rare classes (under %.0f%% of the pixels): %s", 100 * RARE_SHARE,
                 ", ".join(train_src.info.class_names[c] for c in rare) or "none")
        config = config.override(data__rare_classes=rare)
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
    return read_image(source.image_paths[0]).shape[:2]


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
    region = config.loss.dice_weight if config.loss.type != "ce" else 0.0
    return SegmentationLoss(num_classes, class_weights=weights, dice_weight=region,
                            region="lovasz" if config.loss.type == "lovasz" else "dice")


