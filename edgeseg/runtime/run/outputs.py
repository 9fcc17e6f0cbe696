"""Where a run's results go: the overlay drawn once per frame and handed to a window, a video
file, the preview server; label maps as PNGs. Problems while writing are counted, not fatal."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.core.files import atomic_path
from edgeseg.core.labels import palette
from edgeseg.runtime.run.overlay import Legend, blend, draw_status

log = logging.getLogger("edgeseg")


class VideoSink:
    """A video written under a temporary name and renamed when the run ends (removed if the run
    fails). The frame size is the first frame's. ``fps``: the rate to play at (a file source's
    own); None measures it from the capture times of the first frames written (the median
    interval), so a camera's video plays at the speed the frames were segmented, frames dropped
    by a slow model included."""

    FOURCC = "mp4v"
    MEASURE_FRAMES = 10  # frames held back to measure the rate (None fps)
    MEASURE_SECONDS = 3.0
    DEFAULT_FPS = 15.0  # a video of one frame

    def __init__(self, path: Path, fps: float | None = None):
        self.path = Path(path)
        self.fps = fps
        self.writer = None
        self._held: list = []  # (rgb copy, capture time) until the rate is known
        self._target = atomic_path(self.path)
        self.tmp = self._target.__enter__()

    @classmethod
    def check(cls, path: Path, fps: float = 15.0) -> None:
        """Open a writer for ``path`` on a small frame and remove it again: OSError naming the
        file before the run when its folder is not writable or OpenCV has no encoder for it."""
        import tempfile

        import cv2

        path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".probe-{path.stem}.", suffix=path.suffix, dir=path.parent)
        except OSError as e:
            raise OSError(f"cannot write video {path}: {e.strerror or e}") from None
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

    def write(self, rgb: np.ndarray, captured: float | None = None):
        """Add a frame; ``captured``: its capture time (seconds, any clock), for a measured rate."""
        if self.writer is None and self.fps is None:
            self._held.append((rgb.copy(), captured))  # the overlay's buffer is reused next frame
            first = self._held[0][1]
            if (len(self._held) < self.MEASURE_FRAMES and
                    (captured is None or first is None or captured - first < self.MEASURE_SECONDS)):
                return
            self._flush_held()
            return
        self._write(rgb)

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

        if self.writer is None:
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.FOURCC), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, ok: bool = True):
        """Finish the file (``ok``), or remove the partial one."""
        if ok and self._held:
            self._flush_held()
        if self.writer is not None:
            self.writer.release()
        if ok and self.writer is not None:
            self._target.__exit__(None, None, None)
        else:
            error = RuntimeError("run failed")
            self._target.__exit__(RuntimeError, error, None)


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
        save: an overlay video file; ``save_fps`` its rate (None: measured, see VideoSink).
        save_masks: a folder for the label maps (PNG, named like the frames).
        serve: an :class:`~edgeseg.runtime.serve.server.MJPEGServer`.
        draw: draw the overlay even with nowhere to send it (benchmarks).
        warn: ``warn(kind, message)``: counts a problem for the run's summary.
    """

    STATUS_EVERY = 0.25  # seconds between updates of the status line drawn on the overlay

    def __init__(self, meta, show=False, save=None, save_masks=None, serve=None, draw=False, alpha=0.5,
                 save_fps=None, warn=None):
        self.table = palette(meta.colors)
        self.legend = Legend(meta.class_names, meta.colors)
        self._scratch: dict = {}  # blend()'s buffers, reused frame to frame
        self.video = VideoSink(save, save_fps) if save else None
        self.masks = Path(save_masks) if save_masks else None
        if self.masks is not None:
            self.masks.mkdir(parents=True, exist_ok=True)
        self.serve, self.draw, self.alpha = serve, draw, alpha
        self.warn = warn or (lambda kind, message: log.warning(message))
        self.show = show
        if show:
            self.show, why = gui_available()
            if not self.show:
                log.warning(why)
        self.latest_view = None  # for the window, shown by the main thread
        self._status, self._status_at = "", float("-inf")

    @property
    def drawing(self) -> bool:
        return bool(self.video or self.show or self.draw or (self.serve is not None and self.serve.wants_frame()))

    def write(self, frame, pred, stats, live=None) -> None:
        """Everything for one frame: mask file, overlay (when anyone looks), video, window, server
        (``live``: the extra facts /stats shows)."""
        import cv2

        if self.masks is not None:
            target = self.masks / f"{frame.name}.png"
            if not cv2.imwrite(str(target), pred):
                self.warn("masks_not_written", f"cannot write mask {target}")
        view = None
        if self.drawing:
            t0 = time.perf_counter()
            view = blend(frame.image, pred, self.table, self.alpha, self._scratch)
            self.legend.draw(view, pred)
            if t0 - self._status_at >= self.STATUS_EVERY:  # its percentiles cost more than the text
                self._status, self._status_at = stats.line(), t0
            draw_status(view, self._status)
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

    def close(self, ok: bool = True) -> None:
        """Release everything; with ``ok`` False (the run failed) the partial video is removed."""
        import cv2

        if self.video:
            self.video.close(ok)
        if self.show:
            cv2.destroyAllWindows()
