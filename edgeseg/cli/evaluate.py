"""`edgeseg evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import Format, handle_errors, quiet_tensorflow, setup_logging


@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Training run directory, or a weights file inside one.")],
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder (default: the run's).")] = None,
    format: Annotated[Optional[Format], typer.Option("--format", "-f", help="Dataset format (default: the run's).")] = None,
    split: Annotated[str, typer.Option("--split", "-s")] = "val",
    eval_size: Annotated[Optional[str], typer.Option(help="Padded input size HxW (default: the run's).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 4,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics as JSON.")] = None,
    overlays: Annotated[Optional[Path], typer.Option(help="PNG of image | ground truth | prediction rows.")] = None,
    samples: Annotated[int, typer.Option(help="Rows in the overlay PNG.")] = 4,
):
    """mIoU, pixel accuracy and per-class IoU of a trained model on a split."""
    setup_logging()
    quiet_tensorflow()
    from edgeseg.config import TrainConfig, _pair
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.errors import ConfigError, DataError
    from edgeseg.evaluate import confusion_over, save_overlays
    from edgeseg.metrics import summarize
    from edgeseg.rundir import RunDir
    from edgeseg.train import load_run_model

    weights = None
    if run.is_file():
        weights, run = run, run.parent
    rd = RunDir(run).require()
    config = TrainConfig.load(rd.config)
    meta = json.loads(rd.dataset.read_text())
    fmt = format.value if format else meta["format"]
    root = data if data is not None else meta.get("root")
    source = load_source(root, fmt, split)
    if list(source.info.class_names) != meta["class_names"]:
        raise DataError(f"dataset classes {list(source.info.class_names)} differ from the run's {meta['class_names']}")
    size = _pair(eval_size, "--eval-size") if eval_size else config.data.eval_size
    model, _ = load_run_model(run, size, weights)
    dataset = build_eval_dataset(source, batch_size, size, config.data.base_scale)
    n = len(source.items) if hasattr(source, "items") else source.count
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {split}", total=n)
        cm = confusion_over(model, dataset, len(meta["class_names"]),
                            progress=lambda k: progress.advance(task, k))
    result = summarize(cm, meta["class_names"])
    result.update({"run": str(run), "weights": str(weights or rd.weights()), "split": split,
                   "frames": n, "eval_size": list(size)})
    typer.echo(f"{split}: {n} frames at {size[0]}x{size[1]}")
    typer.echo(f"mIoU {result['miou']:.4f}   pixel accuracy {result['pixel_accuracy']:.4f}")
    for name, iou in result["per_class_iou"].items():
        bar = "#" * int(round((iou or 0) * 30))
        typer.echo(f"  {name:<16} {'-' if iou is None else f'{iou:.4f}'}  {bar}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        typer.echo(f"metrics: {json_out}")
    if overlays:
        save_overlays(model, build_eval_dataset(source, batch_size, size, config.data.base_scale),
                      meta["colors"], overlays, samples)
        typer.echo(f"overlays: {overlays}")
