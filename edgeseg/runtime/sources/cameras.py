"""Cameras as the boards have them: V4L2 (USB) through OpenCV; CSI cameras through Picamera2 or
an ``rpicam-vid`` subprocess on a Raspberry Pi and through GStreamer (``nvarguscamerasrc``) on a
Jetson; any GStreamer pipeline through OpenCV's GStreamer backend when it has one, else a
``gst-launch-1.0`` subprocess. Each opener returns an object with ``read() -> (ok, bgr)`` and
``release()`` that :class:`~edgeseg.runtime.sources.live.LatestFrameReader` reads, restarts and
reconnects like any camera.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgeseg.core.errors import EdgesegError
from edgeseg.runtime.sources.board import Board, csi_only, detect_board

log = logging.getLogger("edgeseg")

GST_INSTALL = "sudo apt install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
PI_INSTALL = ("sudo apt install python3-picamera2 (and make the venv with --system-site-packages) "
              "or sudo apt install rpicam-apps")


class CameraError(EdgesegError, RuntimeError):
    """A camera that cannot be used here: what to install or pass instead, in one line."""


@dataclass(frozen=True)
class CameraSettings:
    """``size`` (width, height), ``fps`` and MJPG for USB cameras; None: the camera's default
    (CSI and GStreamer sources: 1280x720 and 640x480)."""

    size: tuple[int, int] | None = None
    fps: float | None = None
    mjpg: bool = False


@dataclass(frozen=True)
class CameraPlan:
    """How a camera will be opened: ``describe`` for the user, ``open(spec)`` for the reader."""

    describe: str
    open: object
    spec: object


class PipeCapture:
    """Raw frames of a fixed size from a subprocess's stdout: ``bgr`` (3 bytes a pixel) or
    ``i420`` (YUV 4:2:0 planes, 1.5 bytes a pixel, converted with OpenCV)."""

    def __init__(self, argv: list[str], width: int, height: int, layout: str, install: str):
        self.argv, self.width, self.height, self.layout = argv, width, height, layout
        self.frame_bytes = width * height * 3 if layout == "bgr" else width * height * 3 // 2
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise CameraError(f"{argv[0]} not found: {install}") from None
        self._stderr: deque = deque(maxlen=8)
        self._buffer = bytearray(self.frame_bytes)
        self._drain = threading.Thread(target=self._drain_stderr, name="edgeseg-camera-stderr", daemon=True)
        self._drain.start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    def read(self):
        view, got = memoryview(self._buffer), 0
        while got < self.frame_bytes:
            n = self.proc.stdout.readinto(view[got:])
            if not n:
                return False, None
            got += n
        data = np.frombuffer(self._buffer, np.uint8)
        if self.layout == "bgr":
            return True, data.reshape(self.height, self.width, 3).copy()
        import cv2

        return True, cv2.cvtColor(data.reshape(self.height * 3 // 2, self.width), cv2.COLOR_YUV2BGR_I420)

    def error_text(self) -> str:
        """Why the frames stopped: the exit code and the tool's last words on stderr."""
        try:
            code = self.proc.wait(timeout=1.0)
            self._drain.join(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        said = " | ".join(self._stderr)
        name = self.argv[0].rsplit("/", 1)[-1]
        return f"{name} {'exited with ' + str(code) if code is not None else 'stopped sending'}" + \
            (f": {said}" if said else "")

    def release(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class Picamera2Capture:
    """A CSI camera through Picamera2 (Raspberry Pi OS: ``apt install python3-picamera2``)."""

    def __init__(self, index: int, width: int, height: int, fps: float | None):
        from picamera2 import Picamera2

        self.camera = Picamera2(index)
        controls = {"FrameRate": fps} if fps else {}
        # libcamera's RGB888 is laid out B, G, R in memory: OpenCV's order
        config = self.camera.create_video_configuration(main={"size": (width, height), "format": "RGB888"},
                                                        controls=controls)
        self.camera.configure(config)
        self.camera.start()

    def read(self):
        try:
            return True, self.camera.capture_array("main")
        except Exception as e:  # noqa: BLE001 - any camera error is a lost signal
            log.warning("picamera2: %s", e)
            return False, None

    def release(self):
        try:
            self.camera.stop()
        finally:
            self.camera.close()


def open_v4l2(device, settings: CameraSettings):
    """A USB camera (index or /dev/videoN) through OpenCV's V4L2 backend, or None."""
    import cv2

    cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        return None
    if settings.mjpg:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
    if settings.size:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, settings.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.size[1])
    if settings.fps:
        cap.set(cv2.CAP_PROP_FPS, settings.fps)
    return cap


def opencv_has_gstreamer() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.upper()
    return False


def gstreamer_plan(pipeline: str, settings: CameraSettings, what: str) -> CameraPlan:
    """Any GStreamer pipeline that produces video: OpenCV's GStreamer backend (JetPack's OpenCV)
    when it has one, else ``gst-launch-1.0`` writing BGR frames of a fixed size to stdout."""
    width, height = settings.size or (640, 480)
    if opencv_has_gstreamer():
        import cv2

        full = f"{pipeline} ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"

        def open_cv(_spec):
            cap = cv2.VideoCapture(full, cv2.CAP_GSTREAMER)
            if not cap.isOpened():
                cap.release()
                return None
            return cap

        return CameraPlan(f"{what} through OpenCV's GStreamer backend", open_cv, full)
    if shutil.which("gst-launch-1.0") is None:
        raise CameraError(f"{what} needs GStreamer: this OpenCV has no GStreamer backend and "
                          f"gst-launch-1.0 is not installed ({GST_INSTALL})")
    argv = ["gst-launch-1.0", "-q", *pipeline.split(), "!", "videoconvert", "!", "videoscale", "!",
            f"video/x-raw,format=BGR,width={width},height={height}", "!", "fdsink", "fd=1", "sync=false"]
    return CameraPlan(f"{what} through gst-launch-1.0 ({width}x{height})",
                      lambda _spec: PipeCapture(argv, width, height, "bgr", GST_INSTALL), " ".join(argv))


def picamera2_problem() -> str | None:
    """None when Picamera2 imports; else why not, in a few words. The usual cause on a Pi is a
    venv whose own numpy shadows the system numpy that Picamera2 and simplejpeg are built against
    ("numpy.dtype size changed"): any exception of the import is a reason, not a traceback."""
    import contextlib
    import io

    from edgeseg.core.quiet import captured_stderr

    try:
        # numpy 2 prints its own page and a stack about a module built on numpy 1.x before the
        # import fails: the reason below says it in one line
        with captured_stderr(), contextlib.redirect_stderr(io.StringIO()):
            import picamera2  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name == "picamera2":
            return "not installed"
        return f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - ValueError (numpy ABI), RuntimeError (libcamera), ...
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        hint = ""
        if "numpy" in text.lower() or "size changed" in text:
            hint = (" (a pip-installed numpy shadows the system numpy Picamera2 was built with: "
                    "reinstall keeping the system numpy, see the README's Raspberry Pi section)")
        return f"{type(e).__name__}: {text}{hint}"
    return None


def csi_plan(index: int, settings: CameraSettings, board: Board) -> CameraPlan:
    """The CSI camera ``index``: Picamera2 or rpicam-vid on a Pi, nvarguscamerasrc on a Jetson."""
    width, height = settings.size or (1280, 720)
    if board.kind == "jetson":
        fps = int(settings.fps or 30)
        pipeline = (f"nvarguscamerasrc sensor-id={index} ! video/x-raw(memory:NVMM),width={width},height={height},"
                    f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx")
        return gstreamer_plan(pipeline, CameraSettings((width, height), fps), f"CSI camera {index} (Argus)")
    problem = picamera2_problem()
    if problem is None:
        return CameraPlan(f"CSI camera {index} through Picamera2 ({width}x{height})",
                          lambda _spec: Picamera2Capture(index, width, height, settings.fps), f"picamera2:{index}")
    tool = shutil.which("rpicam-vid") or shutil.which("libcamera-vid")
    if tool is None:
        where = board.name if board.kind else "this machine (not a Raspberry Pi or Jetson)"
        if problem != "not installed":
            raise CameraError(f"no CSI camera support on {where}: Picamera2 failed to import ({problem}) "
                              "and rpicam-vid is not installed (sudo apt install rpicam-apps)")
        raise CameraError(f"no CSI camera support on {where}: {PI_INSTALL}")
    if problem != "not installed":
        log.warning("Picamera2 failed to import (%s); reading the camera through %s instead",
                    problem, tool.rsplit("/", 1)[-1])
    width = -(-width // 64) * 64  # rpicam-vid pads YUV rows to 64 pixels: ask for whole rows
    argv = [tool, "-t", "0", "-n", "--codec", "yuv420", "--width", str(width), "--height", str(height),
            "--camera", str(index), "-o", "-"]
    if settings.fps:
        argv[1:1] = ["--framerate", str(settings.fps)]
    return CameraPlan(f"CSI camera {index} through {tool.rsplit('/', 1)[-1]} ({width}x{height})",
                      lambda _spec: PipeCapture(argv, width, height, "i420", PI_INSTALL), " ".join(argv))


def parse_camera(text: str):
    """``0``, ``/dev/video2``, ``csi`` or ``csi:1`` -> ("v4l2", index|path) or ("csi", index)."""
    text = str(text).strip()
    if text.isdigit():
        return "v4l2", int(text)
    if text.startswith("/dev/"):
        return "v4l2", text
    if text == "csi" or text.startswith("csi:"):
        index = text.partition(":")[2] or "0"
        if index.isdigit():
            return "csi", int(index)
    raise CameraError(f"--camera takes an index (0), a device (/dev/video0) or csi[:N], got {text!r}")


def plan_camera(text: str, settings: CameraSettings, board: Board | None = None) -> CameraPlan:
    kind, where = parse_camera(text)
    board = board or detect_board()
    if kind == "v4l2" and isinstance(where, int) and csi_only(board):
        log.info("%s has no USB camera: --camera %d uses its CSI camera %d", board.name, where, where)
        kind = "csi"
    if kind == "csi":
        return csi_plan(where, settings, board)
    return CameraPlan(f"camera {where} through V4L2", lambda spec: open_v4l2(spec, settings), where)


def plan_source(source: str, settings: CameraSettings, board: Board | None = None) -> CameraPlan | None:
    """``csi://N`` and ``gst:PIPELINE`` sources; None for anything else (files, URLs)."""
    if source.startswith("csi://"):
        return plan_camera(f"csi:{source[len('csi://'):] or 0}", settings, board)
    if source.startswith("gst:"):
        pipeline = source[len("gst:"):].strip()
        if not pipeline:
            raise CameraError("gst: needs a pipeline, e.g. gst:videotestsrc")
        return gstreamer_plan(pipeline, settings, "GStreamer pipeline")
    return None
