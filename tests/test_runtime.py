"""The device runtime: sources, capture thread with reconnect, `edgeseg run` outputs, bad
inputs, delegates, and no TensorFlow anywhere on its import path."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, error_lines, run_edgeseg
from edgeseg.runtime.sources.frame import SourceError
from edgeseg.runtime.sources.live import LatestFrameReader
from edgeseg.runtime.sources.files import open_source


class FakeCapture:
    """A camera that delivers ``frames`` frames, then fails ``read()`` (signal lost)."""

    opened = 0

    def __init__(self, frames=5, delay=0.002):
        FakeCapture.opened += 1
        self.left, self.delay = frames, delay

    def read(self):
        time.sleep(self.delay)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((4, 6, 3), self.left % 256, np.uint8)

    def release(self):
        pass


def test_reader_reconnects_after_signal_loss():
    FakeCapture.opened = 0
    reader = LatestFrameReader(0, open_capture=lambda spec: FakeCapture(), backoff=0.01)
    try:
        got = [reader.read(timeout=2.0) for _ in range(8)]
    finally:
        reader.stop()
    assert all(f is not None for f in got)
    assert reader.reconnects >= 1 and FakeCapture.opened >= 2


class CountingCapture:
    """Frames whose pixels carry their sequence number; ``produced`` is the newest one made.
    Clearing ``running`` holds the camera inside ``read`` (no new frame until it is set)."""

    def __init__(self):
        import threading

        self.produced = -1
        self.running = threading.Event()
        self.running.set()

    def read(self):
        self.running.wait()
        time.sleep(0.001)
        self.produced += 1
        return True, np.full((2, 2, 3), self.produced % 256, np.uint8)

    def release(self):
        pass


def test_reader_keeps_only_the_latest_frame_and_counts_drops():
    """A slow consumer gets the newest frame the camera produced, not the oldest waiting one,
    and every frame it never saw is counted as dropped."""
    camera = CountingCapture()
    reader = LatestFrameReader(0, open_capture=lambda spec: camera)
    try:
        time.sleep(0.2)  # a slow consumer
        camera.running.clear()
        time.sleep(0.05)  # the last frame made has been handed over; the camera waits
        newest = camera.produced
        frame = reader.read()
        assert frame.index == newest and frame.image[0, 0, 0] == newest % 256
        assert newest > 20
        camera.running.set()
        time.sleep(0.05)
        second = reader.read()
    finally:
        camera.running.set()
        reader.stop()
    assert second.index > frame.index + 5  # the frames in between were skipped...
    assert reader.dropped >= second.index - 1  # ...and counted: all but the two read


def test_reader_gives_up_cleanly_when_the_source_stays_down():
    attempts = []

    def never(spec):
        attempts.append(spec)
        return FakeCapture(frames=1) if len(attempts) == 1 else None

    reader = LatestFrameReader("rtsp://cam", open_capture=never, backoff=0.01, max_backoff=0.02)
    try:
        assert reader.read(timeout=1.0) is not None
        t0 = time.perf_counter()
        assert reader.read(timeout=0.3) is None  # no hang
        assert time.perf_counter() - t0 < 1.0
    finally:
        reader.stop()
    assert len(attempts) > 2


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="source not found"):
        open_source(source=str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(source=str(tmp_path / "empty"))


def test_run_video_writes_overlay_masks_and_stats(exported, video, tmp_path):
    int8 = exported["files"]["int8"]["path"]
    fp32 = exported["files"]["fp32"]["path"]
    out, masks, stats = tmp_path / "out.mp4", tmp_path / "masks", tmp_path / "stats.json"
    result = run_edgeseg("run", int8, "--source", video, "--save", out, "--save-masks", masks,
                         "--stats-json", stats, "--compare", fp32, "--compare-every", "2", "--threads", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 8 and not summary["interrupted"]
    assert {"capture", "preprocess", "inference", "postprocess", "overlay"} <= set(summary["stages"])
    assert summary["compare"]["frames"] == 4 and 0 <= summary["compare"]["agreement_miou"] <= 1
    assert len(list(masks.glob("*.png"))) == 8
    assert summary["video"] == {"frames": 8, "files": 1, "first": str(tmp_path / "out-000001.mp4"),
                                "last": str(tmp_path / "out-000001.mp4"), "segment_seconds": 10.0}
    cap = cv2.VideoCapture(str(tmp_path / "out-000001.mp4"))  # the first (and only) 10 s segment
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0, abs=0.01)  # the clip's rate
    written = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        written.append(bgr)
    assert len(written) == 8 and written[0].shape == (64, 64, 3)
    source = cv2.VideoCapture(str(video))
    first = source.read()[1]
    assert np.abs(written[0].astype(int) - first.astype(int)).mean() > 5  # an overlay, not the frame copied
    assert "FPS end to end" in result.stdout


def test_run_folder_with_labels_odd_sizes_and_a_corrupt_image(exported, synth_root, tmp_path):
    frames, labels = tmp_path / "frames", tmp_path / "labels"
    frames.mkdir()
    labels.mkdir()
    for i, f in enumerate(sorted((synth_root / "val" / "images").glob("*.jpg"))):
        image = cv2.imread(str(f))
        if i == 1:  # another size: letterboxed in, mask comes back at the frame's size
            image = cv2.resize(image, (80, 48))
        cv2.imwrite(str(frames / f.name), image)
        mask = cv2.imread(str(synth_root / "val" / "masks" / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(labels / f"{f.stem}.png"), cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    (frames / "zz_corrupt.jpg").write_bytes(b"not a jpeg")
    masks = tmp_path / "masks"
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", frames, "--labels", labels,
                         "--compare", exported["files"]["fp32"]["path"], "--compare-every", "1",
                         "--save-masks", masks)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipping unreadable image" in result.stderr and "zz_corrupt" in result.stderr
    assert cv2.imread(str(masks / "00001.png"), cv2.IMREAD_UNCHANGED).shape == (48, 80)
    assert "mIoU on 4 labelled frames" in result.stdout
    assert "drop" in result.stdout


def test_bad_models_and_sources(exported, tmp_path, video):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    result = run_edgeseg("run", junk, "--source", video)
    assert result.returncode != 0 and "not a TFLite model" in error_lines(result.stderr)[0]
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", tmp_path / "nope.mp4")
    assert result.returncode != 0 and "source not found" in error_lines(result.stderr)[0]
    result = run_edgeseg("run", exported["files"]["int8"]["path"])
    assert result.returncode != 0 and "--camera N or --source" in error_lines(result.stderr)[0]


def test_model_without_metadata_needs_flags(exported, tmp_path, synth_root, video):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(exported["files"]["fp32"]["path"]).read_bytes()))
    model.metadata = [m for m in model.metadata if m.name not in (b"edgeseg", "edgeseg")]
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    result = run_edgeseg("run", bare, "--source", video)
    assert result.returncode != 0 and "no edgeseg metadata" in error_lines(result.stderr)[0]
    result = run_edgeseg("run", bare, "--source", video, "--input-size", "64x64", "--classes",
                         synth_root / "classes.txt", "--max-frames", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("3 frames")


def test_missing_delegate_falls_back_unless_strict(exported, video):
    model = exported["files"]["int8"]["path"]
    result = run_edgeseg("run", model, "--source", video, "--delegate", "/nonexistent/libdelegate.so", "--max-frames", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cannot load the /nonexistent/libdelegate.so delegate" in result.stderr and "running on the CPU" in result.stderr
    result = run_edgeseg("run", model, "--source", video, "--delegate", "/nonexistent/libdelegate.so", "--strict",
                         "--max-frames", "2")
    assert result.returncode == 1 and len(error_lines(result.stderr)) == 1
    assert "cannot load the /nonexistent/libdelegate.so delegate" in error_lines(result.stderr)[0]


def test_gpu_accelerator_without_vulkan_falls_back_in_one_line_unless_strict(exported, video):
    """No Vulkan driver (conftest points the loader at none): one line and the CPU, or one error
    with --strict. tests/boards/prove_gpu.py runs the GPU itself on Mesa's software Vulkan."""
    import re

    model = exported["files"]["int8"]["path"]
    result = run_edgeseg("run", model, "--source", video, "--delegate", "gpu", "--max-frames", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "GPU accelerator" in line]
    reason = (r"the GPU accelerator cannot run tiny_int8\.tflite: (no Vulkan loader \(libvulkan\.so\.1 is not installed: "
              r"sudo apt install libvulkan1\)|no Vulkan driver: no driver manifest \(ICD file\) in "
              r"VK_DRIVER_FILES=/nonexistent/edgeseg-test-icd\.json \(Pi OS / Debian: sudo apt install mesa-vulkan-drivers; "
              r"NVIDIA: its driver\))")
    assert len(said) == 1 and re.fullmatch(reason + r": running on the CPU \(XNNPACK\) instead", said[0]), said
    assert "INFO: [" not in result.stderr and "E0000" not in result.stderr  # LiteRT's own log stays out
    assert "tiny_int8.tflite on LiteRT (ai_edge_litert, XNNPACK CPU)" in result.stderr
    result = run_edgeseg("run", model, "--source", video, "--delegate", "gpu", "--strict", "--max-frames", "2")
    assert result.returncode == 1 and len(error_lines(result.stderr)) == 1
    assert re.fullmatch("edgeseg: error: " + reason, error_lines(result.stderr)[0]), error_lines(result.stderr)


def test_show_without_display_runs_headless(exported, video):
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", video, "--show",
                         "--max-frames", "2", env={"DISPLAY": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "running headless" in result.stderr or "GUI build of OpenCV" in result.stderr


def test_benchmark_table(exported, tmp_path):
    out = tmp_path / "bench.json"
    result = run_edgeseg("benchmark", exported["files"]["int8"]["path"], exported["files"]["fp32"]["path"],
                         "--threads", "1,2", "--runs", "3", "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and all(r["median_ms"] > 0 for r in rows)


def test_cli_and_runtime_import_no_tensorflow():
    code = ("import sys; import edgeseg.cli.main, edgeseg.runtime.run.loop, edgeseg.runtime.serve.server, "
            "edgeseg.runtime.sources.files, edgeseg.runtime.model.segmenter, edgeseg.runtime.model.scoring, "
            "edgeseg.runtime.model.imx500, edgeseg.runtime.sources.imx500; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def _resize_bilinear(x, size):
    """Reference: every channel resized (cv2 half-pixel bilinear, float)."""
    import cv2

    h, w = size
    return np.stack([cv2.resize(x[..., c].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                     for c in range(x.shape[-1])], axis=-1)


def test_int8_logits_argmax_matches_upsampled_dequantized_floats(exported, synth_root):
    from edgeseg.core.images import read_image
    from edgeseg.runtime.model.segmenter import Segmenter

    seg = Segmenter(exported["files"]["int8"]["path"])
    frame = read_image(sorted((synth_root / "val" / "images").glob("*.jpg"))[0])
    fast = Segmenter(exported["files"]["int8"]["path"], upsample="fast").predict(frame)
    exact = seg.predict(frame)
    y, _ = seg.raw_output(frame)  # dequantized float logits
    reference = _resize_bilinear(y, seg.input_size)[:64, :64].argmax(-1)
    assert np.mean(exact == reference) > 0.99
    assert np.mean(fast == exact) > 0.85 and fast.shape == exact.shape


def _logit_field(logits, frame_hw, box, stride=4):
    """Reference for the runtime's exact upsampling, from the geometry alone: the centre of frame
    pixel (i, j) lies at input position ((i + .5) * box.height / h, ...) (the frame was resized to
    box.height x box.width at the top-left), i.e. at logit position input / stride - .5 (half-pixel
    centres, as tf.image.resize); the logits are interpolated there bilinearly, edges clamped,
    by scipy, in float64."""
    from scipy.ndimage import map_coordinates

    h, w = frame_hw
    y = (np.arange(h) + 0.5) * box.height / h / stride - 0.5
    x = (np.arange(w) + 0.5) * box.width / w / stride - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    f = logits.astype(np.float64)
    return np.stack([map_coordinates(f[..., c], [yy, xx], order=1, mode="nearest") for c in range(f.shape[-1])], -1)


@pytest.mark.parametrize("frame_hw", [(64, 96), (45, 70), (128, 100), (30, 200)])
def test_bilinear_argmax_equals_full_upsampling(frame_hw):
    """The boundary-only shortcut gives the argmax of the fully interpolated logit field, at any
    letterbox scale; small integer logits make ties common."""
    from edgeseg.core.geometry import Letterbox, letterbox
    from edgeseg.runtime.model.upsample import bilinear_argmax, bilinear_argmax_x4, frame_taps

    rng = np.random.default_rng(0)
    small = rng.integers(-3, 4, (16, 24, 5)).astype(np.int8)
    small = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:16, :24]  # regions, not noise
    _, box = letterbox(np.zeros((*frame_hw, 3), np.uint8), (64, 96))
    got = bilinear_argmax(small, frame_taps(box, frame_hw, (16, 24), 4))
    full = _logit_field(small, frame_hw, box)
    top2 = np.sort(full, axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-5  # float32 rounding may break exact ties either way
    h, w = frame_hw
    assert got.shape == (h, w) and decided.mean() > 0.5
    assert np.array_equal(got[decided], full.argmax(-1)[decided])
    if box == Letterbox(1.0, h, w):  # unscaled: the same as resizing to the input and cropping
        ref = _resize_bilinear(small, (64, 96))[:h, :w].argmax(-1)
        assert np.mean(got == ref) > 0.995
        tiled = bilinear_argmax_x4(small)[:h, :w]  # the by-cell version used for unscaled frames
        assert np.array_equal(tiled[decided], full.argmax(-1)[decided])


def _logits_cases():
    """Logits the runtime's x4 post-processing must not change a pixel of: regions of small
    integers (ties everywhere), int8 and uint8 over their whole range, float at scales from 1e-3
    to 1e4, channels exactly equal, channels one ulp apart, and a frame of noise (boundaries
    everywhere)."""
    rng = np.random.default_rng(7)
    cases = []
    for i in range(70):
        h, w, c = int(rng.integers(1, 18)), int(rng.integers(1, 18)), int(rng.integers(1, 12))
        regions = rng.integers(-3, 4, (h // 2 + 1, w // 2 + 1, c))
        regions = np.repeat(np.repeat(regions, 2, axis=0), 2, axis=1)[:h, :w]
        kind = i % 7
        if kind == 0:
            y = regions.astype(np.int8)
        elif kind == 1:
            y = rng.integers(-128, 128, (h, w, c)).astype(np.int8)
        elif kind == 2:
            y = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
        elif kind == 3:
            y = (regions + rng.normal(0, 0.3, (h, w, c))).astype(np.float32) * np.float32(rng.choice([1e-3, 1, 1e4]))
        elif kind == 4:
            y = rng.normal(0, 1, (h, w, c)).astype(np.float32)
            y[..., c // 2] = y[..., 0]  # exact ties between channels
        elif kind == 5:
            y = rng.normal(0, 5, (h, w, c)).astype(np.float32)
            y[..., -1] = np.nextafter(y[..., 0], np.float32(np.inf))  # a hair above channel 0
        else:
            y = (regions / 4).astype(np.float32)  # quarters: exact interpolations, exact ties
        cases.append(y)
    return cases


def test_x4_post_processing_gives_the_evaluated_masks_bit_for_bit():
    """The runtime's x4 upsample + argmax (int16 sums for 8-bit logits, OpenCV's fill) must give
    the labels of the reference (what `edgeseg evaluate` scored), on every pixel, ties included."""
    from edgeseg.runtime.model.upsample import X4_WEIGHTS, X4_WEIGHTS_64, bilinear_argmax_x4, bilinear_argmax_x4_reference

    assert np.array_equal(X4_WEIGHTS_64 / np.float32(64), X4_WEIGHTS)  # the integer weights are exact
    for y in _logits_cases():
        got, want = bilinear_argmax_x4(y), bilinear_argmax_x4_reference(y)
        assert got.shape == want.shape == (4 * y.shape[0], 4 * y.shape[1]) and got.dtype == np.uint8
        assert np.array_equal(got, want)


class _Replay:
    """A backend that returns given outputs in turn (an accelerator's stand-in)."""

    def __init__(self, like, outputs, output):
        from edgeseg.runtime.model.backend import TensorInfo

        self.path, self.input, self.description = like.path, like.input, "replay"
        self.output = TensorInfo(output.shape, output.dtype)
        self.outputs = list(outputs)

    def run(self, x):
        return self.outputs.pop(0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_a_labels_head_gives_the_masks_of_auto_at_every_frame_size(exported, synth_root, dtype):
    """A model whose graph ends in the upsample and argmax (``output: labels``) hands the runtime
    class ids at the input size, as uint8, int32 or float; cropped to the frame and resized
    nearest, they are ``--upsample auto``'s masks, for frames smaller than the input, as large,
    larger, and of another aspect ratio."""
    from dataclasses import replace

    from edgeseg.core.images import read_image
    from edgeseg.runtime.model.segmenter import Segmenter
    from edgeseg.runtime.model.upsample import bilinear_argmax_x4

    path = exported["files"]["fp32"]["path"]
    auto = Segmenter(path)
    scene = read_image(sorted((synth_root / "val" / "images").glob("*.jpg"))[2])
    frames = [cv2.resize(scene, size, interpolation=cv2.INTER_LINEAR) for size in ((64, 64), (40, 50), (256, 192), (90, 30))]
    ids = [bilinear_argmax_x4(auto.infer(f).output)[None].astype(dtype) for f in frames]
    head = Segmenter(path, metadata=replace(auto.meta, output="labels", output_stride=1),
                     backend=_Replay(auto.backend, ids, ids[0]))
    for frame in frames:
        got, want = head.predict(frame), auto.predict(frame)
        assert got.dtype == np.uint8 and got.shape == frame.shape[:2]
        assert np.array_equal(got, want)


@pytest.mark.parametrize("frame_hw", [(64, 64), (50, 90), (200, 120)])
def test_integer_input_lookup_table_matches_float_quantization(exported, frame_hw):
    from edgeseg.core.geometry import letterbox
    from edgeseg.runtime.model.segmenter import Segmenter

    seg = Segmenter(exported["files"]["int8"]["path"])
    assert seg.input.dtype != np.float32
    frame = np.random.default_rng(2).integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    x, box = seg._prepare(frame)
    reference, ref_box = letterbox(frame, seg.input_size, seg.meta.pad_value)
    assert box == ref_box and x.dtype == seg.input.dtype
    # TFLite's quantization, written out here: q = clamp(round(real / scale) + zero point)
    scale, zero = seg.input.quantization
    info = np.iinfo(x.dtype)
    expected = np.clip(np.round(reference.astype(np.float64) / scale) + zero, info.min, info.max).astype(x.dtype)
    assert np.abs(x[0].astype(int) - expected.astype(int)).max() <= 1  # float32 vs float64 rounding at .5
    assert np.mean(x[0] == expected) > 0.99


def test_pipelined_loop_matches_sequential_and_reports_errors(exported, video, tmp_path):
    from edgeseg.runtime.run.loop import RunOptions, run_stream
    from edgeseg.runtime.model.segmenter import Segmenter
    from edgeseg.runtime.sources.files import prefetch, video_frames

    seg = Segmenter(exported["files"]["int8"]["path"])
    for pipeline in (True, False):
        masks = tmp_path / f"masks_{pipeline}"
        summary = run_stream(seg, video_frames(str(video)), RunOptions(save_masks=masks, draw=True, pipeline=pipeline,
                                                                      echo=lambda *_: None))
        assert summary["frames"] == 8
    names = sorted(p.name for p in (tmp_path / "masks_True").glob("*.png"))
    assert names == sorted(p.name for p in (tmp_path / "masks_False").glob("*.png")) and len(names) == 8
    for name in names:
        assert np.array_equal(cv2.imread(str(tmp_path / "masks_True" / name)),
                              cv2.imread(str(tmp_path / "masks_False" / name)))

    class Broken(Exception):
        pass

    def frames():
        yield from video_frames(str(video))
        raise Broken("decoder died")

    with pytest.raises(Broken):  # a source error surfaces in the caller, after the frames before it
        run_stream(seg, frames(), RunOptions(echo=lambda *_: None))
    with pytest.raises(Broken):
        list(prefetch(frames()))

    def fail(*_):
        raise Broken("sink died")

    seg_finish = seg.finish
    seg.finish = fail  # a post-processing error stops the run and is raised, not lost in a thread
    try:
        with pytest.raises(Broken):
            run_stream(seg, video_frames(str(video)), RunOptions(echo=lambda *_: None))
    finally:
        seg.finish = seg_finish


def test_post_processing_threads_keep_the_order_and_the_masks(exported, video, tmp_path):
    """``post_threads``: consecutive frames post-processed side by side; the masks and their order
    are the sequential loop's, and an error in a post-processing thread stops the run."""
    from edgeseg.runtime.model.segmenter import Segmenter
    from edgeseg.runtime.run.loop import RunOptions, run_stream
    from edgeseg.runtime.sources.files import video_frames

    seg = Segmenter(exported["files"]["int8"]["path"])
    masks = {}
    for name, pipeline, threads in (("sequential", False, 1), ("threads", True, 3)):
        folder = tmp_path / name
        summary = run_stream(seg, video_frames(str(video)), RunOptions(
            pipeline=pipeline, post_threads=threads, save_masks=folder, echo=lambda *_: None))
        assert summary["frames"] == 8
        masks[name] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]
    assert len(masks["threads"]) == len(masks["sequential"]) == 8
    assert all(np.array_equal(a, b) for a, b in zip(masks["threads"], masks["sequential"]))

    class Broken(Exception):
        pass

    def fail(*_):
        raise Broken("post-processing died")

    seg_finish = seg.finish
    seg.finish = fail
    try:
        with pytest.raises(Broken):
            run_stream(seg, video_frames(str(video)), RunOptions(post_threads=2, echo=lambda *_: None))
    finally:
        seg.finish = seg_finish


def test_post_threads_default_to_the_cores_only_where_an_accelerator_leaves_them_free(monkeypatch):
    from types import SimpleNamespace

    from edgeseg.runtime.run.workers import MAX_POST_THREADS, default_post_threads

    monkeypatch.setattr("os.cpu_count", lambda: 16)

    def seg(free, output="logits", upsample="auto"):
        return SimpleNamespace(backend=SimpleNamespace(leaves_cpu_free=free), meta=SimpleNamespace(output=output),
                               upsample=upsample)

    assert default_post_threads(seg(True)) == MAX_POST_THREADS
    assert default_post_threads(seg(False)) == 1  # XNNPACK's threads hold the cores
    assert default_post_threads(seg(True, output="labels")) == 1  # a crop is left to do
    assert default_post_threads(seg(True, upsample="fast")) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert default_post_threads(seg(True)) == 2  # two cores feed the model and finish frames
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_post_threads(seg(True)) == 1


def test_auto_upsampling_is_exact_up_to_the_input_size_and_nearest_beyond(exported, synth_root):
    """Frames no larger than the input: auto is exact. Larger (a 720p camera on a small model):
    exact at the size the model saw the frame at, then nearest to the frame."""
    from edgeseg.core.geometry import fit
    from edgeseg.core.images import read_image
    from edgeseg.runtime.model.segmenter import Segmenter

    path = exported["files"]["fp32"]["path"]
    auto, exact = Segmenter(path), Segmenter(path, upsample="exact")
    assert auto.upsample == "auto"
    scene = read_image(sorted((synth_root / "val" / "images").glob("*.jpg"))[1])
    for size in ((64, 64), (50, 40)):
        frame = cv2.resize(scene, size[::-1])
        assert np.array_equal(auto.predict(frame), exact.predict(frame))
    big = cv2.resize(scene, (256, 192), interpolation=cv2.INTER_LINEAR)
    small, box = fit(big, auto.input_size)
    at_box = exact.predict(small)  # what the model saw, exact
    want = cv2.resize(at_box, (256, 192), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(auto.predict(big), want)
    assert auto.predict(big).shape == (192, 256)


def test_stopping_early_waits_for_the_decoding_thread(exported, video):
    """A decode thread left inside OpenCV when the interpreter exits aborts the process
    ("FATAL: exception not rethrown"): --max-frames must stop and join it before returning."""
    import threading

    from edgeseg.runtime.run.loop import RunOptions, run_stream
    from edgeseg.runtime.model.segmenter import Segmenter

    from edgeseg.runtime.sources.files import video_frames

    def slow_frames():
        for frame in video_frames(str(video)):
            time.sleep(0.3)  # a decoder still busy when the consumer stops
            yield frame

    seg = Segmenter(exported["files"]["int8"]["path"])
    summary = run_stream(seg, slow_frames(), RunOptions(max_frames=2, echo=lambda *_: None))
    assert summary["frames"] == 2
    assert not [t for t in threading.enumerate() if t.name == "edgeseg-decode"]


def test_interleaved_timing_lets_each_model_settle_before_it_is_timed():
    from edgeseg.runtime.model.benchmark import time_invokes

    class Counting:
        def __init__(self):
            self.calls = 0

        def invoke(self):
            self.calls += 1

    a, b = Counting(), Counting()
    stats = time_invokes({"a": a, "b": b}, runs=5, settle=2)
    assert (a.calls, b.calls) == (15, 15) and stats["a"]["runs"] == stats["b"]["runs"] == 5
    alone = Counting()
    assert time_invokes({"alone": alone}, runs=5)["alone"]["runs"] == 5 and alone.calls == 5


def test_blend_reuses_its_buffers_without_mixing_frames_and_the_legend_lists_present_classes():
    from edgeseg.core.labels import palette
    from edgeseg.runtime.run.overlay import Legend, blend

    rng = np.random.default_rng(5)
    colors = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(5)]
    table, scratch = palette(colors), {}
    for size in [(48, 64), (48, 64), (30, 40)]:
        frame = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        labels = rng.integers(0, 5, size, dtype=np.uint8)
        expected = np.round(0.5 * frame + 0.5 * table[labels]).astype(np.uint8)
        out = blend(frame, labels, table, 0.5, scratch)
        assert np.abs(out.astype(int) - expected).max() <= 1
        assert out is not scratch["colored"] and out.base is None  # a new image each frame
    legend = Legend([f"c{i}" for i in range(5)], colors)
    only = np.full((48, 64), 3, np.uint8)
    only[0, 0] = 1  # one pixel of class 1
    image = np.zeros((48, 640, 3), np.uint8)
    legend.draw(image, only)
    assert len(legend._patches) == 1 and next(iter(legend._patches)) == bytes([0, 1, 0, 1, 0])
