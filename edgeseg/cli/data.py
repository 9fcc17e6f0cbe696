"""`edgeseg data`: check, stats, tfrecords, synth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import Format, fail, handle_errors, quiet_tensorflow

app = typer.Typer(help="Inspect, convert and generate datasets.", no_args_is_help=True)

SPLITS = typer.Option("--split", "-s", help="Split(s) to use; repeat the option for several.")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True)


def _pairs(path: Path, format: Format, split: str):
    from edgeseg.data import get_format, resolve_root

    root = resolve_root(path, format.value)
    module = get_format(format.value)
    return module.info(root), module.pairs(root, split)


@app.command()
@handle_errors
def check(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Dataset format.")],
    splits: Annotated[Optional[list[str]], SPLITS] = None,
    max_problems: Annotated[int, typer.Option(help="Problems listed per split.")] = 20,
):
    """Scan a dataset: missing pairs, unreadable files, size mismatches, unknown label ids.

    Exits non-zero when anything is wrong.
    """
    from edgeseg.data.check import check_split

    if format is Format.tfrecord:
        fail("data check reads image/label files; check the dataset before writing TFRecords")
    bad = 0
    for split in splits or ["train", "val"]:
        info, found = _pairs(path, format, split)
        total = len(found.items)
        with _progress() as progress:
            task = progress.add_task(f"checking {split}", total=total)
            report = check_split(info, found.items, found.unpaired, found.expected_label, split,
                                 progress=lambda: progress.advance(task))
        sizes = ", ".join(f"{s} ({n})" for s, n in report.sizes.most_common(3))
        typer.echo(f"{split}: {report.pairs} pairs, {len(found.unpaired)} images without label; sizes: {sizes or '-'}")
        for problem in report.problems[:max_problems]:
            typer.echo(f"  {problem}")
        if len(report.problems) > max_problems:
            typer.echo(f"  ... and {len(report.problems) - max_problems} more")
        bad += len(report.problems)
    if bad:
        fail(f"{bad} problem(s) found in {path}")
    typer.echo("ok")


@app.command()
@handle_errors
def stats(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Dataset format.")],
    split: Annotated[str, typer.Option("--split", "-s")] = "train",
    max_weight: Annotated[float, typer.Option(help="Clip suggested weights.")] = 10.0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
):
    """Class pixel frequencies and suggested class weights (median-frequency and 1/sqrt)."""
    from edgeseg import metrics
    from edgeseg.data import load_split
    from edgeseg.data.check import pixel_counts

    data = load_split(path, format.value, split)
    with _progress() as progress:
        task = progress.add_task(f"reading {split} labels", total=len(data.items))
        counts = pixel_counts(data.info, data.label_paths, progress=lambda: progress.advance(task))
    freq = counts / max(counts.sum(), 1)
    median = metrics.class_weights(counts, "median_freq", max_weight)
    inv = metrics.class_weights(counts, "inverse_sqrt", max_weight)
    typer.echo(f"{'id':>3} {'class':<16} {'pixels':>12} {'share':>7} {'median_freq':>12} {'inverse_sqrt':>13}")
    for i, name in enumerate(data.info.class_names):
        typer.echo(f"{i:>3} {name:<16} {counts[i]:>12d} {freq[i]:>6.1%} {median[i]:>12.3f} {inv[i]:>13.3f}")
    typer.echo(f"\n--class-weights {','.join(f'{w:.3f}' for w in median)}")
    if json_out:
        json_out.write_text(json.dumps({
            "split": split, "classes": list(data.info.class_names), "pixels": counts.tolist(),
            "share": freq.tolist(), "median_freq": median.tolist(), "inverse_sqrt": inv.tolist(),
        }, indent=2))


@app.command()
@handle_errors
def tfrecords(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Dataset format.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the shards.")],
    splits: Annotated[Optional[list[str]], SPLITS] = None,
    shard_size: Annotated[int, typer.Option(help="Examples per shard.")] = 256,
):
    """Write sharded TFRecords (labels as train ids) for large datasets; train with --format tfrecord."""
    quiet_tensorflow()
    from edgeseg.data import load_split
    from edgeseg.data.pipeline import write_tfrecords

    for split in splits or ["train", "val"]:
        data = load_split(path, format.value, split)
        with _progress() as progress:
            task = progress.add_task(f"writing {split}", total=len(data.items))
            files = write_tfrecords(data, out, shard_size, progress=lambda: progress.advance(task))
        typer.echo(f"{split}: {len(data.items)} examples in {len(files)} shard(s) under {out}")


@app.command()
@handle_errors
def synth(
    out: Annotated[Optional[Path], typer.Argument(help="Output folder (default: the cache used by --format synthetic).")] = None,
    train: Annotated[int, typer.Option(help="Training images.")] = 240,
    val: Annotated[int, typer.Option(help="Validation images.")] = 60,
    size: Annotated[str, typer.Option(help="Image size HxW.")] = "96x128",
    seed: Annotated[int, typer.Option()] = 0,
):
    """Generate the synthetic road-scene dataset (the embedded default)."""
    from edgeseg.config import parse_size
    from edgeseg.data import synthetic

    root = synthetic.generate(out or synthetic.default_root(), {"train": train, "val": val},
                              parse_size(size, "--size"), seed)
    typer.echo(f"synthetic dataset ({train} train / {val} val, {size}) in {root}")
