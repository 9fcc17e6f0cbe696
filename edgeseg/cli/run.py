"""`edgeseg run`: the device runtime. Imports no TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, choices, fail, handle_errors, model_file_problem, provider_list, setup_logging, usage
from edgeseg.cli.run_options import check_outputs, check_source_options, save_fps, wxh
from edgeseg.runtime.model.backend import is_onnx
from edgeseg.runtime.model.segmenter import UPSAMPLE_MODES
from edgeseg.runtime.run.scores import label_score_line

log = logging.getLogger("edgeseg")
Upsample = choices("Upsample", UPSAMPLE_MODES)


def _segmenter(model: Path, threads: int, delegate: str | None, strict: bool, input_size: str | None,
               classes: Optional[Path], upsample: str = "auto", providers=None, main: bool = True):
    from edgeseg.runtime.model.backend import BackendError, load_delegates
    from edgeseg.core.metadata import MetadataError, ModelMetadata
    from edgeseg.runtime.model.metadata import load_metadata
    from edgeseg.runtime.model.segmenter import Segmenter

    problem = model_file_problem(model)
    if problem:
        fail(problem)
    try:
        meta = load_metadata(model)
    except MetadataError as e:
        fail(str(e))
    if meta is None:
        if not (input_size and classes):
            fail(f"{model} has no edgeseg metadata; pass --input-size HxW and --classes FILE")
        from edgeseg.core.geometry import parse_size
        from edgeseg.core.labels import read_class_file

        meta = ModelMetadata.for_classes(read_class_file(classes), parse_size(input_size, "--input-size"))
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


def _sensor_metadata(model: Path, delegate, providers, input_size, classes):
    """For a network that runs on the AI Camera (``.rpk``): its edgeseg.json; None for any other
    model file."""
    if model.suffix.lower() != ".rpk":
        return None
    from edgeseg.core.metadata import MetadataError
    from edgeseg.runtime.model.imx500 import read_sensor_metadata

    if delegate or providers or input_size or classes:
        usage(f"{model.name} runs on the AI Camera with its edgeseg.json: --delegate, --providers, --input-size "
              "and --classes do not apply")
    if not model.is_file():
        fail(f"model not found: {model}")
    try:
        return read_sensor_metadata(model)
    except MetadataError as e:
        fail(str(e))


def _say_if_a_jetson_gpu_sits_idle(backend) -> None:
    """On a Jetson, an ONNX model that ONNX Runtime can only run on the CPU: one line on how to
    get the GPU (PyPI's aarch64 onnxruntime has no GPU provider)."""
    from edgeseg.runtime.sources.board import detect_board

    if getattr(backend, "provider", None) == "CPUExecutionProvider" and detect_board().kind == "jetson":
        from edgeseg.runtime.model.tensorrt_backend import JETSON_GPU_HELP

        log.warning("%s runs on the Jetson's CPU: this ONNX Runtime has no GPU provider; %s",
                    backend.path.name, JETSON_GPU_HELP)


SOURCE = "Source"
COLLECT = "Collect frames to label (--collect DIR)"
PREVIEW_FPS = 15.0  # --serve sends at most this many overlays a second; masks and stats keep every frame


@handle_errors
def run(
    model: Annotated[Path, typer.Argument(help="Exported .tflite or .onnx model, or network.rpk (the Raspberry Pi AI Camera, with the edgeseg.json of its export beside it; --camera csi).")],
    camera: Annotated[Optional[str], typer.Option(help="0 or /dev/videoN (USB, V4L2), or csi[:N] (Pi: Picamera2 / rpicam-vid; Jetson: Argus). On a Pi or Jetson without a USB camera, 0 means the CSI camera.", rich_help_panel=SOURCE)] = None,
    source: Annotated[Optional[str], typer.Option(help="Video file, rtsp:// or http:// URL, image folder or glob, csi://N, or gst:PIPELINE (any GStreamer pipeline).", rich_help_panel=SOURCE)] = None,
    camera_size: Annotated[Optional[str], typer.Option(help="Camera frame size WxH (width x height, as cameras are sold; --input-size is HxW) (default: the camera's; CSI and GStreamer 1280x720 / 640x480).", rich_help_panel=SOURCE)] = None,
    camera_fps: Annotated[Optional[float], typer.Option(min=1, help="Camera frame rate.", rich_help_panel=SOURCE)] = None,
    camera_mjpg: Annotated[bool, typer.Option("--camera-mjpg", help="Ask a USB camera for MJPG (many need it for full frame rate at 720p and up).", rich_help_panel=SOURCE)] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Play a file or folder source again and again, until stopped.")] = False,
    give_up_after: Annotated[Optional[float], typer.Option(min=0.1, help="Stop when a live source gives no frame for this many seconds (default: keep reconnecting).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Interpreter threads.")] = 4,
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so")] = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of falling back to the CPU when the delegate cannot load.")] = False,
    providers: Annotated[Optional[str], typer.Option(help="ONNX Runtime providers for .onnx models, in order: tensorrt,cuda,cpu \\[default: those installed]; or trt alone: TensorRT's own Python bindings (JetPack), without ONNX Runtime.")] = None,
    show: Annotated[bool, typer.Option(help="Show a window (needs a display and a GUI build of OpenCV).")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the overlay video: out.mp4 is written as out-000001.mp4, out-000002.mp4, ... one file every --save-segment seconds (a power cut loses at most the file in progress).")] = None,
    save_segment: Annotated[Optional[float], typer.Option(min=0, help="Seconds of the run in each --save file; 0: one file, named as given and renamed when the run ends (a power cut loses all of it) \\[default: 10].")] = None,
    save_masks: Annotated[Optional[Path], typer.Option(help="Write each label map as PNG into this folder.")] = None,
    serve: Annotated[Optional[str], typer.Option(help="Stream the overlay as MJPEG at [HOST:]PORT (default host 127.0.0.1; another host needs the printed access token).")] = None,
    serve_token: Annotated[Optional[str], typer.Option(help="Access token for --serve (default: generated for non-loopback hosts).")] = None,
    serve_clients: Annotated[int, typer.Option(min=1, help="Concurrent --serve viewers.")] = 4,
    compare: Annotated[Optional[Path], typer.Option(help="Float model (.tflite or .onnx) to compare the predictions with.")] = None,
    compare_every: Annotated[Optional[int], typer.Option(min=1, help="Run the --compare model on every Nth frame \\[default: 10].")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="Folder of label PNGs named like the frames (frame 00001.jpg: 00001.png): true mIoU. Each is checked first; one that does not decode, is of another size, has colour channels or ids the model does not have is said once, counted and not scored.")] = None,
    upsample: Annotated[Upsample, typer.Option(help="auto: bilinear logits then argmax (as evaluated) at the resolution the model saw, nearest to larger frames; exact: at the frame's full resolution; fast: argmax at stride 4, nearest labels.")] = Upsample.auto,
    post_threads: Annotated[Optional[int], typer.Option(min=1, help="Threads that upsample and argmax consecutive frames side by side \\[default: one per core beyond two, at most 4, when an accelerator runs the whole model and outputs logits; else 1].")] = None,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after N frames.")] = None,
    stats_json: Annotated[Optional[Path], typer.Option(help="Write the run summary as JSON: at the end, and every --stats-every seconds while it runs.")] = None,
    stats_every: Annotated[Optional[float], typer.Option(min=0.1, help="Seconds between the --stats-json snapshots written during the run \\[default: 10].")] = None,
    collect: Annotated[Optional[Path], typer.Option(help="Keep the frames the model is unsure of, with its masks as draft labels, in this folder (a dataset `edgeseg train --init` fine-tunes on).", rich_help_panel=COLLECT)] = None,
    collect_when: Annotated[Optional[str], typer.Option(help="uncertain (the margin between the two likeliest classes), disagree (with --compare, on the frames it runs on) or every:N \\[default: uncertain].", rich_help_panel=COLLECT)] = None,
    collect_threshold: Annotated[Optional[float], typer.Option(min=0, help="Keep every frame scoring at least this (0-1) instead of the best of each window.", rich_help_panel=COLLECT)] = None,
    collect_top: Annotated[Optional[int], typer.Option(min=1, help="Keep the K best frames of each window \\[default: 1].", rich_help_panel=COLLECT)] = None,
    collect_window: Annotated[Optional[int], typer.Option(min=1, help="Window length in frames \\[default: 300].", rich_help_panel=COLLECT)] = None,
    collect_gap: Annotated[Optional[float], typer.Option(min=0, help="Seconds between kept frames, at least \\[default: 2].", rich_help_panel=COLLECT)] = None,
    collect_dedup: Annotated[Optional[float], typer.Option(min=0, help="Skip a frame whose grey thumbnail differs from a recently kept one by less than this (0-255; 0: keep them) \\[default: 4].", rich_help_panel=COLLECT)] = None,
    collect_max: Annotated[Optional[int], typer.Option(min=1, help="The folder holds at most N frames \\[default: 500].", rich_help_panel=COLLECT)] = None,
    input_size: Annotated[Optional[str], typer.Option(help="HxW (height x width), for a model without metadata.")] = None,
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
      edgeseg run imx/network.rpk --camera csi --compare model_fp32.tflite --serve 0.0.0.0:8080   # AI Camera
    """
    setup_logging(verbose)
    from edgeseg.runtime.model.backend import load_delegates
    from edgeseg.runtime.run.scores import LabelLookup
    from edgeseg.runtime.run.loop import STATS_EVERY, RunOptions, run_stream
    from edgeseg.runtime.run.workers import default_post_threads
    from edgeseg.runtime.run.recording import SEGMENT_SECONDS
    from edgeseg.runtime.sources.frame import SourceCounts, SourceError
    from edgeseg.runtime.run.signals import RunSignals
    from edgeseg.runtime.sources.files import open_source

    live = check_source_options(camera, source, camera_size, camera_fps, camera_mjpg, loop, give_up_after)
    from edgeseg.runtime.sources.cameras import CameraSettings

    settings = CameraSettings(wxh(camera_size) if camera_size else None, camera_fps, camera_mjpg)
    if compare_every is not None and compare is None:
        usage("--compare-every needs --compare MODEL")
    if serve_token is not None and serve is None:
        usage("--serve-token needs --serve")
    if save_segment is not None and save is None:
        usage("--save-segment needs --save")
    if stats_every is not None and stats_json is None:
        usage("--stats-every needs --stats-json")
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
    check_outputs(save, save_masks, stats_json, collect)
    # installed now: a SIGHUP or SIGTERM while the model loads (a TensorRT build takes minutes) is
    # taken at the first frame instead of killing the process; uninstalled when the process ends
    signals = RunSignals().__enter__()
    sensor = _sensor_metadata(model, delegate, providers, input_size, classes)
    counts = None if live else SourceCounts()
    try:  # the source first: a missing camera or file is the likeliest mistake, and cheap to find
        if sensor is not None:
            from edgeseg.runtime.sources.imx500 import open_imx500_source

            frames, reader = open_imx500_source(model, camera, source, settings, sensor.input_size, give_up_after,
                                                signals.stopping)
        else:
            frames, reader = open_source(camera, source, loop=loop, give_up_after=give_up_after, settings=settings,
                                         stopping=signals.stopping, counts=counts)
    except SourceError as e:
        fail(str(e))
    server = None
    try:
        if sensor is not None:
            from edgeseg.runtime.model.imx500 import Imx500Segmenter

            seg = Imx500Segmenter(model, sensor, upsample.value)
        else:
            seg = _segmenter(model, threads, delegate, strict, input_size, classes, upsample.value,
                             provider_list(providers))
        float_seg = _segmenter(compare, threads, None, False, input_size, classes,
                               providers=provider_list(providers) if is_onnx(compare) else None, main=False) if compare else None
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
        lookup = LabelLookup(labels, seg.meta.label_map(), seg.meta.num_classes) if labels else None
        options = RunOptions(show=show, save=save, save_masks=save_masks, stats_json=stats_json,
                             compare_every=compare_every or 10, max_frames=max_frames,
                             save_fps=save_fps(source, live) if save else None,
                             save_segment=SEGMENT_SECONDS if save_segment is None else save_segment or None,
                             stats_every=stats_every or STATS_EVERY, source_counts=counts,
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
    if reader is not None and reader.gave_up and not reader.read_count:
        fail(f"no frame from {reader.name} in {give_up_after:g} s (--give-up-after): it never opened")
    if summary.get("not_written"):
        fail(next(iter(summary["not_written"].values())))


def _print_summary(s: dict) -> None:
    typer.echo(f"{s['frames']} frames in {s['seconds']:.1f}s: {s['fps']:.1f} FPS end to end")
    for stage, v in s["stages"].items():
        typer.echo(f"  {stage:<12} p50 {v['p50_ms']:7.1f} ms   p95 {v['p95_ms']:7.1f} ms")
    if "dropped_frames" in s:
        typer.echo(f"  dropped frames {s['dropped_frames']}, reconnects {s['reconnects']} "
                   f"({s['reconnected']} succeeded)")
    if s.get("unreadable_frames"):
        typer.echo(f"  skipped {s['unreadable_frames']} unreadable frames")
    if "video" in s:
        v = s["video"]
        kept = f"{v['files']} files, {v['first']} .. {Path(v['last']).name}" if v["files"] > 1 else \
            v.get("first", "no file")
        typer.echo(f"video: {v['frames']} frames in {kept}"
                   + (f"; {v['not_written']} not written" if v.get("not_written") else ""))
    if "collect" in s:
        c = s["collect"]
        skipped = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in c["skipped"].items() if n)
        typer.echo(f"collected {c['saved']} frames into {c['folder']} ({c['held']} there)"
                   + (f"; skipped {skipped}" if skipped else ""))
    for kind, count in s.get("warnings", {}).items():
        typer.echo(f"  warning: {kind.replace('_', ' ')}: {count}")
    if "labelled_frames" in s:
        typer.echo(label_score_line(s))
    c = s.get("compare")
    if c:
        typer.echo(f"agreement with the float model ({c['frames']} frames): mIoU {c['agreement_miou']:.4f}")
        if "drop_points" in c:
            typer.echo(f"labelled: {s['precision']} {c['miou']:.4f} vs float {c['float_miou']:.4f}: "
                       f"drop {c['drop_points']:.2f} points")
