"""Frame sources: cameras and streams (read live, see :mod:`edgeseg.runtime.sources.live` and
:mod:`edgeseg.runtime.sources.cameras`), video files, image folders and globs.
Files and folders are read in order, every frame, and end the run when they end (or replay,
with ``--loop``); :func:`open_source` turns the command line into one of them.
"""

from __future__ import annotations

import glob
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator


from edgeseg.core.images import is_image, list_images
from edgeseg.runtime.sources.frame import Frame, SourceCounts, SourceError, open_capture
from edgeseg.runtime.sources.live import LatestFrameReader, live_frames

log = logging.getLogger("edgeseg")


def video_frames(path: str) -> Iterator[Frame]:
    """Every frame of a video file, in order; ends with the file."""
    import cv2

    cap = open_capture(path)
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


def image_frames(paths: list[Path], counts: SourceCounts | None = None) -> Iterator[Frame]:
    """Images in order; an unreadable one is reported, skipped and counted in ``counts``."""
    import cv2

    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            if counts is not None:
                counts.unreadable += 1
            continue
        yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), path.stem, i, time.perf_counter(),
                    1000 * (time.perf_counter() - t0))


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
    in the source is raised here, in the consumer. Closing the iterator stops the thread and
    waits for it."""
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
        # Wait for the worker: a daemon thread still inside a decoder's C++ code when the
        # interpreter exits aborts the process ("FATAL: exception not rethrown").
        stop.set()
        thread.join(timeout=10.0)


# what FFmpeg opens as a network stream; another scheme is a typo that can never work
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms", "mmsh")


def check_stream_url(url: str) -> None:
    """SourceError for a URL that can never be opened: an unknown scheme, no host, a bad port."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() not in STREAM_SCHEMES:
        raise SourceError(f"not a stream URL: {url} (the scheme must be one of {', '.join(STREAM_SCHEMES)}; "
                          "a file or folder is given as a path)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise SourceError(f"malformed stream URL: {url} (the port is not a number from 1 to 65535)") from None
    if not parts.netloc or not (parts.hostname or parts.port):
        raise SourceError(f"malformed stream URL: {url} (no host)")


def open_source(camera: str | None = None, source: str | None = None, loop: bool = False,
                give_up_after: float | None = None, settings=None, stopping=None, counts: SourceCounts | None = None):
    """``(frames iterator, reader or None)`` for ``--camera`` or ``--source``; ``loop`` replays a
    file or folder source until the run is stopped; ``settings`` (CameraSettings) size, rate and
    format of cameras; ``stopping()`` ends a live source that waits for a frame (a stop signal);
    ``counts`` is told the frames of a file or folder source that could not be read.

    A camera or stream that cannot be opened yet is waited for (the reader retries with
    back-off); one that can never work (a missing file, a malformed URL, a camera tool that is
    not installed) is a SourceError at once."""
    from edgeseg.runtime.sources.cameras import CameraError, CameraSettings, plan_camera, plan_source

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
        return live_frames(reader, give_up_after, stopping=stopping), reader
    if source is None:
        raise SourceError("give --camera N or --source FILE|URL|DIR|GLOB")
    if "://" in source:
        check_stream_url(source)
        reader = LatestFrameReader(source, name=source)
        return live_frames(reader, give_up_after, stopping=stopping), reader
    make = _file_source(source, counts)
    return (looped(make) if loop else make()), None


def video_fps(source: str | None) -> float | None:
    """The frame rate a video file says it has (None for anything else, or a rate that makes no
    sense): a saved overlay of a file plays at the file's speed."""
    if not source or "://" in source or not Path(source).is_file() or is_image(Path(source)):
        return None
    cap = open_capture(source)
    if cap is None:
        return None
    import cv2

    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return fps if 0.5 <= fps <= 1000 else None


def _file_source(source: str, counts: SourceCounts | None = None):
    """A function that opens the file, folder or glob ``source`` from its start."""
    path = Path(source)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise SourceError(f"no images in {path}")
        return lambda: image_frames(images, counts)
    if path.is_file():
        if is_image(path):
            return lambda: image_frames([path], counts)
        probe = open_capture(str(path))  # fail here, before the model is loaded, not mid-run
        if probe is None:
            raise SourceError(f"cannot open video file {path}")
        probe.release()
        return lambda: video_frames(str(path))
    matches = sorted(Path(p) for p in glob.glob(source))
    images = [p for p in matches if is_image(p)]
    if images:
        return lambda: image_frames(images, counts)
    raise SourceError(f"source not found: {source}")
