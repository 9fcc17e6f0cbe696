"""Frame sources: camera (see :mod:`edgeseg.runtime.cameras`), video file, RTSP/HTTP stream,
image folder or glob.

Live sources (cameras, network streams) are read by :class:`LatestFrameReader` in a daemon
thread that keeps only the newest frame, counts the frames it had to drop, and reconnects with
back-off when the signal is lost. Files and folders are read in order, every frame, and end the
run when they end.
"""

from __future__ import annotations

import glob
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgeseg.core.images import is_image, list_images

log = logging.getLogger("edgeseg")

class SourceError(RuntimeError):
    pass


@dataclass
class Frame:
    image: np.ndarray  # RGB uint8
    name: str
    index: int
    captured: float  # time.perf_counter() when read
    capture_ms: float = 0.0


def _open_capture(spec):
    import cv2

    cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


class LatestFrameReader:
    """Reads a live source in a daemon thread and keeps only the latest frame.

    Args:
        spec: camera index or stream URL (anything ``cv2.VideoCapture`` opens).
        open_capture: factory returning an object with ``read()`` / ``release()`` (tests pass a fake).
        backoff: first reconnect delay in seconds; doubles up to ``max_backoff``.
    """

    def __init__(self, spec, open_capture=_open_capture, backoff: float = 0.5, max_backoff: float = 8.0,
                 name: str | None = None):
        self.spec = spec
        self.name = name or repr(spec)
        self._open = open_capture
        self.backoff, self.max_backoff = backoff, max_backoff
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._fresh = False
        self.dropped = 0
        self.reconnects = 0
        self.read_count = 0
        self._stop = threading.Event()
        self._cap = self._open(spec)
        if self._cap is None:
            raise SourceError(f"cannot open video source {self.name}")
        self._thread = threading.Thread(target=self._loop, name="edgeseg-capture", daemon=True)
        self._thread.start()

    def _loop(self):
        import cv2

        delay = self.backoff
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            except Exception as e:  # noqa: BLE001 - a driver error is a lost signal too
                log.warning("reading %s failed: %s", self.name, e)
                ok, bgr = False, None
            if not ok or bgr is None:
                if self._cap is not None:
                    why = self._cap.error_text() if hasattr(self._cap, "error_text") else ""
                    self._cap.release()
                    self._cap = None
                    log.warning("source %s lost%s; reconnecting", self.name, f" ({why})" if why else "")
                if self._stop.wait(delay):
                    break
                try:
                    self._cap = self._open(self.spec)
                except Exception as e:  # noqa: BLE001 - e.g. the camera tool was removed: keep trying
                    log.warning("reopening %s failed: %s", self.name, e)
                    self._cap = None
                if self._cap is None:
                    delay = min(delay * 2, self.max_backoff)
                    log.warning("source %s unavailable; retrying in %.1fs", self.name, delay)
                else:
                    self.reconnects += 1
                    delay = self.backoff
                    log.warning("source %s reconnected", self.name)
                continue
            frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"frame{self.read_count:06d}",
                          self.read_count, time.perf_counter(), 1000 * (time.perf_counter() - t0))
            with self._lock:
                if self._fresh:
                    self.dropped += 1
                self._frame, self._fresh = frame, True
                self.read_count += 1
                self._lock.notify_all()
        if self._cap is not None:
            self._cap.release()

    def read(self, timeout: float = 5.0) -> Frame | None:
        """The newest frame not returned before; None if none arrives within ``timeout``."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._fresh or self._stop.is_set(), timeout):
                return None
            if not self._fresh:
                return None
            self._fresh = False
            return self._frame

    def stop(self):
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=2.0)


def video_frames(path: str) -> Iterator[Frame]:
    """Every frame of a video file, in order; ends with the file."""
    import cv2

    cap = _open_capture(path)
    if cap is None:
        raise SourceError(f"cannot open video file {path}")
    i = 0
    try:
        while True:
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{Path(path).stem}_{i:06d}", i,
                        time.perf_counter(), 1000 * (time.perf_counter() - t0))
            i += 1
    finally:
        cap.release()


def image_frames(paths: list[Path]) -> Iterator[Frame]:
    """Images in order; an unreadable one is reported and skipped."""
    import cv2

    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            continue
        yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), path.stem, i, time.perf_counter(),
                    1000 * (time.perf_counter() - t0))


def live_frames(reader: LatestFrameReader, give_up_after: float | None = None,
                poll: float = 1.0, warn_every: float = 30.0) -> Iterator[Frame]:
    """Frames from a live source for as long as the caller wants them: while the source is down
    the reader keeps reconnecting with back-off and this waits (saying so every ``warn_every``
    seconds); with ``give_up_after`` it ends after that many seconds without a frame."""
    try:
        waiting_since = None
        last_warning = 0.0
        while True:
            frame = reader.read(poll)
            if frame is not None:
                waiting_since = None
                yield frame
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            waited = now - waiting_since
            if give_up_after is not None and waited >= give_up_after:
                log.warning("no frame from %s for %.0fs; stopping (--give-up-after)", reader.name, waited)
                return
            if waited >= warn_every and now - last_warning >= warn_every:
                log.warning("no frame from %s for %.0fs; still trying (Ctrl-C to stop)", reader.name, waited)
                last_warning = now
    finally:
        reader.stop()


def looped(make_frames) -> Iterator[Frame]:
    """``make_frames()`` again and again (a file or folder source played in a loop), with frame
    indices that keep counting; ends if one pass yields nothing."""
    index = 0
    while True:
        produced = False
        for frame in make_frames():
            produced = True
            frame.index = index
            index += 1
            yield frame
        if not produced:
            return


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def prefetch(frames: Iterator[Frame], depth: int = 2) -> Iterator[Frame]:
    """Iterate ``frames`` (a file or folder source) in a daemon thread, up to ``depth`` frames
    ahead, so decoding overlaps inference; no frame is dropped and the order is kept. An error
    in the source is raised here, in the consumer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for frame in frames:
                if not put(frame):
                    break
            else:
                put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_Failed(e))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="edgeseg-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


def open_source(camera: str | None = None, source: str | None = None, loop: bool = False,
                give_up_after: float | None = None, settings=None):
    """``(frames iterator, reader or None)`` for ``--camera`` or ``--source``; ``loop`` replays a
    file or folder source until the run is stopped; ``settings`` (CameraSettings) size, rate and
    format of cameras."""
    from edgeseg.runtime.cameras import CameraError, CameraSettings, plan_camera, plan_source

    settings = settings or CameraSettings()
    try:
        plan = plan_camera(str(camera), settings) if camera is not None else \
            plan_source(source, settings) if source is not None else None
    except CameraError as e:
        raise SourceError(str(e)) from None
    if plan is not None:
        try:
            reader = LatestFrameReader(plan.spec, open_capture=plan.open, name=plan.describe)
        except CameraError as e:
            raise SourceError(str(e)) from None
        log.info("reading %s", plan.describe)
        return live_frames(reader, give_up_after), reader
    if source is None:
        raise SourceError("give --camera N or --source FILE|URL|DIR|GLOB")
    if "://" in source:
        reader = LatestFrameReader(source)
        return live_frames(reader, give_up_after), reader
    make = _file_source(source)
    return (looped(make) if loop else make()), None


def _file_source(source: str):
    """A function that opens the file, folder or glob ``source`` from its start."""
    path = Path(source)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise SourceError(f"no images in {path}")
        return lambda: image_frames(images)
    if path.is_file():
        if is_image(path):
            return lambda: image_frames([path])
        probe = _open_capture(str(path))  # fail here, before the model is loaded, not mid-run
        if probe is None:
            raise SourceError(f"cannot open video file {path}")
        probe.release()
        return lambda: video_frames(str(path))
    matches = sorted(Path(p) for p in glob.glob(source))
    images = [p for p in matches if is_image(p)]
    if images:
        return lambda: image_frames(images)
    raise SourceError(f"source not found: {source}")
