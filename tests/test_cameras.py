"""Cameras as the boards have them: real GStreamer pipelines through gst-launch-1.0, a fake
rpicam-vid that writes YUV420 and dies mid-stream, a fake picamera2 module, board detection on
fake device trees. Frame content is checked, not just that a frame arrived."""

import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import error_lines, run_edgeseg
from edgeseg.runtime.sources.board import Board, csi_only, detect_board, usb_cameras
from edgeseg.runtime.sources.cameras import CameraError, CameraSettings, parse_camera, plan_camera, plan_source
from edgeseg.runtime.sources.live import LatestFrameReader

# the seven SMPTE bars of videotestsrc, left to right (RGB)
BARS = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0), (0, 0, 255)]
# what the fake rpicam-vid shows, one solid colour per frame (RGB)
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def need_gstreamer():
    if shutil.which("gst-launch-1.0") is None:
        if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail("gst-launch-1.0 is missing although `make test` installs it")
        pytest.skip("GStreamer tools not installed (make test installs gstreamer1.0-tools)")


def read_frames(reader, n, timeout=10.0):
    frames, deadline = [], time.time() + timeout
    while len(frames) < n and time.time() < deadline:
        frame = reader.read(1.0)
        if frame is not None:
            frames.append(frame)
    return frames


def frames_from(plan, n, **reader_options):
    """Up to ``n`` frames of a planned camera, read as the run loop reads it; and the reader."""
    reader = LatestFrameReader(plan.spec, open_capture=plan.open, name=plan.describe, **reader_options)
    try:
        return read_frames(reader, n), reader
    finally:
        reader.stop()


def fake_tree(root: Path, model: str | None = None, jetson=False, uvc=()):
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
        (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    if jetson:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    for i, driver in enumerate(["unicam", "bcm2835-codec", *uvc]):
        node = root / f"sys/class/video4linux/video{i}/device"
        node.mkdir(parents=True, exist_ok=True)
        (node / "uevent").write_text(f"DRIVER={driver}\n")
    return root


def test_boards_are_recognised_from_the_device_tree(tmp_path):
    pi = fake_tree(tmp_path / "pi", "Raspberry Pi 5 Model B Rev 1.0")
    assert detect_board(pi) == Board("raspberrypi", "Raspberry Pi 5 Model B Rev 1.0")
    assert csi_only(detect_board(pi), pi) and usb_cameras(pi) == []
    pi_usb = fake_tree(tmp_path / "pi_usb", "Raspberry Pi 4 Model B Rev 1.4", uvc=["uvcvideo"])
    assert usb_cameras(pi_usb) == ["/dev/video2"] and not csi_only(detect_board(pi_usb), pi_usb)
    jetson = fake_tree(tmp_path / "jetson", "NVIDIA Jetson Orin Nano Developer Kit", jetson=True)
    assert detect_board(jetson).kind == "jetson"
    assert detect_board(tmp_path / "empty") == Board(None, "")
    assert not csi_only(detect_board(tmp_path / "empty"), tmp_path / "empty")


@pytest.mark.parametrize("text, parsed", [("0", ("v4l2", 0)), ("/dev/video2", ("v4l2", "/dev/video2")),
                                          ("csi", ("csi", 0)), ("csi:1", ("csi", 1))])
def test_camera_names(text, parsed):
    assert parse_camera(text) == parsed


def test_bad_camera_names():
    for text in ("usb", "csi:x", "-1"):
        with pytest.raises(CameraError, match="--camera takes"):
            parse_camera(text)


def test_gstreamer_pipeline_through_gst_launch_gives_the_colour_bars():
    need_gstreamer()
    plan = plan_source("gst:videotestsrc pattern=smpte", CameraSettings((700, 140)))
    assert "gst-launch-1.0" in plan.describe
    frames, _ = frames_from(plan, 3)
    assert len(frames) == 3
    for frame in frames:
        assert frame.image.shape == (140, 700, 3)
        got = [tuple(int(v) for v in frame.image[30, 50 + 100 * i]) for i in range(7)]
        assert all(np.abs(np.subtract(g, e)).max() <= 8 for g, e in zip(got, BARS)), got


def test_gstreamer_source_that_ends_is_restarted_and_its_stderr_reported(edgeseg_log):
    """num-buffers ends the pipeline after 3 frames: the reader restarts it like a lost camera."""
    need_gstreamer()
    plan = plan_source("gst:videotestsrc num-buffers=3 pattern=red", CameraSettings((32, 24)))
    frames, reader = frames_from(plan, 8, backoff=0.05)
    assert len(frames) == 8 and reader.reconnects >= 1
    assert all(tuple(f.image[5, 5]) == (255, 0, 0) for f in frames)
    assert any("gst-launch-1.0 exited with 0" in m for m in edgeseg_log), edgeseg_log


def test_a_missing_element_is_reported_with_gstreamers_words(edgeseg_log):
    need_gstreamer()
    plan = plan_source("gst:nosuchsrc", CameraSettings((32, 24)))
    reader = LatestFrameReader(plan.spec, open_capture=plan.open, name=plan.describe, backoff=0.05)
    try:
        assert reader.read(1.0) is None
    finally:
        reader.stop()
    assert any("no element" in m and "nosuchsrc" in m for m in edgeseg_log), edgeseg_log


def test_missing_tools_are_one_line_with_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gst-launch-1.0, no rpicam-vid
    monkeypatch.setitem(sys.modules, "picamera2", None)  # and no Picamera2
    monkeypatch.setattr("edgeseg.runtime.sources.cameras.opencv_has_gstreamer", lambda: False)
    with pytest.raises(CameraError, match="gst-launch-1.0 is not installed .*gstreamer1.0-tools"):
        plan_source("gst:videotestsrc", CameraSettings())
    pi = Board("raspberrypi", "Raspberry Pi 5 Model B Rev 1.0")
    with pytest.raises(CameraError, match="no CSI camera support on Raspberry Pi 5.*python3-picamera2.*rpicam-apps"):
        plan_camera("csi", CameraSettings(), pi)


def test_jetson_csi_camera_is_an_argus_pipeline(monkeypatch):
    """The Argus pipeline as NVIDIA documents it (nvarguscamerasrc sensor-id, NVMM caps with size
    and rate, nvvidconv to system memory), and the same pipeline with the two Jetson elements
    swapped for ones this machine has (videotestsrc, videoconvert; NVMM dropped) run for real:
    it must parse, negotiate and give BGR frames of the size asked."""
    import shlex

    monkeypatch.setattr("edgeseg.runtime.sources.cameras.opencv_has_gstreamer", lambda: False)
    need_gstreamer()
    plan = plan_camera("csi:1", CameraSettings((96, 64), 60), Board("jetson", "NVIDIA Jetson Orin Nano"))
    argv = plan.spec.split()
    assert argv[:3] == ["gst-launch-1.0", "-q", "nvarguscamerasrc"] and argv[3] == "sensor-id=1"
    caps = argv[argv.index("nvvidconv") - 2]
    assert caps == "video/x-raw(memory:NVMM),width=96,height=64,framerate=60/1"
    assert argv[argv.index("nvvidconv") + 2] == "video/x-raw,format=BGRx"  # nvvidconv out of NVMM
    stand_in = [{"nvarguscamerasrc": "videotestsrc", "sensor-id=1": "pattern=red", "nvvidconv": "videoconvert"}.get(a, a)
                .replace("(memory:NVMM)", "") for a in argv]
    stand_in = [a for a in stand_in if a]
    from edgeseg.runtime.sources.cameras import PipeCapture

    capture = PipeCapture(stand_in, 96, 64, "bgr", "")
    try:
        frames = [capture.read() for _ in range(3)]
    finally:
        capture.release()
    assert all(ok for ok, _ in frames), capture.error_text() + " :: " + shlex.join(stand_in)
    for _, bgr in frames:
        assert bgr.shape == (64, 96, 3) and tuple(bgr[10, 10]) == (0, 0, 255)  # red, in BGR


FAKE_RPICAM = textwrap.dedent("""\
    #!{python}
    # A stand-in for rpicam-vid: YUV420 frames of solid colours on stdout, then it dies mid-frame.
    import sys
    import cv2, numpy as np
    args = sys.argv[1:]
    w, h = int(args[args.index("--width") + 1]), int(args[args.index("--height") + 1])
    assert args[args.index("--codec") + 1] == "yuv420" and args[-2:] == ["-o", "-"]
    out = sys.stdout.buffer
    for rgb in {colours}:
        frame = np.empty((h, w, 3), np.uint8); frame[:] = rgb
        out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    out.write(b"\\x00" * 100)  # half a frame, then the sensor goes away
    out.flush()
    sys.stderr.write("ERROR: fake sensor unplugged\\n")
    sys.exit(1)
""")


@pytest.fixture
def fake_rpicam(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "rpicam-vid"
    tool.write_text(FAKE_RPICAM.format(python=sys.executable, colours=COLOURS))
    tool.chmod(0o755)
    return bin_dir


def test_pi_csi_camera_through_rpicam_vid_yuv420(fake_rpicam, monkeypatch, edgeseg_log):
    monkeypatch.setenv("PATH", f"{fake_rpicam}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "picamera2", None)
    plan = plan_camera("csi", CameraSettings((100, 48)), Board("raspberrypi", "Raspberry Pi 5"))
    assert "rpicam-vid (128x48)" in plan.describe  # width rounded up to whole 64-pixel rows
    reader = LatestFrameReader(plan.spec, open_capture=plan.open, name=plan.describe, backoff=0.05)
    try:
        frames = []
        while len(frames) < 6:  # two runs of the tool: it was restarted after dying
            frame = reader.read(5.0)
            assert frame is not None, "no frame"
            frames.append(frame)
    finally:
        reader.stop()
    assert reader.reconnects >= 1
    for frame in frames:
        assert frame.image.shape == (48, 128, 3)
        nearest = min(COLOURS, key=lambda c: np.abs(np.subtract(frame.image[10, 10], c, dtype=int)).sum())
        assert np.abs(frame.image.astype(int) - nearest).max() <= 4  # solid, YUV round trip
    assert {min(COLOURS, key=lambda c: np.abs(np.subtract(f.image[10, 10], c, dtype=int)).sum())
            for f in frames} == set(COLOURS)
    assert any("rpicam-vid exited with 1: ERROR: fake sensor unplugged" in m for m in edgeseg_log), edgeseg_log


FAKE_PICAMERA2 = textwrap.dedent("""\
    # A stand-in for Picamera2: BGR frames of a known pattern, as libcamera's RGB888 lays them out.
    import numpy as np
    opened = []
    class Picamera2:
        def __init__(self, index=0):
            self.index, self.n = index, 0
            opened.append(self)
        def create_video_configuration(self, main, controls=None):
            return {"main": main, "controls": controls or {}}
        def configure(self, config):
            assert config["main"]["format"] == "RGB888"
            self.w, self.h = config["main"]["size"]
        def start(self):
            pass
        def capture_array(self, stream="main"):
            self.n += 1
            frame = np.zeros((self.h, self.w, 3), np.uint8)
            frame[:, : self.w // 2] = (255, 0, 0)  # blue left half (B, G, R)
            frame[:, self.w // 2:] = (0, 0, 255)  # red right half
            return frame
        def stop(self):
            pass
        def close(self):
            pass
""")


def test_pi_csi_camera_through_picamera2(tmp_path, monkeypatch):
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    plan = plan_camera("csi:1", CameraSettings((64, 32)), Board("raspberrypi", "Raspberry Pi 5"))
    assert "Picamera2" in plan.describe
    frames, _ = frames_from(plan, 2)
    import picamera2

    assert picamera2.opened[0].index == 1
    assert len(frames) == 2
    for frame in frames:  # RGB out: blue on the left, red on the right
        assert tuple(frame.image[5, 5]) == (0, 0, 255) and tuple(frame.image[5, 60]) == (255, 0, 0)


@pytest.mark.parametrize("error", [
    "ValueError('numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 from PyObject')",
    "RuntimeError('libcamera: no cameras available')",
    "ImportError('libcamera.so.0.3: cannot open shared object file')",
])
def test_a_picamera2_that_fails_to_import_is_one_line_then_rpicam_vid(error, fake_rpicam, tmp_path, monkeypatch,
                                                                       edgeseg_log):
    """Picamera2 broken by a venv's numpy (or libcamera) is a reason, not a traceback: the run
    falls back to rpicam-vid and says why; with no rpicam-vid either, one error naming both."""
    broken = tmp_path / "broken"
    (broken / "picamera2").mkdir(parents=True)
    (broken / "picamera2" / "__init__.py").write_text(f"raise {error}\n")
    monkeypatch.syspath_prepend(str(broken))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    kind = error.split("(")[0]
    pi = Board("raspberrypi", "Raspberry Pi 5 Model B Rev 1.0")
    monkeypatch.setenv("PATH", f"{fake_rpicam}{os.pathsep}{os.environ['PATH']}")
    plan = plan_camera("csi", CameraSettings((64, 32)), pi)
    assert "rpicam-vid" in plan.describe
    said = [m for m in edgeseg_log if "Picamera2 failed to import" in m]
    assert len(said) == 1 and f"({kind}: " in said[0] and said[0].endswith("through rpicam-vid instead"), edgeseg_log
    assert ("shadows the system numpy" in said[0]) == ("numpy" in error)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CameraError, match=rf"Picamera2 failed to import \({kind}: .*rpicam-vid is not installed") as e:
        plan_camera("csi", CameraSettings((64, 32)), pi)
    assert "\n" not in str(e.value)


@pytest.fixture
def fake_pi(fake_rpicam, tmp_path):
    """The environment of a Raspberry Pi 5 with a CSI camera only, rpicam-vid and no Picamera2."""
    root = fake_tree(tmp_path / "root", "Raspberry Pi 5 Model B Rev 1.0")
    blocker = tmp_path / "no-picamera2"
    (blocker / "picamera2").mkdir(parents=True)
    (blocker / "picamera2" / "__init__.py").write_text("raise ModuleNotFoundError('no picamera2 here', name='picamera2')\n")
    return {"EDGESEG_SYSROOT": str(root), "PATH": f"{fake_rpicam}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_cli_camera_0_on_a_csi_only_pi_reads_the_csi_camera(exported, fake_pi, tmp_path):
    env = fake_pi
    masks = tmp_path / "masks"
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--camera", "0", "--camera-size", "128x96",
                         "--max-frames", "5", "--save-masks", masks, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Raspberry Pi 5 Model B Rev 1.0 has no USB camera: --camera 0 uses its CSI camera 0" in result.stderr
    assert "reading CSI camera 0 through rpicam-vid (128x96)" in result.stderr
    assert "fake sensor unplugged" in result.stderr  # the tool died after 3 frames and was restarted
    assert len(list(masks.glob("*.png"))) == 5
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--camera", "0", env={
        **env, "PATH": str(tmp_path / "empty")})
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        "edgeseg: error: no CSI camera support on Raspberry Pi 5 Model B Rev 1.0: sudo apt install "
        "python3-picamera2 (and make the venv with --system-site-packages) or sudo apt install rpicam-apps"]


def test_the_systemd_unit_runs_on_a_pi_as_written(exported, fake_pi, tmp_path):
    """tools/deploy/edgeseg.service's ExecStart, with its paths pointed here, on a fake CSI-only Pi."""
    import shlex

    from conftest import REPO

    unit = (REPO / "tools" / "deploy" / "edgeseg.service").read_text()
    env = dict(line.split("=", 1)[1].split("=", 1) for line in unit.splitlines() if line.startswith("Environment="))
    exec_start = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.replace("${EDGESEG_TOKEN}", env["EDGESEG_TOKEN"]))
    assert argv[0].endswith("/bin/edgeseg") and argv[1] == "run"
    argv = [a.replace("/home/pi/models/model_int8.tflite", exported["files"]["int8"]["path"])
             .replace("/home/pi/", f"{tmp_path}/") for a in argv[1:]]
    argv[argv.index("--serve") + 1] = f"0.0.0.0:{_free_port()}"
    result = run_edgeseg(*argv, "--max-frames", "6", env=fake_pi)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "?token=change-me" in result.stderr and "through rpicam-vid" in result.stderr
    assert json.loads((tmp_path / "edgeseg-stats.json").read_text())["frames"] == 6


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
