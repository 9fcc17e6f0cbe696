"""`edgeseg evaluate`: score trained runs and exported .tflite / .onnx models on one split, and the
mIoU drop of each quantized model against the float one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, Format, fail, handle_errors, setup_logging
from edgeseg.core.files import check_output_file, write_json_atomic, write_text_atomic


MODEL_FILES = (".tflite", ".onnx", ".keras")  # .keras: the MCT model of an IMX500 export


def _progress(description: str, total: int | None):
    from rich.progress import Progress

    progress = Progress(transient=True)
    task = progress.add_task(description, total=total)
    return progress, lambda k: progress.advance(task, k)


def _score_run(run: Path, data, fmt, split, eval_size, batch_size, overlays, samples, frames):
    from edgeseg.core.geometry import parse_size
    from edgeseg.report import write_overlay_grid
    from edgeseg.train.scoring import score_run

    progress, advance = _progress(f"evaluating {run.name}", None)
    with progress:
        score, dataset, grid = score_run(run, data, fmt, split, parse_size(eval_size, "--eval-size") if eval_size else None,
                                         batch_size, progress=advance, overlay_samples=samples if overlays else 0,
                                         frames=frames)
    if overlays:
        write_overlay_grid(grid, dataset["colors"], overlays)
        typer.echo(f"overlays: {overlays}")
    return score, dataset


def _score_model_file(path: Path, data, fmt, split, threads, frames):
    from edgeseg.core.errors import ConfigError
    from edgeseg.data import load_split, resolve_format
    from edgeseg.data.base import frames_named
    from edgeseg.runtime.model.metadata import load_metadata
    from edgeseg.runtime.model.scoring import score_model_file

    imx500 = path.suffix == ".keras"
    if fmt is None and data is None:
        if imx500:
            from edgeseg.runtime.model.imx500 import read_sensor_metadata

            meta = read_sensor_metadata(path)
        else:
            meta = load_metadata(path)
        if meta is None or meta.dataset != "synthetic":
            raise ConfigError(f"evaluating {path.name} needs --data (or a run directory first)")
    source = frames_named(load_split(data, resolve_format(data, fmt), split), frames)
    progress, advance = _progress(f"evaluating {path.name}", len(source.items))
    with progress:
        if imx500:
            from edgeseg.export.imx500.export import score_quantized_keras

            return score_quantized_keras(path, source.items, source.info.label_map, source.info.class_names, advance)
        return score_model_file(path, source.items, source.info.label_map, source.info.class_names, threads,
                                progress=advance)


@handle_errors
def evaluate(
    models: Annotated[list[Path], typer.Argument(help="Run directories, weights files inside runs, and/or .tflite / .onnx models, or the RUN_imx500.keras of an IMX500 export (run by MCT in Sony's environment).")],
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder (default: the first run's).")] = None,
    format: Annotated[Optional[Format], typer.Option("--format", "-f", help="Dataset format (default: the first run's).")] = None,
    split: Annotated[str, typer.Option("--split", "-s")] = "val",
    frames: Annotated[Optional[str], typer.Option(help="Score only the split's frames whose image name matches this glob, e.g. a drive held out of training: '0006R0_*'.")] = None,
    eval_size: Annotated[Optional[str], typer.Option(help="Padded input size HxW (height x width) for Keras runs (default: the run's).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 4,
    threads: Annotated[int, typer.Option(min=1, help="Threads for .tflite / .onnx models.")] = 2,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write all metrics as JSON.")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the comparison as a Markdown table.")] = None,
    chart: Annotated[Optional[Path], typer.Option(help="PNG bar chart of per-class IoU per model.")] = None,
    overlays: Annotated[Optional[Path], typer.Option(help="PNG of image | ground truth | prediction rows (first run).")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Rows in the overlay PNG.")] = 4,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """mIoU, pixel accuracy and per-class IoU of each model on a split; with several models, the
    mIoU drop of each against the float reference (the first Keras run, else the fp32 file).

    [bold]Examples[/bold]

      edgeseg evaluate runs/camvid --overlays samples.png
      edgeseg evaluate runs/camvid runs/camvid/export/*.tflite --markdown drop.md --chart iou.png
      edgeseg evaluate runs/lever runs/lever/export/*.tflite --split train --frames '0006R0_*'
    """
    setup_logging(verbose)
    from edgeseg.core.errors import ConfigError

    keras_runs = [m for m in models if m.suffix not in MODEL_FILES]
    if overlays and not keras_runs:
        raise ConfigError("--overlays draws a Keras run's predictions; give a run directory")
    if eval_size and not keras_runs:
        raise ConfigError("--eval-size applies to Keras runs; a model file has its own input size")
    for m in models:
        if not m.exists():
            fail(f"model not found: {m}")
    for path, option in ((json_out, "--json"), (markdown, "--markdown"), (chart, "--chart"), (overlays, "--overlays")):
        check_output_file(path, option)
    from edgeseg import report

    scores = []
    fmt = format.value if format else None
    for m in models:
        if m.suffix in MODEL_FILES:
            scores.append(_score_model_file(m, data, fmt, split, threads, frames))
        else:
            score, dataset = _score_run(m, data, fmt, split, eval_size, batch_size,
                                        overlays if m == keras_runs[0] else None, samples, frames)
            data, fmt = data if data is not None else dataset["root"], fmt or dataset["format"]
            scores.append(score)
    rows = report.comparison_rows(scores)
    ref = report.reference(scores).name
    scored = f"{split}, frames {frames}" if frames else split
    typer.echo(report.text_table(rows, ref, scored))
    if json_out:
        write_json_atomic(json_out, {"split": split, "frames_glob": frames, "reference": ref, "models": rows})
        typer.echo(f"metrics: {json_out}")
    if markdown:
        write_text_atomic(markdown, report.markdown_table(rows, ref, scored))
        typer.echo(f"markdown: {markdown}")
    if chart:
        report.iou_bar_chart({r["model"]: r["per_class_iou"] for r in rows}, scores[0].class_names, chart)
        typer.echo(f"chart: {chart}")
