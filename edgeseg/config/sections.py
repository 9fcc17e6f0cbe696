"""The sections of a training config (data, model, optimization, loss) and the choices they take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeseg.core.errors import ConfigError
from edgeseg.core.geometry import parse_size, round_up

OPTIMIZERS = ("adamw", "sgd")
LOSSES = ("hybrid", "lovasz", "ce")
CLASS_WEIGHTS = ("none", "median_freq", "inverse_sqrt")
STRATEGIES = ("auto", "mirrored", "multiworker", "none")
DATASET_FORMATS = ("camvid", "cityscapes", "voc", "folder", "synthetic", "tfrecord")
HEADS = ("separable", "plain")
SHIP = ("best", "last")  # the checkpoint export and evaluate use
DECODER_UPSAMPLING = ("bilinear", "nearest")
# Quantization-aware fine-tuning defaults (`edgeseg train --qat`, `edgeseg export --qat`); chosen
# on CamVid val, see edgeseg.quant.qat.qat_finetune.
QAT_STEPS = 300
QAT_LR_FACTOR = 0.001
# `edgeseg train --init RUN` (fine-tuning on new frames): a short schedule at a tenth of the
# run's learning rate, half of each batch from the run's own training data.
FINETUNE_EPOCHS = 3
FINETUNE_STEPS_PER_EPOCH = 100
FINETUNE_LR_FACTOR = 0.1
FINETUNE_MIX = 0.5



@dataclass(frozen=True)
class DataSection:
    """Where the data is and how it is fed.

    Args:
        root: dataset folder (``None`` for the generated synthetic default).
        format: camvid | cityscapes | voc | folder | synthetic | tfrecord; ``None``: synthetic
            without ``root``, else detected from the folder's layout when training starts.
        crop_size: training crop (HxW); must be a multiple of the output stride.
        eval_size: padded evaluation size; ``None``: the first val frame, rounded up.
        scale_range: random scale range of the training augmentation.
        base_scale: fixed resize of every frame before augmentation and evaluation.
        batch_size: global batch size (split over replicas).
        cache: ``memory``, ``none`` or a file path prefix for an on-disk cache.
        train_split, val_split: split names; ``train,val`` joins splits.
        holdout: a glob on frame names (``0006R0_*``): those frames of the training split(s) are
            not trained on but validate and select checkpoints; the val split is then scored once,
            at the end.
        photometric: brightness/contrast/saturation jitter, noise, blur and JPEG re-encoding of
            the crops, so the model does not depend on one camera's or decoder's pixels.
        rare_crop_prob: how often a crop is centred on a pixel of a rare class (``rare_classes``:
            resolved from the training labels, the classes under 2% of the pixels).
        camera_shift: white balance, gamma and motion blur that differ between cameras and drives.
        copy_paste: share of the crops that get another crop's rare-class pixels pasted over them.
        val_root, val_format: the dataset the val split comes from, when not ``root`` (a
            fine-tuning run watches the data its starting run was validated on).
        mix: frames of another dataset drawn into every batch: ``{"root", "format", "split",
            "holdout", "share"}`` (``share`` of the frames; ``holdout``: a glob of frames left
            out, as in that dataset's own run); ``None``: only ``root``.
    """

    root: str | None = None
    format: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (96, 128)
    eval_size: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    base_scale: float = 1.0
    flip: bool = True
    batch_size: int = 8
    cache: str = "memory"
    holdout: str | None = None
    photometric: bool = True
    rare_crop_prob: float = 0.0
    rare_classes: Any = None
    camera_shift: bool = False
    copy_paste: float = 0.0
    val_root: str | None = None
    val_format: str | None = None
    mix: Any = None

    def __post_init__(self):
        if self.mix is not None:
            if not isinstance(self.mix, dict) or not {"root", "share"} <= set(self.mix):
                raise ConfigError("data.mix must be a mapping with at least 'root' and 'share'")
            if not 0 < float(self.mix["share"]) < 1:
                raise ConfigError(f"the mixed-in share must be between 0 and 1, got {self.mix['share']}")
        if not 0 <= self.copy_paste <= 1:
            raise ConfigError(f"copy-paste probability must be in [0, 1], got {self.copy_paste}")
        if not 0 <= self.rare_crop_prob <= 1:
            raise ConfigError(f"rare crop probability must be in [0, 1], got {self.rare_crop_prob}")
        if self.holdout is not None and self.format == "tfrecord":
            raise ConfigError("--holdout picks frames by name; TFRecord shards have none (hold out before writing them)")
        if self.format is not None and self.format not in DATASET_FORMATS:
            raise ConfigError(f"unknown dataset format '{self.format}'; choose one of: {', '.join(DATASET_FORMATS)}")
        object.__setattr__(self, "crop_size", parse_size(self.crop_size, "crop size"))
        if self.eval_size is not None:
            object.__setattr__(self, "eval_size", parse_size(self.eval_size, "eval size"))
        lo, hi = (float(v) for v in self.scale_range)
        if not 0 < lo <= hi:
            raise ConfigError(f"scale range must satisfy 0 < min <= max, got {lo}-{hi}")
        object.__setattr__(self, "scale_range", (lo, hi))
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0 < self.base_scale <= 4:
            raise ConfigError(f"base scale must be in (0, 4], got {self.base_scale}")

    def val_data(self, root=None, fmt=None) -> tuple:
        """(root, format) of the val split: ``val_root`` when set, else ``root``/``fmt`` (by
        default this section's own)."""
        if self.val_root is not None or self.val_format is not None:  # (None, synthetic): the generated set
            return self.val_root, self.val_format
        return (self.root, self.format) if root is None else (root, fmt)


@dataclass(frozen=True)
class ModelConfig:
    """The DeepLabv3+ architecture and its initial weights: the ``model`` section of a run's
    config and what :func:`edgeseg.models.build_deeplabv3plus` builds (the number of classes and
    the input size come from the data and are given to the builder).

    Args:
        backbone: a name in ``edgeseg.models.backbones.BACKBONES``.
        alpha: MobileNetV2 width multiplier.
        output_stride: 16 (ASPP rates 6/12/18) or 8 (12/24/36).
        atrous_rates: ASPP's 3x3 branch rates; ``None``: the paper's for the output stride (a
            small feature map needs fewer or smaller ones: the IMX500 preset takes 6/12).
        head: ``plain`` 3x3 convolutions or ``separable`` atrous separable ones in ASPP and decoder.
        aspp_filters, decoder_filters, low_level_filters: 256 / 256 / 48 in the paper.
        dropout: after the ASPP projection.
        bn_momentum: BatchNormalization moving-average momentum. 0.99 suits long schedules;
            short from-scratch runs need a faster one (0.9, the default): the moving variance
            starts at 1 and otherwise still lags the real statistics when training stops.
        backbone_weights: ``none``, ``imagenet`` or a Keras weights file, loaded when training
            starts (not when a trained run is rebuilt).
    """

    backbone: str = "mobilenetv2"
    alpha: float = 1.0
    output_stride: int = 16
    head: str = "separable"
    aspp_filters: int = 256
    decoder_filters: int = 256
    low_level_filters: int = 48
    dropout: float = 0.1
    bn_momentum: float = 0.9
    backbone_weights: str = "none"
    atrous_rates: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.atrous_rates is not None:
            try:
                rates = tuple(int(r) for r in self.atrous_rates)
            except (TypeError, ValueError):
                raise ConfigError(f"ASPP rates must be whole numbers, got {self.atrous_rates!r}") from None
            if not rates or min(rates) < 1:
                raise ConfigError(f"ASPP rates must be one or more numbers >= 1, got {self.atrous_rates!r}")
            object.__setattr__(self, "atrous_rates", rates)
        if self.output_stride not in (8, 16):
            raise ConfigError(f"output stride must be 8 or 16, got {self.output_stride}")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got '{self.head}'")
        if not 0 < self.alpha <= 2:
            raise ConfigError(f"alpha must be in (0, 2], got {self.alpha}")
        if not 0 < self.bn_momentum < 1:
            raise ConfigError(f"bn momentum must be in (0, 1), got {self.bn_momentum}")
        if min(self.aspp_filters, self.decoder_filters, self.low_level_filters) < 1:
            raise ConfigError("aspp, decoder and low-level filters must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def aspp_rates(self) -> tuple[int, ...]:
        if self.atrous_rates is not None:
            return self.atrous_rates
        return (6, 12, 18) if self.output_stride == 16 else (12, 24, 36)

    def check_input_size(self, size) -> tuple[int, int]:
        """``size`` as (h, w) if both are multiples of the output stride, else a ConfigError that
        proposes the next size that is."""
        h, w = (int(v) for v in size)
        os_ = self.output_stride
        if h <= 0 or w <= 0 or h % os_ or w % os_:
            raise ConfigError(f"input {h}x{w} is not divisible by output stride {os_}; "
                              f"use {round_up(max(h, os_), os_)}x{round_up(max(w, os_), os_)} (HxW)")
        return h, w


@dataclass(frozen=True)
class OptimSection:
    """Optimizer and schedule: poly decay ``(1 - t/T)^power`` after a linear warm-up."""

    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_steps: int = 50
    poly_power: float = 0.9
    epochs: int = 10
    steps_per_epoch: int | None = None
    ema: float | None = None  # momentum of an exponential moving average of the weights

    def __post_init__(self):
        if self.ema is not None and not 0 < self.ema < 1:
            raise ConfigError(f"EMA momentum must be in (0, 1), got {self.ema}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps per epoch must be >= 1, got {self.steps_per_epoch}")


@dataclass(frozen=True)
class LossSection:
    """``hybrid``: class-weighted cross-entropy + ``dice_weight`` x soft Dice; ``lovasz``: the same
    with Lovasz-softmax in place of Dice; ``ce``: CE only.

    ``class_weights``: none | median_freq | inverse_sqrt (computed from the training labels) or
    an explicit list, one weight per class.
    """

    type: str = "hybrid"
    dice_weight: float = 0.5
    class_weights: Any = "median_freq"
    max_class_weight: float = 10.0

    def __post_init__(self):
        if self.type not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got '{self.type}'")
        cw = self.class_weights
        if isinstance(cw, str) and cw not in CLASS_WEIGHTS:
            raise ConfigError(f"class weights must be a list or one of {', '.join(CLASS_WEIGHTS)}, got '{cw}'")
        if isinstance(cw, (list, tuple)):
            object.__setattr__(self, "class_weights", [float(w) for w in cw])
            if min(self.class_weights, default=0) < 0:
                raise ConfigError("class weights must be >= 0")
        if self.dice_weight < 0:
            raise ConfigError(f"dice weight must be >= 0, got {self.dice_weight}")
        if self.type == "lovasz" and self.dice_weight == 0:
            raise ConfigError("--loss lovasz weighs the Lovasz term by --dice-weight: give it a weight > 0")
        if self.max_class_weight <= 0:
            raise ConfigError(f"max class weight must be > 0, got {self.max_class_weight}")
