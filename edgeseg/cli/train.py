"""`edgeseg train`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, Format, Interp, choices, handle_errors, setup_logging
from edgeseg.cli.train_options import check_target, refuse_for_init, refuse_for_qat, refuse_for_training, with_mix
from edgeseg.config import HEADS, LOSSES, OPTIMIZERS, QAT_LR_FACTOR, QAT_STEPS, SHIP, STRATEGIES


Head = choices("Head", HEADS)
Optimizer = choices("Optimizer", OPTIMIZERS)
Loss = choices("Loss", LOSSES)
Strategy = choices("Strategy", STRATEGIES)
Ship = choices("Ship", SHIP)


def _floats(text: str | None, name: str):
    if text is None:
        return None
    from edgeseg.core.errors import ConfigError

    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers, got {text!r}") from None


DATA = "Data"
MODEL = "Model"
OPTIM = "Optimization"
RUN = "Run"
QAT = "Quantization-aware training (--qat --from RUN)"
FINETUNE = "Fine-tuning on new frames (--init RUN)"
def _given(ctx: typer.Context) -> set[str]:
    """The options the user wrote (or set in the environment), whatever their value: ``--seed 0``
    and ``--no-photometric`` are given although they are falsy."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, source in sources.items() if source is not None and source.name != "DEFAULT"}


@handle_errors
def train(
    ctx: typer.Context,
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder; its format is detected unless --format is given (default: the generated synthetic set). Every frame is checked before the first step, as `edgeseg data check` does.", rich_help_panel=DATA)] = None,
    format: Annotated[Optional[Format], typer.Option("--format", "-f", help="Dataset format (default: detected from the folder's layout).", rich_help_panel=DATA)] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML config; options given here override it.", rich_help_panel=RUN)] = None,
    preset: Annotated[Optional[str], typer.Option(help="Options for a target device, over --config and under the options given here: imx500 (the Raspberry Pi AI Camera: MobileNetV2 alpha 1.0, 256x256, ASPP rates 6/12) or imx500-320 (alpha 0.5, 320x320).", rich_help_panel=MODEL)] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/NAME); must be new or empty.", rich_help_panel=RUN)] = None,
    name: Annotated[Optional[str], typer.Option(help="Run name under runs/ (default: a timestamp).", rich_help_panel=RUN)] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --run-dir from its last epoch, with its saved config.", rich_help_panel=RUN)] = False,
    crop_size: Annotated[Optional[str], typer.Option(help="Training crop HxW (height x width, as every size option of train, export and evaluate; only run --camera-size is WxH), multiple of the output stride.", rich_help_panel=DATA)] = None,
    eval_size: Annotated[Optional[str], typer.Option(help="Padded evaluation size HxW (height x width; default: first val frame, rounded up).", rich_help_panel=DATA)] = None,
    scale_range: Annotated[Optional[str], typer.Option(help="Random scale range MIN,MAX (DeepLab: 0.5,2.0).", rich_help_panel=DATA)] = None,
    base_scale: Annotated[Optional[float], typer.Option(help="Fixed resize of every frame before augmentation and evaluation.", rich_help_panel=DATA)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Global batch size.", rich_help_panel=DATA)] = None,
    cache: Annotated[Optional[str], typer.Option(help="'memory', 'none' or a file prefix for an on-disk cache.", rich_help_panel=DATA)] = None,
    train_splits: Annotated[Optional[str], typer.Option(help="Split(s) trained on, e.g. train,val for the model you ship \\[default: train].", rich_help_panel=DATA)] = None,
    val_split: Annotated[Optional[str], typer.Option(help="Split scored during training (or once at the end with --holdout) \\[default: val].", rich_help_panel=DATA)] = None,
    holdout: Annotated[Optional[str], typer.Option(help="Glob on frame names (e.g. '0006R0_*'): those training frames select checkpoints instead of the val split, which is scored once at the end.", rich_help_panel=DATA)] = None,
    photometric: Annotated[Optional[bool], typer.Option("--photometric/--no-photometric", help="Brightness/contrast/saturation, noise, blur and JPEG re-encoding of the crops \\[default: on].", rich_help_panel=DATA)] = None,
    rare_crop_prob: Annotated[Optional[float], typer.Option(min=0, max=1, help="Share of crops centred on a pixel of a rare class (< 2% of the pixels).", rich_help_panel=DATA)] = None,
    camera_shift: Annotated[Optional[bool], typer.Option("--camera-shift/--no-camera-shift", help="White balance, gamma and motion blur, as they differ between cameras and drives \\[default: off].", rich_help_panel=DATA)] = None,
    copy_paste: Annotated[Optional[float], typer.Option(min=0, max=1, help="Share of crops that get another crop's rare-class pixels (and labels) pasted over them \\[default: 0].", rich_help_panel=DATA)] = None,
    backbone: Annotated[Optional[str], typer.Option(help="mobilenetv2 or resnet50.", rich_help_panel=MODEL)] = None,
    alpha: Annotated[Optional[float], typer.Option(help="MobileNetV2 width multiplier.", rich_help_panel=MODEL)] = None,
    output_stride: Annotated[Optional[int], typer.Option(help="16 or 8.", rich_help_panel=MODEL)] = None,
    head: Annotated[Optional[Head], typer.Option(help="ASPP/decoder convolutions.", rich_help_panel=MODEL)] = None,
    aspp_filters: Annotated[Optional[int], typer.Option(min=1, help="ASPP channels (paper: 256).", rich_help_panel=MODEL)] = None,
    decoder_filters: Annotated[Optional[int], typer.Option(min=1, help="Decoder channels (paper: 256).", rich_help_panel=MODEL)] = None,
    aspp_rates: Annotated[Optional[str], typer.Option(help="ASPP atrous rates, e.g. 6,12 \\[default: 6,12,18 at output stride 16, 12,24,36 at 8].", rich_help_panel=MODEL)] = None,
    backbone_weights: Annotated[Optional[str], typer.Option(help="imagenet | PATH.h5 | none.", rich_help_panel=MODEL)] = None,
    bn_momentum: Annotated[Optional[float], typer.Option(help="BatchNorm moving-average momentum (0.9 for short runs, 0.99 for long).", rich_help_panel=MODEL)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", min=1, rich_help_panel=OPTIM)] = None,
    steps_per_epoch: Annotated[Optional[int], typer.Option(min=1, help="Default: one pass over the training split.", rich_help_panel=OPTIM)] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(rich_help_panel=OPTIM)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (poly decay after warm-up).", rich_help_panel=OPTIM)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(min=0, help="Decoupled weight decay.", rich_help_panel=OPTIM)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(min=0, rich_help_panel=OPTIM)] = None,
    ema: Annotated[Optional[float], typer.Option(help="Keep an exponential moving average of the weights with this momentum (e.g. 0.999); it is what is validated and saved.", rich_help_panel=OPTIM)] = None,
    loss: Annotated[Optional[Loss], typer.Option(help="hybrid = weighted CE + soft Dice; lovasz = weighted CE + Lovasz-softmax (weight --dice-weight); ce = CE only.", rich_help_panel=OPTIM)] = None,
    dice_weight: Annotated[Optional[float], typer.Option(min=0, rich_help_panel=OPTIM)] = None,
    class_weights: Annotated[Optional[str], typer.Option(help="none | median_freq | inverse_sqrt | W1,W2,...", rich_help_panel=OPTIM)] = None,
    max_class_weight: Annotated[Optional[float], typer.Option(help="Clip computed class weights.", rich_help_panel=OPTIM)] = None,
    val_every: Annotated[Optional[int], typer.Option(min=1, help="Validate every N epochs.", rich_help_panel=RUN)] = None,
    strategy: Annotated[Optional[Strategy], typer.Option(help="tf.distribute strategy (multiworker reads TF_CONFIG).", rich_help_panel=RUN)] = None,
    mixed_precision: Annotated[Optional[bool], typer.Option("--mixed-precision/--no-mixed-precision", help="float16 compute (GPUs).", rich_help_panel=RUN)] = None,
    xla: Annotated[Optional[bool], typer.Option("--xla/--no-xla", help="XLA-compile the train step.", rich_help_panel=RUN)] = None,
    deterministic: Annotated[Optional[bool], typer.Option("--deterministic/--no-deterministic", help="Reproducible batches and ops (slower).", rich_help_panel=RUN)] = None,
    backup_every_steps: Annotated[Optional[int], typer.Option(min=1, help="Also back up every N steps (default: each epoch).", rich_help_panel=RUN)] = None,
    seed: Annotated[Optional[int], typer.Option(rich_help_panel=RUN)] = None,
    ship: Annotated[Optional[Ship], typer.Option(help="Checkpoint export and evaluate use: best on validation, or last \\[default: best].", rich_help_panel=RUN)] = None,
    qat: Annotated[bool, typer.Option("--qat", help="Fine-tune the float run given by --from with fake quantization (tfmot); `edgeseg export --qat` uses the result.", rich_help_panel=QAT)] = False,
    from_run: Annotated[Optional[Path], typer.Option("--from", help="The trained float run (QAT weights are saved in it).", rich_help_panel=QAT)] = None,
    qat_steps: Annotated[Optional[int], typer.Option(min=0, help=f"QAT fine-tuning steps \\[default: {QAT_STEPS}].", rich_help_panel=QAT)] = None,
    qat_lr_factor: Annotated[Optional[float], typer.Option(min=0, help=f"QAT learning rate as a fraction of the float one \\[default: {QAT_LR_FACTOR}].", rich_help_panel=QAT)] = None,
    qat_freeze_bn: Annotated[Optional[bool], typer.Option("--qat-freeze-bn/--qat-train-bn", help="BatchNorm in inference mode during QAT \\[default: frozen].", rich_help_panel=QAT)] = None,
    decoder_upsample: Annotated[Optional[Interp], typer.Option(help="The decoder's x4 upsample in the QAT (and exported) graph \\[default: bilinear].", rich_help_panel=QAT)] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from this run's shipped weights and config (same model, sizes, class weights) and fine-tune on --data: 300 steps at a tenth of its learning rate, half of each batch from its own training data, its val split watched.", rich_help_panel=FINETUNE)] = None,
    data_mix: Annotated[Optional[str], typer.Option(help="[PATH:]SHARE: draw SHARE of each batch from dataset PATH (with --init, default: the run's own training data at 0.5; 0 mixes nothing).", rich_help_panel=FINETUNE)] = None,
    val_data: Annotated[Optional[Path], typer.Option(help="Dataset the val split comes from, when not --data (with --init, default: the run's).", rich_help_panel=FINETUNE)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Train DeepLabv3+ and keep the checkpoint with the best validation mIoU.

    [bold]Examples[/bold]

      edgeseg train                                   # synthetic demo data
      edgeseg train --data data/camvid --crop-size 256x256 --epochs 40   # format detected
      edgeseg train --run-dir runs/camvid --resume    # after a crash
      edgeseg train --qat --from runs/camvid          # then: edgeseg export runs/camvid --qat
      edgeseg train --init runs/camvid --data site-frames/   # frames from `edgeseg run --collect`
    """
    given = _given(ctx) - {"verbose"}
    setup_logging(verbose)
    from edgeseg.config import TrainConfig
    from edgeseg.core.errors import ConfigError

    if qat or from_run is not None:
        refuse_for_qat(given, qat, from_run)
        _train_qat(from_run, QAT_STEPS if qat_steps is None else qat_steps,
                   QAT_LR_FACTOR if qat_lr_factor is None else qat_lr_factor,
                   (decoder_upsample or Interp.bilinear).value, batch_size,
                   True if qat_freeze_bn is None else qat_freeze_bn)
        return
    refuse_for_training(given, resume, run_dir, name)
    if init is not None:
        refuse_for_init(given, data)
        base = _finetune_base(init)
    else:
        base = TrainConfig.load(config) if config else TrainConfig()
    if preset is not None:
        from edgeseg.config.presets import preset as preset_options

        base = base.override(**preset_options(preset))
    base = with_mix(base, data_mix, init is not None)
    cw = class_weights
    if cw is not None and cw not in ("none", "median_freq", "inverse_sqrt"):
        cw = _floats(cw, "--class-weights")
    cfg = base.override(
        data__root=str(data) if data else None,
        data__format=format.value if format else None,
        data__crop_size=crop_size, data__eval_size=eval_size,
        data__scale_range=_floats(scale_range, "--scale-range"), data__base_scale=base_scale,
        data__batch_size=batch_size, data__cache=cache, data__train_split=train_splits,
        data__val_split=val_split, data__holdout=holdout, data__photometric=photometric,
        data__rare_crop_prob=rare_crop_prob, data__camera_shift=camera_shift, data__copy_paste=copy_paste,
        optim__ema=ema, ship=ship.value if ship else None,
        model__backbone=backbone, model__alpha=alpha, model__output_stride=output_stride,
        model__head=head.value if head else None, model__aspp_filters=aspp_filters,
        model__decoder_filters=decoder_filters, model__backbone_weights=backbone_weights,
        model__bn_momentum=bn_momentum, model__atrous_rates=_ints(aspp_rates, "--aspp-rates"),
        optim__epochs=epochs, optim__steps_per_epoch=steps_per_epoch,
        optim__optimizer=optimizer.value if optimizer else None, optim__learning_rate=lr,
        optim__weight_decay=weight_decay, optim__warmup_steps=warmup_steps,
        loss__type=loss.value if loss else None, loss__dice_weight=dice_weight,
        loss__class_weights=cw, loss__max_class_weight=max_class_weight,
        val_every=val_every, strategy=strategy.value if strategy else None,
        mixed_precision=mixed_precision, xla=xla, deterministic=deterministic,
        backup_every_steps=backup_every_steps, seed=seed,
        data__val_root=str(val_data) if val_data else None,
    )
    if val_data is not None:  # detected when training starts
        cfg = cfg.without("data__val_format")
    if cfg.data.format not in (None, "synthetic") and cfg.data.root is None:
        raise ConfigError(f"--data is required for --format {cfg.data.format}")
    from edgeseg.models import get_backbone

    get_backbone(cfg.model.backbone)  # unknown names fail before any data is read
    if preset is not None:
        check_target(preset, cfg)
    run_dir = run_dir or Path("runs") / (name or datetime.now().strftime("%Y%m%d-%H%M%S"))

    from edgeseg.train import train as fit
    from edgeseg.train.fit import RunFinished

    try:
        summary = fit(cfg, run_dir, resume=resume)
    except RunFinished as done:
        typer.echo(str(done))
        return
    _print_summary(summary, cfg, run_dir)


def _ints(text: str | None, name: str):
    values = _floats(text, name)
    if values is None:
        return None
    from edgeseg.core.errors import ConfigError

    if any(v != int(v) for v in values):
        raise ConfigError(f"{name} must be whole numbers, got {text!r}")
    return [int(v) for v in values]


def _finetune_base(init: Path):
    from edgeseg.config import TrainConfig
    from edgeseg.rundir import RunDir

    run = RunDir(init).require()
    run.weights()  # a run without weights fails here, before any data is read
    return TrainConfig.load(run.config).finetuning(init)


def _print_summary(summary: dict, cfg, run_dir: Path) -> None:
    miou = summary.get("val_miou")
    typer.echo(f"\nrun: {run_dir}")
    report = summary.get("report")
    scores = report["per_class_iou"] if report else summary.get("per_class_iou")
    if miou is not None:
        if report and not cfg.data.holdout:  # val watched the run; nothing was selected on it
            typer.echo(f"best mIoU on val while training: {miou:.4f} (epoch {summary['best_epoch']}); "
                       f"shipped: {summary['shipped']} (not selected on val)")
        else:
            where = "the held-out training frames" if report else "val"
            typer.echo(f"best mIoU on {where}: {miou:.4f} (epoch {summary['best_epoch']}); shipped: {summary['shipped']}")
    if report:
        typer.echo(f"{report['split']} mIoU, scored once with {report['weights']}: {report['miou']:.4f}")
    held = summary.get("holdout")
    if held:
        rare = "-" if held["rare_class_mean"] is None else f"{held['rare_class_mean']:.4f}"
        typer.echo(f"held-out frames {held['split']} (never trained on), {held['weights']}: mIoU {held['miou']:.4f}, "
                   f"rare classes {rare} ({', '.join(held['rare_classes']) or 'none'})")
    for cls, iou in (scores or {}).items():
        typer.echo(f"  {cls:<16} {'-' if iou is None else f'{iou:.4f}'}")
    if summary.get("sec_per_step"):
        typer.echo(f"sec/step: {summary['sec_per_step']:.3f}  wall: {summary['wall_seconds_this_session']:.0f}s")


def _float_val_miou(rd) -> float | None:
    """The float model's score on the split QAT is scored on (val): the run's one scoring of val
    with the shipped weights, else its best validation, unless that validated on held-out frames."""
    summary = rd.read_json(rd.summary)
    if "report" in summary:
        return summary["report"].get("miou")
    return None if summary.get("holdout") else rd.read_json(rd.best_json).get("miou")


def _train_qat(run: Path, steps: int, lr_factor: float, decoder_upsample: str, batch_size: int | None,
               freeze_bn: bool = True) -> None:
    from edgeseg.quant.qat import evaluate_qat, qat_finetune
    from edgeseg.rundir import RunDir

    rd = RunDir(run).require()
    info = qat_finetune(run, steps=steps, lr_factor=lr_factor, batch_size=batch_size,
                        decoder_interpolation=decoder_upsample, freeze_bn=freeze_bn)
    result = evaluate_qat(run)
    best = _float_val_miou(rd)
    typer.echo(f"\nQAT weights: {rd.qat_weights} ({info['steps']} steps, {info['seconds']:.0f}s)")
    line = f"val mIoU with fake quantization: {result['miou']:.4f}"
    if best is not None:
        line += f" (float {best:.4f}, drop {100 * (best - result['miou']):.2f} points)"
    typer.echo(line)
    typer.echo(f"next: edgeseg export {run} --qat")
