"""`edgeseg run` and `edgeseg benchmark`: the device runtime. Imports no TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, choices, fail, handle_errors, setup_logging, usage
from edgeseg.runtime.model.backend import is_onnx
from edgeseg.runtime.model.segmenter import UPSAMPLE_MODES

log = logging.getLogger("edgeseg")
Upsample = choices("Upsample", UPSAMPLE_MODES)


def _providers(text: str | None) -> list[str] | None:
    return [p.strip().lower() for p in text.split(",") if p.strip()] if text else None


def _segmenter(model: Path, threads: int, delegate: str | None, strict: bool, input_size: str | None,
               classes: Optional[Path], upsample: str = "auto", providers=None, main: bool = True):
    from edgeseg.runtime.model.backend import BackendError, load_delegates
    from edgeseg.core.metadata import MetadataError, ModelMetadata
    from edgeseg.runtime.model.metadata import load_metadata
    from edgeseg.runtime.model.segmenter import Segmenter

    if not model.is_file():
        fail(f"model not found: {model}")
    try:
        meta = load_metadata(model)
    except MetadataError as e:
        fail(str(e))
    if meta is None:
        if not (input_size and classes):
            fail(f"{model} has no edgeseg metadata; pass --input-size HxW and --classes FILE")
        from edgeseg.core.geometry import parse_size
        from edgeseg.core.labels import read_classes

        names, colors = read_classes(classes)
        meta = ModelMetadata(class_names=list(names), colors=[list(c) for c in colors],
                             input_size=list(parse_size(input_size, "--input-size")))
    elif input_size or classes:
        usage(f"{model} carries its own input size and classes; --input-size and --classes are for models without metadata")
    if delegate and is_onnx(model):
        usage("--delegate is for .tflite models; ONNX models take --providers")
    try:
        seg = Segmenter(model, threads, meta, load_delegates(delegate, strict), upsample=upsample, providers=providers)
    except (BackendError, MetadataError) as e:
        fail(str(e))
    log.info("%s on %s", model.name, seg.backend.description)
    if providers is None and main:
        _say_if_a_jetson_gpu_sits_idle(seg.backend)
    return seg


def _say_if_a_jetson_gpu_sits_idle(backend) -> None:
    """On a Jetson, an ONNX model that ONNX Runtime can only run on the CPU: one line on how to
    get the GPU (PyPI's aarch64 onnxruntime has no GPU provider)."""
    from edgeseg.runtime.sources.board import detect_board

    if getattr(backend, "provider", None) == "CPUExecutionProvider" and detect_board().kind == "jetson":
        from edgeseg.runtime.model.tensorrt_backend import JETSON_GPU_HELP

        log.warning("%s runs on the Jetson's CPU: this ONNX Runtime has no GPU provider; %s",
                    backend.path.name, JETSON_GPU_HELP)


def _check_outputs(save: Path | None, save_masks: Path | None, stats_json: Path | None) -> None:
    """Every output path is usable before the model runs (not after the first frame)."""
    from edgeseg.core.files import check_output_file, check_writable_dir
    from edgeseg.runtime.run.outputs import VideoSink

    check_output_file(save, "--save")
    check_output_file(stats_json, "--stats-json")
    if save is not None:
        try:
            VideoSink.check(save)
        except OSError as e:
            fail(f"--save: {e}")
    if save_masks is not None:
        check_writable_dir(save_masks, "--save-masks")


SOURCE = "Source"
COLLECT = "Collect frames to label (--collect DIR)"
PREVIEW_FPS = 15.0  # --serve sends at most this many overlays a second; masks and stats keep every frame


def _save_fps(source: str | None, live: bool) -> float | None:
    """The rate of a --save video: a video file's own, 15 for images (they have none), None
    (measured as frames are segmented) for cameras and streams."""
    from edgeseg.runtime.run.outputs import VideoSink
    from edgeseg.runtime.sources.files import video_fps

    if live:
        return None
    return video_fps(source) or VideoSink.DEFAULT_FPS


def _wxh(text: str) -> tuple[int, int]:
    """--camera-size is width x height, as cameras are described (--input-size is HxW)."""
    from edgeseg.core.geometry import parse_size

    w, h = parse_size(text, "--camera-size")
    return w, h


def _check_source_options(camera, source, camera_size, camera_fps, camera_mjpg, loop, give_up_after) -> bool:
    """Source options that do not go together, refused before anything opens; whether the
    source is live (a camera, a stream, a GStreamer pipeline)."""
    if (camera is None) == (source is None):
        usage("give one of --camera N or --source FILE|URL|DIR|GLOB")
    live = camera is not None or "://" in (source or "") or (source or "").startswith("gst:")
    if (camera_size or camera_fps or camera_mjpg) and not live:
        usage("--camera-size, --camera-fps and --camera-mjpg apply to cameras and GStreamer sources")
    if camera_mjpg and (camera is None or not camera.replace("/dev/video", "").isdigit()):
        usage("--camera-mjpg applies to USB (V4L2) cameras")
    if loop and live:
        usage("--loop replays a file or folder; a camera or stream goes on by itself")
    if give_up_after is not None and not live:
        usage("--give-up-after applies to cameras and network streams; a file or folder ends by itself")
    return live


@handle_errors
def run(
    model: Annotated[Path, typer.Argument(help="Exported .tflite or .onnx model.")],
    camera: Annotated[Optional[str], typer.Option(help="0 or /dev/videoN (USB, V4L2), or csi[:N] (Pi: Picamera2 / rpicam-vid; Jetson: Argus). On a Pi or Jetson without a USB camera, 0 means the CSI camera.", rich_help_panel=SOURCE)] = None,
    source: Annotated[Optional[str], typer.Option(help="Video file, rtsp:// or http:// URL, image folder or glob, csi://N, or gst:PIPELINE (any GStreamer pipeline).", rich_help_panel=SOURCE)] = None,
    camera_size: Annotated[Optional[str], typer.Option(help="Camera frame size WxH (default: the camera's; CSI and GStreamer 1280x720 / 640x480).", rich_help_panel=SOURCE)] = None,
    camera_fps: Annotated[Optional[float], typer.Option(min=1, help="Camera frame rate.", rich_help_panel=SOURCE)] = None,
    camera_mjpg: Annotated[bool, typer.Option("--camera-mjpg", help="Ask a USB camera for MJPG (many need it for full frame rate at 720p and up).", rich_help_panel=SOURCE)] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Play a file or folder source again and again, until stopped.")] = False,
    give_up_after: Annotated[Optional[float], typer.Option(min=0.1, help="Stop when a live source gives no frame for this many seconds (default: keep reconnecting).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Interpreter threads.")] = 4,
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so")] = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of falling back to the CPU when the delegate cannot load.")] = False,
    providers: Annotated[Optional[str], typer.Option(help="ONNX Runtime providers for .onnx models, in order: tensorrt,cuda,cpu \\[default: those installed]; or trt alone: TensorRT's own Python bindings (JetPack), without ONNX Runtime.")] = None,
    show: Annotated[bool, typer.Option(help="Show a window (needs a display and a GUI build of OpenCV).")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the overlay video (.mp4).")] = None,
    save_masks: Annotated[Optional[Path], typer.Option(help="Write each label map as PNG into this folder.")] = None,
    serve: Annotated[Optional[str], typer.Option(help="Stream the overlay as MJPEG at [HOST:]PORT (default host 127.0.0.1; another host needs the printed access token).")] = None,
    serve_token: Annotated[Optional[str], typer.Option(help="Access token for --serve (default: generated for non-loopback hosts).")] = None,
    serve_clients: Annotated[int, typer.Option(min=1, help="Concurrent --serve viewers.")] = 4,
    compare: Annotated[Optional[Path], typer.Option(help="Float model (.tflite or .onnx) to compare the predictions with.")] = None,
    compare_every: Annotated[Optional[int], typer.Option(min=1, help="Run the --compare model on every Nth frame \\[default: 10].")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="Folder of label PNGs named like the frames: true mIoU.")] = None,
    upsample: Annotated[Upsample, typer.Option(help="auto: bilinear logits then argmax (as evaluated) at the resolution the model saw, nearest to larger frames; exact: at the frame's full resolution; fast: argmax at stride 4, nearest labels.")] = Upsample.auto,
    post_threads: Annotated[Optional[int], typer.Option(min=1, help="Threads that upsample and argmax consecutive frames side by side \\[default: one per core, at most 4, when an accelerator runs the whole model and outputs logits; else 1].")] = None,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after N frames.")] = None,
    stats_json: Annotated[Optional[Path], typer.Option(help="Write the run summary as JSON.")] = None,
    collect: Annotated[Optional[Path], typer.Option(help="Keep the frames the model is unsure of, with its masks as draft labels, in this folder (a dataset `edgeseg train --init` fine-tunes on).", rich_help_panel=COLLECT)] = None,
    collect_when: Annotated[Optional[str], typer.Option(help="uncertain (the margin between the two likeliest classes), disagree (with --compare, on the frames it runs on) or every:N \\[default: uncertain].", rich_help_panel=COLLECT)] = None,
    collect_threshold: Annotated[Optional[float], typer.Option(min=0, help="Keep every frame scoring at least this (0-1) instead of the best of each window.", rich_help_panel=COLLECT)] = None,
    collect_top: Annotated[Optional[int], typer.Option(min=1, help="Keep the K best frames of each window \\[default: 1].", rich_help_panel=COLLECT)] = None,
    collect_window: Annotated[Optional[int], typer.Option(min=1, help="Window length in frames \\[default: 300].", rich_help_panel=COLLECT)] = None,
    collect_gap: Annotated[Optional[float], typer.Option(min=0, help="Seconds between kept frames, at least \\[default: 2].", rich_help_panel=COLLECT)] = None,
    collect_dedup: Annotated[Optional[float], typer.Option(min=0, help="Skip a frame whose grey thumbnail differs from a recently kept one by less than this (0-255; 0: keep them) \\[default: 4].", rich_help_panel=COLLECT)] = None,
    collect_max: Annotated[Optional[int], typer.Option(min=1, help="The folder holds at most N frames \\[default: 500].", rich_help_panel=COLLECT)] = None,
    input_size: Annotated[Optional[str], typer.Option(help="HxW, for a model without metadata.")] = None,
    classes: Annotated[Optional[Path], typer.Option(help="classes.txt, for a model without metadata.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Segment a camera or video stream on the device: overlay, FPS, latency per stage, and the
    int8 model's agreement with the float one.

    [bold]Examples[/bold]

      edgeseg run model_int8.tflite --camera 0 --show
      edgeseg run model_int8.tflite --camera csi --serve 0.0.0.0:8080    # Pi / Jetson CSI camera
      edgeseg run model_int8.tflite --source video.mp4 --save out.mp4 --compare model_fp32.tflite
      edgeseg run model_int8.tflite --source frames/ --labels labels/ --compare model_fp32.tflite
      edgeseg run model_int8.tflite --camera 0 --collect site-frames/   # then label, train --init
    """
    setup_logging(verbose)
    from edgeseg.runtime.model.backend import load_delegates
    from edgeseg.runtime.run.scores import LabelLookup
    from edgeseg.runtime.run.loop import RunOptions, default_post_threads, run_stream
    from edgeseg.runtime.sources.frame import SourceError
    from edgeseg.runtime.run.signals import RunSignals
    from edgeseg.runtime.sources.files import open_source

    live = _check_source_options(camera, source, camera_size, camera_fps, camera_mjpg, loop, give_up_after)
    from edgeseg.runtime.sources.cameras import CameraSettings

    settings = CameraSettings(_wxh(camera_size) if camera_size else None, camera_fps, camera_mjpg)
    if compare_every is not None and compare is None:
        usage("--compare-every needs --compare MODEL")
    if serve_token is not None and serve is None:
        usage("--serve-token needs --serve")
    from edgeseg.runtime.run.collect_options import CollectTarget

    collect_target = CollectTarget.from_options(collect, live, compare is not None, when=collect_when,
                                                threshold=collect_threshold, top=collect_top, window=collect_window,
                                                gap=collect_gap, dedup=collect_dedup, max_frames=collect_max)
    if labels is not None and not labels.is_dir():
        fail(f"--labels: folder not found: {labels}")
    address = None
    if serve:
        from edgeseg.runtime.serve.server import parse_address

        try:
            address = parse_address(serve)
        except ValueError as e:
            usage(str(e))
    _check_outputs(save, save_masks, stats_json)
    # installed now: a SIGHUP or SIGTERM while the model loads (a TensorRT build takes minutes) is
    # taken at the first frame instead of killing the process; uninstalled when the process ends
    signals = RunSignals().__enter__()
    try:  # the source first: a missing camera is the likeliest mistake, and cheap to find
        frames, reader = open_source(camera, source, loop=loop, give_up_after=give_up_after, settings=settings,
                                     stopping=signals.stopping)
    except SourceError as e:
        fail(str(e))
    server = None
    try:
        seg = _segmenter(model, threads, delegate, strict, input_size, classes, upsample.value, _providers(providers))
        float_seg = _segmenter(compare, threads, None, False, input_size, classes,
                               providers=_providers(providers) if is_onnx(compare) else None, main=False) if compare else None
        if float_seg is not None:
            from edgeseg.runtime.model.scoring import describe_classes, same_classes

            if not same_classes(seg.meta.class_names, float_seg.meta.class_names):
                fail(f"--compare {compare.name} has other classes than {model.name}: "
                     f"{describe_classes(float_seg.meta.class_names)} vs {describe_classes(seg.meta.class_names)}")
        if address:
            from edgeseg.runtime.serve.server import MJPEGServer

            try:
                server = MJPEGServer(*address, token=serve_token, max_clients=serve_clients, max_fps=PREVIEW_FPS)
            except OSError as e:
                fail(f"--serve {serve}: {e.strerror or e}")
            for url in server.urls:
                typer.echo(f"serving {url}", err=True)
        lookup = LabelLookup(labels, seg.meta.label_map()) if labels else None
        options = RunOptions(show=show, save=save, save_masks=save_masks, stats_json=stats_json,
                             compare_every=compare_every or 10, max_frames=max_frames,
                             save_fps=_save_fps(source, live) if save else None,
                             serve=server, signals=signals, collect=collect_target,
                             reload=lambda running: running.reopen(load_delegates(delegate, strict)),
                             post_threads=post_threads or default_post_threads(seg),
                             echo=lambda line: typer.echo(line, err=True))
        summary = run_stream(seg, frames, options, reader, float_seg, lookup)
    finally:
        if server:
            server.close()
        if reader is not None:
            reader.stop()
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    typer.echo(f"{s['frames']} frames in {s['seconds']:.1f}s: {s['fps']:.1f} FPS end to end")
    for stage, v in s["stages"].items():
        typer.echo(f"  {stage:<12} p50 {v['p50_ms']:7.1f} ms   p95 {v['p95_ms']:7.1f} ms")
    if "dropped_frames" in s:
        typer.echo(f"  dropped frames {s['dropped_frames']}, reconnects {s['reconnects']}")
    if "collect" in s:
        c = s["collect"]
        skipped = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in c["skipped"].items() if n)
        typer.echo(f"collected {c['saved']} frames into {c['folder']} ({c['held']} there)"
                   + (f"; skipped {skipped}" if skipped else ""))
    for kind, count in s.get("warnings", {}).items():
        typer.echo(f"  warning: {kind.replace('_', ' ')}: {count}")
    if "miou" in s:
        typer.echo(f"mIoU on {s['labelled_frames']} labelled frames: {s['miou']:.4f}")
    c = s.get("compare")
    if c:
        typer.echo(f"agreement with the float model ({c['frames']} frames): mIoU {c['agreement_miou']:.4f}")
        if "drop_points" in c:
            typer.echo(f"labelled: {s['precision']} {c['miou']:.4f} vs float {c['float_miou']:.4f}: "
                       f"drop {c['drop_points']:.2f} points")


def _thread_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        usage(f"--threads takes comma-separated counts >= 1 (e.g. 1,2,4), got {text!r}")
    return counts


@handle_errors
def benchmark(
    models: Annotated[list[Path], typer.Argument(help=".tflite and/or .onnx models.")],
    threads: Annotated[str, typer.Option(help="Comma-separated thread counts.")] = "1,2,4",
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so (.tflite models)")] = None,
    providers: Annotated[Optional[str], typer.Option(help="ONNX Runtime providers for .onnx models: tensorrt,cuda,cpu; or trt (TensorRT's bindings).")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed invokes per model and thread count.")] = 20,
    warmup: Annotated[int, typer.Option(min=0)] = 3,
    json_out: Annotated[Optional[Path], typer.Option("--json")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Inference latency (invoke only) across models and thread counts: median and p95."""
    setup_logging(verbose)
    from edgeseg.core.files import check_output_file
    from edgeseg.runtime.model.backend import BackendError, load_delegates
    from edgeseg.runtime.model.benchmark import benchmark_models

    counts = _thread_counts(threads)
    missing = [m for m in models if not m.is_file()]
    if missing:
        fail(f"model not found: {missing[0]}")
    check_output_file(json_out, "--json")
    delegates = load_delegates(delegate)
    try:
        rows = benchmark_models(models, counts, delegates, runs, warmup, _providers(providers))
    except BackendError as e:
        fail(str(e))
    typer.echo(f"{'model':<34} {'backend':<40} {'threads':>7} {'median ms':>10} {'p95 ms':>8}")
    for r in rows:
        typer.echo(f"{Path(r['model']).name[:34]:<34} {r['backend'][:40]:<40} {r['threads']:>7} "
                   f"{r['median_ms']:>10.1f} {r['p95_ms']:>8.1f}")
    if json_out:
        from edgeseg.core.files import write_json_atomic

        write_json_atomic(json_out, rows)
