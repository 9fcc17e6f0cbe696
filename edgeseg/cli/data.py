"""`edgeseg data`: check, stats, tfrecords, synth, and a collection's labels to and from CVAT."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, Format, fail, handle_errors, setup_logging, usage
from edgeseg.core.files import check_output_file, write_json_atomic

app = typer.Typer(help="Inspect, convert and generate datasets.", no_args_is_help=True)

SPLITS = typer.Option("--split", "-s", help="Split(s) to use; repeat the option for several.")
FORMAT = typer.Option("--format", "-f", help="Dataset format (default: detected from the folder's layout).")
VERBOSE = typer.Option("--verbose", "-v", help=VERBOSE_HELP)


def _format(path: Path, format: Format | None) -> str:
    from edgeseg.data import resolve_format

    return resolve_format(path, format.value if format else None)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True)


def _pairs(path: Path, fmt: str, split: str):
    from edgeseg.data import find_pairs

    return find_pairs(path, fmt, split)


def _sizes(report) -> str:
    return ", ".join(f"{w}x{h} ({n})" for (w, h), n in report.sizes.most_common(3)) or "-"


@app.command()
@handle_errors
def check(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    format: Annotated[Optional[Format], FORMAT] = None,
    splits: Annotated[Optional[list[str]], SPLITS] = None,
    max_problems: Annotated[int, typer.Option(min=0, help="Problems listed per split.")] = 20,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """Scan a dataset: missing pairs, unreadable or cut-short files, size mismatches, label values
    outside the classes (each with its pixels and files). `edgeseg train` refuses the same.

    Sizes are written WxH (width x height). Exits non-zero when anything is wrong.
    """
    setup_logging(verbose)
    from edgeseg.data.check import check_split

    fmt = _format(path, format)
    if fmt == "tfrecord":
        usage("data check reads image/label files; check the dataset before writing TFRecords")
    from edgeseg.core.collection import SPLIT, is_collection

    bad = 0
    for split in splits or ([SPLIT] if is_collection(path) else ["train", "val"]):
        info, found = _pairs(path, fmt, split)
        total = len(found.items)
        with _progress() as progress:
            task = progress.add_task(f"checking {split}", total=total)
            report = check_split(info, found.items, found.unpaired, found.expected_label, split,
                                 progress=lambda: progress.advance(task))
        typer.echo(f"{split}: {report.pairs} pairs, {report.unpaired} images without label; "
                   f"sizes (WxH): {_sizes(report)}; {report.seconds:.1f}s")
        for problem in report.problems[:max_problems]:
            typer.echo(f"  {problem.text}")
        if len(report.problems) > max_problems:
            typer.echo(f"  ... and {len(report.problems) - max_problems} more")
        if report.problems:
            typer.echo(f"  {split}, by kind:")
            for line in report.kind_lines():
                typer.echo(f"  - {line}")
        bad += len(report.problems)
    if bad:
        fail(f"{bad} problem(s) found in {path}; `edgeseg train` refuses such data")
    typer.echo("ok")


@app.command()
@handle_errors
def stats(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    format: Annotated[Optional[Format], FORMAT] = None,
    split: Annotated[str, typer.Option("--split", "-s")] = "train",
    max_weight: Annotated[float, typer.Option(min=0, help="Clip suggested weights.")] = 10.0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """Class pixel frequencies and suggested class weights (median-frequency and 1/sqrt)."""
    setup_logging(verbose)
    from edgeseg.core import metrics
    from edgeseg.data import load_split
    from edgeseg.data.check import pixel_counts

    check_output_file(json_out, "--json")
    fmt = _format(path, format)
    if fmt == "tfrecord":
        usage("data stats reads label files; run it on the dataset the TFRecords were written from")
    data = load_split(path, fmt, split)
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
        write_json_atomic(json_out, ({
            "split": split, "classes": list(data.info.class_names), "pixels": counts.tolist(),
            "share": freq.tolist(), "median_freq": median.tolist(), "inverse_sqrt": inv.tolist(),
        }))


@app.command()
@handle_errors
def tfrecords(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the shards: new, empty, or earlier shards of the same dataset.")],
    format: Annotated[Optional[Format], FORMAT] = None,
    splits: Annotated[Optional[list[str]], SPLITS] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Examples per shard.")] = 256,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """Write sharded TFRecords (labels as train ids) for large datasets; train with --format tfrecord."""
    setup_logging(verbose)
    from edgeseg.data import check_tfrecord_target, load_split

    fmt = _format(path, format)
    if fmt == "tfrecord":
        usage(f"{path} already holds TFRecords; give the image/label dataset they come from")
    if out.resolve() == path.resolve():
        usage("--out must be another folder than the dataset")
    datasets = [load_split(path, fmt, split) for split in splits or ["train", "val"]]
    check_tfrecord_target(out, datasets[0].info.name)
    from edgeseg.data.preflight import check_before_training

    check_before_training(datasets)  # shards hold train ids: what cannot be mapped is refused now
    from edgeseg.data.pipeline import write_tfrecords

    for data in datasets:
        split = data.split
        with _progress() as progress:
            task = progress.add_task(f"writing {split}", total=len(data.items))
            files = write_tfrecords(data, out, shard_size, progress=lambda: progress.advance(task))
        typer.echo(f"{split}: {len(data.items)} examples in {len(files)} shard(s) under {out}")


@app.command()
@handle_errors
def synth(
    out: Annotated[Optional[Path], typer.Argument(help="Output folder: new, empty, or an earlier synthetic set (default: the cache used when train has no --data).")] = None,
    train: Annotated[int, typer.Option(min=1, help="Training images.")] = 240,
    val: Annotated[int, typer.Option(min=1, help="Validation images.")] = 60,
    size: Annotated[str, typer.Option(help="Image size HxW (height x width).")] = "96x128",
    seed: Annotated[int, typer.Option()] = 0,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """Generate the synthetic road-scene dataset (the embedded default)."""
    setup_logging(verbose)
    from edgeseg.core.geometry import parse_size
    from edgeseg.data import synthetic

    root = synthetic.generate(out or synthetic.default_root(), {"train": train, "val": val},
                              parse_size(size, "--size"), seed)
    typer.echo(f"synthetic dataset ({train} train / {val} val, {size}) in {root}")


@app.command("to-cvat")
@handle_errors
def to_cvat(
    collection: Annotated[Path, typer.Argument(help="A folder from `edgeseg run --collect`.")],
    out: Annotated[Path, typer.Argument(help="The zip to write (CVAT: Actions > Upload annotations > Segmentation mask 1.1).")],
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """The collection's draft masks as a CVAT "Segmentation mask 1.1" zip, to fix in CVAT.

    Make a CVAT task of COLLECTION/train/images, upload this zip as its annotations, fix the
    masks, export the task as "Segmentation mask 1.1" and bring it back with `edgeseg data from-cvat`.
    """
    setup_logging(verbose)
    from edgeseg.data.cvat import export_cvat

    check_output_file(out, "OUT")
    if out.exists() and not force:
        fail(f"{out} exists; pass --force to replace it")
    n = export_cvat(collection, out)
    typer.echo(f"{n} masks in {out}")


@app.command("from-cvat")
@handle_errors
def from_cvat(
    archive: Annotated[Path, typer.Argument(help="A task exported from CVAT as \"Segmentation mask 1.1\" (zip).")],
    collection: Annotated[Path, typer.Argument(help="The collection the task was made of.")],
    force: Annotated[bool, typer.Option("--force", help="Also replace labels imported before.")] = False,
    verbose: Annotated[bool, VERBOSE] = False,
):
    """Put labels fixed in CVAT into the collection (each replaced draft is kept in drafts/)."""
    setup_logging(verbose)
    from edgeseg.data.cvat import import_cvat

    n = import_cvat(archive, collection, force=force)
    typer.echo(f"{n} labels imported into {collection}; next: edgeseg train --init RUN --data {collection}")
