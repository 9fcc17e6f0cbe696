"""Where a run's results go: the overlay drawn once per frame and handed to a window, a video
file, the preview server; label maps as PNGs. Problems while writing are counted, not fatal:
a full disk stops one output (said once, with the free space), the others go on."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path


from edgeseg.core.files import OutputError, write_image_atomic
from edgeseg.core.labels import palette
from edgeseg.runtime.run.overlay import Legend, blend, draw_status
from edgeseg.runtime.run.recording import SEGMENT_SECONDS, VideoSink  # noqa: F401 - SEGMENT_SECONDS for the loop

log = logging.getLogger("edgeseg")
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

    STATUS_EVERY = 0.25  # seconds between updates of the status line drawn on the overlay

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
        self._status, self._status_at = "", float("-inf")

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
