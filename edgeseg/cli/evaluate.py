"""`edgeseg evaluate`: score trained runs and exported .tflite models on one split, and the
mIoU drop of each quantized model against the float one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from edgeseg.cli.common import VERBOSE_HELP, Format, handle_errors, setup_logging
from edgeseg.core.files import check_output_file, write_json_atomic, write_text_atomic


def _keras_result(run: Path, data, fmt, split, eval_size, batch_size, overlays, samples):
    from edgeseg.config import TrainConfig, parse_size
    from edgeseg.data import resolve_format
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.errors import DataError
    from edgeseg.evaluate import confusion_over, save_overlays
    from edgeseg.rundir import RunDir
    from edgeseg.train import load_run_model

    weights = None
    if run.is_file():
        weights, run = run, run.parent
    rd = RunDir(run).require()
    config = TrainConfig.load(rd.config)
    meta = json.loads(rd.dataset.read_text())
    if fmt is None:
        fmt = resolve_format(data, None) if data is not None else meta["format"]
    source = load_source(data if data is not None else meta.get("root"), fmt, split)
    if list(source.info.class_names) != meta["class_names"]:
        raise DataError(f"dataset classes {list(source.info.class_names)} differ from the run's {meta['class_names']}")
    size = parse_size(eval_size, "--eval-size") if eval_size else config.data.eval_size
    model, _ = load_run_model(run, size, weights)
    dataset = build_eval_dataset(source, batch_size, size, config.data.base_scale)
    n = len(source.items) if hasattr(source, "items") else source.count
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {run.name}", total=n)
        cm = confusion_over(model, dataset, len(meta["class_names"]), progress=lambda k: progress.advance(task, k))
    if overlays:
        save_overlays(model, build_eval_dataset(source, batch_size, size, config.data.base_scale),
                      meta["colors"], overlays, samples)
        typer.echo(f"overlays: {overlays}")
    return {"name": f"{run.name} (keras)", "kind": "keras", "cm": cm, "frames": n, "class_names": meta["class_names"],
            "path": str(weights or rd.weights()), "bytes": None, "latency_ms": None,
            "root": data if data is not None else meta.get("root"), "format": fmt}


def _model_dataset(path: Path) -> str | None:
    """The dataset name in a .tflite model's edgeseg metadata."""
    from edgeseg.runtime.metadata import load_metadata

    meta = load_metadata(path)
    return meta.dataset if meta is not None else None


def _tflite_result(path: Path, data, fmt, split, threads):
    from edgeseg.data import load_split, resolve_format
    from edgeseg.errors import ConfigError
    from edgeseg.runtime.evaluate import evaluate_tflite

    if fmt is None and data is None:
        dataset = _model_dataset(path)
        if dataset != "synthetic":
            raise ConfigError(f"evaluating {path.name} needs --data (or a run directory first)")
    source = load_split(data, resolve_format(data, fmt), split)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {path.name}", total=len(source.items))
        r = evaluate_tflite(path, source.items, source.info, threads, progress=lambda k: progress.advance(task, k))
    return {"name": path.name, "kind": r["precision"], "cm": r["cm"], "frames": len(source.items),
            "class_names": list(source.info.class_names), "path": str(path), "bytes": r["bytes"],
            "latency_ms": float(np.median(r["latency_ms"]))}


@handle_errors
def evaluate(
    models: Annotated[list[Path], typer.Argument(help="Run directories, weights files inside runs, and/or .tflite models.")],
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder (default: the first run's).")] = None,
    format: Annotated[Optional[Format], typer.Option("--format", "-f", help="Dataset format (default: the first run's).")] = None,
    split: Annotated[str, typer.Option("--split", "-s")] = "val",
    eval_size: Annotated[Optional[str], typer.Option(help="Padded input size HxW for Keras runs (default: the run's).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 4,
    threads: Annotated[int, typer.Option(min=1, help="Interpreter threads for .tflite models.")] = 2,
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
    """
    setup_logging(verbose)
    from edgeseg.errors import ConfigError
    from edgeseg.metrics import summarize

    keras_runs = [m for m in models if m.suffix != ".tflite"]
    if overlays and not keras_runs:
        raise ConfigError("--overlays draws a Keras run's predictions; give a run directory")
    if eval_size and not keras_runs:
        raise ConfigError("--eval-size applies to Keras runs; a .tflite model has its own input size")
    for m in models:
        if not m.exists():
            raise ConfigError(f"model not found: {m}")
    for path, option in ((json_out, "--json"), (markdown, "--markdown"), (chart, "--chart"), (overlays, "--overlays")):
        check_output_file(path, option)
    results = []
    fmt = format.value if format else None
    for m in models:
        if m.suffix == ".tflite":
            results.append(_tflite_result(m, data, fmt, split, threads))
        else:
            r = _keras_result(m, data, fmt, split, eval_size, batch_size, overlays if m == keras_runs[0] else None, samples)
            data, fmt = data if data is not None else r["root"], fmt or r["format"]
            results.append(r)
    for r in results:
        r["summary"] = summarize(r["cm"], r["class_names"])
    ref = next((r for r in results if r["kind"] == "keras"), None) or \
        next((r for r in results if r["kind"] == "fp32"), results[0])
    rows = []
    for r in results:
        s = r["summary"]
        rows.append({
            "model": r["name"], "kind": r["kind"], "miou": s["miou"], "drop_points": 100 * (ref["summary"]["miou"] - s["miou"]),
            "pixel_accuracy": s["pixel_accuracy"], "mb": None if r["bytes"] is None else r["bytes"] / 1e6,
            "latency_ms": r["latency_ms"], "per_class_iou": s["per_class_iou"], "path": r["path"], "frames": r["frames"],
        })
    _print(rows, ref, split)
    if json_out:
        write_json_atomic(json_out, {"split": split, "reference": ref["name"], "models": rows})
        typer.echo(f"metrics: {json_out}")
    if markdown:
        write_text_atomic(markdown, _markdown(rows, ref, split))
        typer.echo(f"markdown: {markdown}")
    if chart:
        from edgeseg.runtime.evaluate import bar_chart

        bar_chart({r["model"]: r["per_class_iou"] for r in rows}, results[0]["class_names"], chart)
        typer.echo(f"chart: {chart}")


def _print(rows, ref, split):
    typer.echo(f"{split}: {rows[0]['frames']} frames; drop vs {ref['name']}")
    typer.echo(f"{'model':<34} {'kind':<6} {'mIoU':>7} {'drop':>7} {'pix acc':>8} {'MB':>6} {'pred ms':>8}")
    for r in rows:
        mb = "-" if r["mb"] is None else f"{r['mb']:.2f}"
        ms = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}"
        typer.echo(f"{r['model'][:34]:<34} {r['kind']:<6} {r['miou']:>7.4f} {r['drop_points']:>6.2f}p "
                   f"{r['pixel_accuracy']:>8.4f} {mb:>6} {ms:>8}")
    names = list(rows[0]["per_class_iou"])
    typer.echo("\nper-class IoU")
    typer.echo(f"{'class':<16} " + " ".join(f"{r['kind'][:7]:>7}" for r in rows))
    for c in names:
        vals = " ".join(f"{'-' if r['per_class_iou'][c] is None else format(r['per_class_iou'][c], '.4f'):>7}" for r in rows)
        typer.echo(f"{c:<16} {vals}")


def _markdown(rows, ref, split) -> str:
    out = [f"mIoU on `{split}` ({rows[0]['frames']} frames); drop in points vs {ref['name']}.\n",
           "| model | kind | mIoU | drop | pixel acc | MB | median ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        mb = "-" if r["mb"] is None else f"{r['mb']:.2f}"
        ms = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}"
        out.append(f"| {r['model']} | {r['kind']} | {r['miou']:.4f} | {r['drop_points']:.2f} | {r['pixel_accuracy']:.4f} | {mb} | {ms} |")
    names = list(rows[0]["per_class_iou"])
    out += ["", "| class | " + " | ".join(r["kind"] for r in rows) + " |", "|---|" + "---:|" * len(rows)]
    for c in names:
        out.append(f"| {c} | " + " | ".join("-" if r["per_class_iou"][c] is None else f"{r['per_class_iou'][c]:.4f}" for r in rows) + " |")
    return "\n".join(out) + "\n"
