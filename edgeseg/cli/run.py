"""`edgeseg run` and `edgeseg benchmark`: the device runtime. Imports no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import fail, handle_errors, setup_logging


def _segmenter(model: Path, threads: int, delegate: str | None, strict: bool, input_size: str | None,
               classes: Optional[Path], upsample: str = "exact"):
    from edgeseg.runtime.backend import BackendError, load_delegates
    from edgeseg.runtime.metadata import MetadataError, ModelMetadata, load_metadata
    from edgeseg.runtime.segmenter import Segmenter

    if not model.is_file():
        fail(f"model not found: {model}")
    try:
        meta = load_metadata(model)
    except MetadataError as e:
        fail(f"{model}: {e}")
    if meta is None:
        if not (input_size and classes):
            fail(f"{model} has no edgeseg metadata; pass --input-size HxW and --classes FILE")
        from edgeseg.config import parse_size
        from edgeseg.data.folder import read_classes

        names, colors = read_classes(classes)
        meta = ModelMetadata(class_names=list(names), colors=[list(c) for c in colors],
                             input_size=list(parse_size(input_size, "--input-size")))
    try:
        return Segmenter(model, threads, meta, load_delegates(delegate, strict), upsample=upsample)
    except BackendError as e:
        fail(str(e))


@handle_errors
def run(
    model: Annotated[Path, typer.Argument(help="Exported .tflite model.")],
    camera: Annotated[Optional[int], typer.Option(help="Camera index (V4L2 /dev/videoN).")] = None,
    source: Annotated[Optional[str], typer.Option(help="Video file, rtsp:// or http:// URL, image folder or glob.")] = None,
    threads: Annotated[int, typer.Option(help="Interpreter threads.")] = 4,
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so")] = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of falling back to the CPU when the delegate cannot load.")] = False,
    show: Annotated[bool, typer.Option(help="Show a window (needs a display and a GUI build of OpenCV).")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the overlay video (.mp4).")] = None,
    save_masks: Annotated[Optional[Path], typer.Option(help="Write each label map as PNG into this folder.")] = None,
    serve: Annotated[Optional[str], typer.Option(help="Stream the overlay as MJPEG at HOST:PORT (default host 127.0.0.1).")] = None,
    compare: Annotated[Optional[Path], typer.Option(help="Float .tflite model to compare the predictions with.")] = None,
    compare_every: Annotated[int, typer.Option(help="Run the float model on every Nth frame.")] = 10,
    labels: Annotated[Optional[Path], typer.Option(help="Folder of label PNGs named like the frames: true mIoU.")] = None,
    upsample: Annotated[str, typer.Option(help="exact: bilinear logits then argmax (as evaluated); fast: argmax at stride 4, nearest labels.")] = "exact",
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after N frames.")] = None,
    stats_json: Annotated[Optional[Path], typer.Option(help="Write the run summary as JSON.")] = None,
    input_size: Annotated[Optional[str], typer.Option(help="HxW, for a model without metadata.")] = None,
    classes: Annotated[Optional[Path], typer.Option(help="classes.txt, for a model without metadata.")] = None,
):
    """Segment a camera or video stream on the device: overlay, FPS, latency per stage, and the
    int8 model's agreement with the float one.

    [bold]Examples[/bold]

      edgeseg run model_int8.tflite --camera 0 --show
      edgeseg run model_int8.tflite --source video.mp4 --save out.mp4 --compare model_fp32.tflite
      edgeseg run model_int8.tflite --source frames/ --labels labels/ --compare model_fp32.tflite
    """
    setup_logging()
    from edgeseg.runtime.app import LabelLookup, RunOptions, run_stream
    from edgeseg.runtime.stream import SourceError, open_source

    if camera is None and source is None:
        fail("give --camera N or --source FILE|URL|DIR|GLOB")
    if upsample not in ("exact", "fast"):
        fail(f"--upsample must be exact or fast, got {upsample!r}")
    seg = _segmenter(model, threads, delegate, strict, input_size, classes, upsample)
    float_seg = _segmenter(compare, threads, None, False, input_size, classes) if compare else None
    try:
        frames, reader = open_source(camera, source)
    except SourceError as e:
        fail(str(e))
    server = None
    if serve:
        from edgeseg.runtime.serve import MJPEGServer, parse_address

        try:
            server = MJPEGServer(*parse_address(serve))
        except (ValueError, OSError) as e:
            fail(f"--serve: {e}")
        typer.echo(f"serving http://{server.address[0]}:{server.address[1]}/", err=True)
    lookup = LabelLookup(labels, seg.meta.dataset, seg.meta.num_classes) if labels else None
    options = RunOptions(show=show, save=save, save_masks=save_masks, stats_json=stats_json,
                         compare_every=compare_every, labels=labels, max_frames=max_frames,
                         serve=server, echo=lambda line: typer.echo(line, err=True))
    try:
        summary = run_stream(seg, frames, options, reader, float_seg, lookup)
    finally:
        if server:
            server.close()
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    typer.echo(f"{s['frames']} frames in {s['seconds']:.1f}s: {s['fps']:.1f} FPS end to end")
    for stage, v in s["stages"].items():
        typer.echo(f"  {stage:<12} p50 {v['p50_ms']:7.1f} ms   p95 {v['p95_ms']:7.1f} ms")
    if "dropped_frames" in s:
        typer.echo(f"  dropped frames {s['dropped_frames']}, reconnects {s['reconnects']}")
    if "miou" in s:
        typer.echo(f"mIoU on {s['labelled_frames']} labelled frames: {s['miou']:.4f}")
    c = s.get("compare")
    if c:
        typer.echo(f"agreement with the float model ({c['frames']} frames): mIoU {c['agreement_miou']:.4f}")
        if "drop_points" in c:
            typer.echo(f"labelled: {s['precision']} {c['miou']:.4f} vs float {c['float_miou']:.4f}: "
                       f"drop {c['drop_points']:.2f} points")


@handle_errors
def benchmark(
    models: Annotated[list[Path], typer.Argument(help=".tflite models.")],
    threads: Annotated[str, typer.Option(help="Comma-separated thread counts.")] = "1,2,4",
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so")] = None,
    runs: Annotated[int, typer.Option(help="Timed invokes per model and thread count.")] = 20,
    warmup: Annotated[int, typer.Option()] = 3,
    json_out: Annotated[Optional[Path], typer.Option("--json")] = None,
):
    """Inference latency (invoke only) across models and thread counts: median and p95."""
    import time

    import numpy as np

    from edgeseg.runtime.backend import BackendError, load_delegates, make_interpreter

    rows = []
    for model in models:
        if not model.is_file():
            fail(f"model not found: {model}")
        for t in (int(v) for v in threads.split(",")):
            try:
                it = make_interpreter(model, t, load_delegates(delegate))
            except BackendError as e:
                fail(str(e))
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            for _ in range(warmup):
                it.invoke()
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                it.invoke()
                times.append(1000 * (time.perf_counter() - t0))
            rows.append({"model": str(model), "threads": t, "delegate": delegate or "xnnpack",
                         "median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))})
    typer.echo(f"{'model':<40} {'threads':>7} {'median ms':>10} {'p95 ms':>8}")
    for r in rows:
        typer.echo(f"{Path(r['model']).name[:40]:<40} {r['threads']:>7} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f}")
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2))
