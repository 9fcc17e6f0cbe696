"""The --save video: written in closed segments of a set length (NAME-000001.mp4, ...), each under
a temporary name until it is closed, so a power cut loses at most the segment being written."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from edgeseg.core.files import OutputError, atomic_path, free_space

log = logging.getLogger("edgeseg")


SEGMENT_SECONDS = 10.0  # --save-segment's default: what a power cut may cost of a recording


def segment_path(path: Path, number: int) -> Path:
    """``out.mp4`` -> ``out-000001.mp4``: the ``number``-th segment of a --save video."""
    return path.with_name(f"{path.stem}-{number:06d}{path.suffix}")


def is_segment_of(path: Path, name: str) -> bool:
    """Whether the file name ``name`` is a segment of the --save video ``path``."""
    return re.fullmatch(re.escape(path.stem) + r"-\d{6,}" + re.escape(path.suffix), name) is not None


def last_segment_number(path: Path) -> int:
    """The highest segment number of ``path`` in its folder (0: none): a new run goes on after it."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    return max((int(n[len(path.stem) + 1: len(n) - len(path.suffix)]) for n in names if is_segment_of(path, n)),
               default=0)


class VideoSink:
    """The --save video, in closed segments: ``NAME-000001.mp4``, ``NAME-000002.mp4``, ... a new
    one every ``segment`` seconds of the run (a run goes on after the highest number already in
    the folder; nothing is written over). Each segment is written under a temporary name, then
    closed, checked (it opens and holds every frame written), synced to disk and renamed: a power
    cut or ``kill -9`` costs at most the segment in progress. ``segment`` None: one file,
    ``path`` itself, renamed when the run ends. A segment that cannot be written (full disk,
    read-only folder) is said once with the free space and counted; the next one is tried.

    The frame size is the first frame's. ``fps``: the rate to play at (a file source's own);
    None measures it from the capture times of the first frames written (the median interval),
    so a camera's video plays at the speed the frames were segmented, frames dropped by a slow
    model included."""

    FOURCC = "mp4v"
    MEASURE_FRAMES = 10  # frames held back to measure the rate (None fps)
    MEASURE_SECONDS = 3.0
    DEFAULT_FPS = 15.0  # a video of one frame

    def __init__(self, path: Path, fps: float | None = None, segment: float | None = SEGMENT_SECONDS, warn=None):
        self.path = Path(path)
        self.fps = fps
        self.segment = segment or None
        self.warn = warn or (lambda kind, message: log.warning(message))
        self._held: list = []  # (rgb copy, capture time) until the rate is known
        self._held_since: float | None = None  # when the first of them came (monotonic)
        self._open = None  # the segment being written: _Segment
        self.number = last_segment_number(self.path) if self.segment else 0
        self.kept: list[Path] = []
        self.frames_kept = 0
        self.lost = 0  # segments that could not be written
        self._retry_at = 0.0  # after one: the next is tried a segment later (monotonic)

    @classmethod
    def check(cls, path: Path, fps: float = 15.0) -> None:
        """Open a writer for ``path`` on a small frame and remove it again: OSError naming the
        file before the run when its folder is not writable or OpenCV has no encoder for it."""
        import tempfile

        import cv2

        from edgeseg.core.files import write_error

        path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".probe-{path.stem}.", suffix=path.suffix, dir=path.parent)
        except OSError as e:
            raise OSError(str(write_error(path, e))) from None
        os.close(fd)
        try:
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*cls.FOURCC), fps, (64, 64))
            opened = writer.isOpened()
            writer.release()
        finally:
            os.unlink(tmp)
        if not opened:
            raise OSError(f"cannot write video {path}: OpenCV has no {cls.FOURCC} encoder for "
                          f"'{path.suffix or '(no suffix)'}' files (use .mp4 or .avi)")

    def describe(self) -> str:
        """Where the video goes, for the start of the run."""
        if not self.segment:
            return str(self.path)
        return (f"{segment_path(self.path, self.number + 1)}, {segment_path(self.path, self.number + 2).name}, ... "
                f"(a new file every {self.segment:g} s: a power cut loses at most the last {self.segment:g} s)")

    def write(self, rgb: np.ndarray, captured: float | None = None):
        """Add a frame; ``captured``: its capture time (seconds, any clock), for a measured rate."""
        if self._open is None and self.fps is None:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append((rgb.copy(), captured))  # the overlay's buffer is reused next frame
            first = self._held[0][1]
            if (len(self._held) < self.MEASURE_FRAMES and
                    (captured is None or first is None or captured - first < self.MEASURE_SECONDS)):
                return
            self._flush_held()
            return
        self._write(rgb)

    def tick(self) -> None:
        """Close the segment in progress once it is ``segment`` seconds old, frames or not (a
        camera that stopped sending): the run's checkpoint thread calls this."""
        if self._open is not None and self.segment and time.monotonic() - self._open.started >= self.segment:
            self._close_segment()

    def _flush_held(self):
        times = [t for _, t in self._held if t is not None]
        # the median interval, the first one left out (it holds the first inference's warm-up)
        gaps = np.diff(times)[1:] if len(times) >= 3 else np.diff(times)
        gap = float(np.median(gaps)) if len(gaps) else 0.0
        self.fps = min(max(1.0 / gap, 0.1), 120.0) if gap > 0 else self.DEFAULT_FPS
        log.info("saving %s at %.1f FPS (the measured rate)", self.path, self.fps)
        held, self._held = self._held, []
        for rgb, _ in held:
            self._write(rgb)

    def _write(self, rgb: np.ndarray):
        import cv2

        self.tick()
        if self._open is None:
            self._open = self._start_segment(rgb.shape[1], rgb.shape[0])
        if self._open is not None:
            self._open.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            self._open.frames += 1

    def _start_segment(self, width: int, height: int):
        """The next segment's writer, or None (it cannot be written now: said and counted).
        The encoder was checked before the run (``check``): a writer that does not open here
        is the disk's doing."""
        import cv2

        if time.monotonic() < self._retry_at:
            return None
        final = segment_path(self.path, self.number + 1) if self.segment else self.path
        target = atomic_path(final)
        try:
            tmp = target.__enter__()
        except OutputError as e:
            self._failed(str(e))
            return None
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*self.FOURCC), self.fps, (width, height))
        if not writer.isOpened():
            target.__exit__(RuntimeError, RuntimeError("not opened"), None)
            self._failed(f"cannot write {final}: the video writer cannot open it ({free_space(final.parent)})")
            return None
        self.number += 1
        # held frames (the rate measured) count from when they came: a power cut costs them too
        started, self._held_since = self._held_since or time.monotonic(), None
        return _Segment(final, target, tmp, writer, started)

    def _close_segment(self, keep: bool = True) -> None:
        import cv2

        seg, self._open = self._open, None
        seg.writer.release()
        if keep:  # a full disk shows only here: the file does not open, or lacks frames
            probe = cv2.VideoCapture(str(seg.tmp))
            complete = probe.isOpened() and int(probe.get(cv2.CAP_PROP_FRAME_COUNT)) == seg.frames
            probe.release()
            if not complete:
                keep = False
                self._failed(f"cannot write {seg.final}: the video writer could not finish it "
                             f"({free_space(seg.final.parent)})")
        if not keep:
            seg.target.__exit__(RuntimeError, RuntimeError("segment dropped"), None)
            return
        try:
            seg.target.__exit__(None, None, None)
        except OutputError as e:
            self._failed(str(e))
            return
        self.kept.append(seg.final)
        self.frames_kept += seg.frames

    def _failed(self, message: str) -> None:
        self.lost += 1
        # one file: nothing to go on with; segments: the next one, a segment's time later
        self._retry_at = time.monotonic() + (self.segment or float("inf"))
        self.warn("video_not_written", message + ("; the recording goes on with the next segment" if self.segment else ""))

    def summary(self) -> dict:
        out = {"frames": self.frames_kept, "files": len(self.kept)}
        if self.kept:
            out.update(first=str(self.kept[0]), last=str(self.kept[-1]))
        if self.segment:
            out["segment_seconds"] = self.segment
        if self.lost:
            out["not_written"] = self.lost
        return out

    def close(self, ok: bool = True):
        """Finish the segment in progress (``ok``), or remove it (the run failed while a frame
        may still be in the writer); segments already closed stay."""
        if ok and self._held:
            self._flush_held()
        if self._open is not None:
            self._close_segment(keep=ok)


class _Segment:
    def __init__(self, final: Path, target, tmp: Path, writer, started: float):
        self.final, self.target, self.tmp, self.writer, self.started = final, target, tmp, writer, started
        self.frames = 0
