"""Where a run's results go: the overlay drawn once per frame and handed to a window, a video
file, the preview server; label maps as PNGs. Problems while writing are counted, not fatal:
a full disk stops one output (said once, with the free space), the others go on."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.core.files import OutputError, atomic_path, free_space, write_image_atomic
from edgeseg.core.labels import palette
from edgeseg.runtime.run.overlay import Legend, blend, draw_status

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


def gui_available() -> tuple[bool, str]:
    """Whether cv2.imshow can work here, and why not."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set); running headless"
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    if gui and "NONE" in gui[0].upper():
        return False, ("--show needs a GUI build of OpenCV, this one is headless: "
                       "pip uninstall opencv-python-headless && pip install opencv-python")
    return True, ""


class Outputs:
    """The overlay and its destinations for one run.

    Args:
        meta: the model's metadata (class names and colours for the overlay and legend).
        show: a window (falls back to headless, with a warning, when there is no GUI).
        save: an overlay video file; ``save_fps`` its rate (None: measured), ``save_segment``
            the seconds of each of its files (None: one file); see VideoSink.
        save_masks: a folder for the label maps (PNG, named like the frames).
        serve: an :class:`~edgeseg.runtime.serve.server.MJPEGServer`.
        draw: draw the overlay even with nowhere to send it (benchmarks).
        warn: ``warn(kind, message)``: counts a problem for the run's summary.
    """

    def __init__(self, meta, show=False, save=None, save_masks=None, serve=None, draw=False, alpha=0.5,
                 save_fps=None, warn=None, save_segment=SEGMENT_SECONDS):
        self.table = palette(meta.colors)
        self.legend = Legend(meta.class_names, meta.colors)
        self._scratch: dict = {}  # blend()'s buffers, reused frame to frame
        self.warn = warn or (lambda kind, message: log.warning(message))
        self.video = VideoSink(save, save_fps, save_segment, self.warn) if save else None
        if self.video is not None:
            log.info("saving the overlay video to %s", self.video.describe())
        self.masks = Path(save_masks) if save_masks else None
        if self.masks is not None:
            self.masks.mkdir(parents=True, exist_ok=True)
        self.serve, self.draw, self.alpha = serve, draw, alpha
        self.show = show
        if show:
            self.show, why = gui_available()
            if not self.show:
                log.warning(why)
        self.latest_view = None  # for the window, shown by the main thread

    @property
    def drawing(self) -> bool:
        return bool(self.video or self.show or self.draw or (self.serve is not None and self.serve.wants_frame()))

    def write(self, frame, pred, stats, live=None) -> None:
        """Everything for one frame: mask file, overlay (when anyone looks), video, window, server
        (``live``: the extra facts /stats shows)."""
        if self.masks is not None:
            target = self.masks / f"{frame.name}.png"
            try:  # not synced frame by frame: an SD card would set the pace
                write_image_atomic(target, pred, durable=False)
            except OutputError as e:
                self.warn("masks_not_written", str(e))
            except OSError as e:
                self.warn("masks_not_written", f"cannot write mask {target}: {e}")
        view = None
        if self.drawing:
            t0 = time.perf_counter()
            view = blend(frame.image, pred, self.table, self.alpha, self._scratch)
            self.legend.draw(view, pred)
            draw_status(view, stats.line())
            stats.add("overlay", 1000 * (time.perf_counter() - t0))
            if self.video:
                self.video.write(view, frame.captured)
            if self.show:
                self.latest_view = view
        if self.serve is not None:
            self.serve.publish(view, stats, live)

    def show_latest(self) -> bool:
        """Show the newest overlay; False when the user closed the window (q / Esc)."""
        import cv2

        view, self.latest_view = self.latest_view, None
        if view is not None:
            cv2.imshow("edgeseg", cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (27, ord("q"))

    def tick(self) -> None:
        """The run's checkpoint: a video segment that is old enough is closed."""
        if self.video:
            self.video.tick()

    def close(self, ok: bool = True) -> None:
        """Release everything; with ``ok`` False (the run failed) the video segment in progress
        is removed."""
        import cv2

        if self.video:
            self.video.close(ok)
        if self.show:
            cv2.destroyAllWindows()
