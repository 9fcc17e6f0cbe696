"""The `edgeseg run` loop: frames -> segmenter -> overlay -> window / video / masks / MJPEG,
with live statistics and, optionally, int8-versus-float agreement and labelled mIoU."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg import metrics
from edgeseg.core.files import atomic_path, write_json_atomic
from edgeseg.runtime.overlay import Legend, blend, draw_status, palette
from edgeseg.runtime.stats import RunStats

log = logging.getLogger("edgeseg")


@dataclass
class RunOptions:
    show: bool = False
    save: Path | None = None
    save_masks: Path | None = None
    stats_json: Path | None = None
    compare_every: int = 10
    labels: Path | None = None
    max_frames: int | None = None
    status_every: float = 2.0
    alpha: float = 0.5
    draw: bool = False  # draw the overlay even with no window, video or server (benchmarks)
    fps_hint: float = 15.0
    serve: object = None  # an MJPEGServer
    pipeline: bool = True  # overlap decoding, inference and post-processing in threads
    echo: object = print


class VideoSink:
    """A video written under a temporary name and renamed when the run ends (removed if the run
    fails). The frame size is the first frame's."""

    FOURCC = "mp4v"

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self.writer = None
        self._target = atomic_path(self.path)
        self.tmp = self._target.__enter__()

    @classmethod
    def check(cls, path: Path, fps: float = 15.0) -> None:
        """Open a writer for ``path`` on a small frame and remove it again: OSError naming the
        file before the run when its folder is not writable or OpenCV has no encoder for it."""
        import cv2
        import tempfile

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

    def write(self, rgb: np.ndarray):
        import cv2

        if self.writer is None:
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.FOURCC), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, ok: bool = True):
        """Finish the file (``ok``), or remove the partial one."""
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


class LabelLookup:
    """Ground-truth label maps for frames, by frame name, from ``--labels DIR``."""

    def __init__(self, folder: Path, dataset: str | None, num_classes: int):
        from edgeseg.data import FORMATS
        from edgeseg.data.base import IGNORE_LABEL, LabelMap

        self.folder = Path(folder)
        module = FORMATS.get(dataset or "")
        info = getattr(module, "INFO", None)
        self.label_map = info.label_map if info is not None and info.num_classes == num_classes else \
            LabelMap(ids={**{i: i for i in range(num_classes)}, IGNORE_LABEL: IGNORE_LABEL})

    def get(self, name: str):
        """The frame's train ids, or None when it has no (readable) label file."""
        from edgeseg.data.check import UnreadableLabel, read_label_map

        try:
            return read_label_map(self.folder / f"{name}.png", self.label_map)[0]
        except UnreadableLabel:
            return None


@dataclass
class Comparison:
    """Running confusion matrices: int8 vs float predictions, and both vs labels."""

    num_classes: int
    agreement: np.ndarray = None
    truth_model: np.ndarray = None
    truth_float: np.ndarray = None
    frames: int = 0
    labelled: int = 0

    def __post_init__(self):
        z = lambda: np.zeros((self.num_classes, self.num_classes), np.int64)  # noqa: E731
        self.agreement, self.truth_model, self.truth_float = z(), z(), z()

    def add(self, pred, float_pred, label=None):
        """``label``: the frame's labels, or None (no label, or one of another shape)."""
        self.frames += 1
        self.agreement += metrics.confusion_matrix(float_pred, pred, self.num_classes)
        if label is not None:
            self.labelled += 1
            self.truth_model += metrics.confusion_matrix(label, pred, self.num_classes)
            self.truth_float += metrics.confusion_matrix(label, float_pred, self.num_classes)

    def summary(self, class_names) -> dict:
        out = {"frames": self.frames, "agreement_miou": metrics.mean_iou(self.agreement),
               "agreement_per_class": metrics.summarize(self.agreement, class_names)["per_class_iou"]}
        if self.labelled:
            m, f = metrics.mean_iou(self.truth_model), metrics.mean_iou(self.truth_float)
            out.update({"labelled_frames": self.labelled, "miou": m, "float_miou": f, "drop_points": 100 * (f - m)})
        return out


class _Finisher:
    """The second stage of the run loop, in its own thread: post-processing, statistics,
    comparison, overlay and outputs of frame n while the interpreter runs frame n+1 (LiteRT
    and OpenCV release the GIL). Frames are handled in order; an error is raised in the
    caller at the next ``submit`` or at ``close``."""

    def __init__(self, handle, depth: int = 2):
        import queue
        import threading

        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="edgeseg-finish", daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._handle(*item)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    self._error = e

    def _raise(self):
        if self._error is not None:
            raise self._error

    def submit(self, *item):
        self._raise()
        self._queue.put(item)

    def close(self):
        self._queue.put(None)
        self._thread.join()
        self._raise()


class StreamRun:
    """What one `edgeseg run` accumulates: statistics, label and float-model comparisons, and
    the outputs (window, video, masks, MJPEG). ``handle`` takes one inferred frame."""

    def __init__(self, seg, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None):
        meta = seg.meta
        self.seg, self.options, self.reader, self.compare, self.labels = seg, options, reader, compare, labels
        self.table = palette(meta.colors)
        self.legend = Legend(meta.class_names, meta.colors)
        self.stats = RunStats()
        self.comparison = Comparison(meta.num_classes) if compare is not None else None
        self.truth = np.zeros((meta.num_classes, meta.num_classes), np.int64)
        self.labelled = 0
        self.video = VideoSink(options.save, options.fps_hint) if options.save else None
        if options.save_masks:
            Path(options.save_masks).mkdir(parents=True, exist_ok=True)
        self.show = options.show
        if self.show:
            self.show, why = gui_available()
            if not self.show:
                log.warning(why)
        self.latest_view = None  # for the window, drawn by the main thread
        self.last_status = time.perf_counter()
        self.interrupted = False
        self.warnings: dict[str, int] = {}  # what could not be done, counted, in the summary

    def warn(self, kind: str, message: str) -> None:
        """Count a problem; say it the first time (the summary gives the count)."""
        if kind not in self.warnings:
            log.warning("%s (counted in the summary)", message)
        self.warnings[kind] = self.warnings.get(kind, 0) + 1

    @property
    def drawing(self) -> bool:
        o = self.options
        return bool(self.video or self.show or o.draw or (o.serve is not None and o.serve.watching))

    def handle(self, frame, pending) -> None:
        import cv2

        meta, options, stats = self.seg.meta, self.options, self.stats
        pred = self.seg.finish(pending)
        stats.add("capture", frame.capture_ms)
        for stage, ms in pending.times.items():
            stats.add(stage, ms)
        label = self.labels.get(frame.name) if self.labels else None
        if label is not None and label.shape != pred.shape:
            self.warn("labels_of_another_size", f"label {frame.name}.png is {label.shape[1]}x{label.shape[0]} "
                      f"but the frame is {pred.shape[1]}x{pred.shape[0]}; such frames are not scored")
            label = None
        if label is not None:
            self.labelled += 1
            self.truth += metrics.confusion_matrix(label, pred, meta.num_classes)
        if self.comparison is not None and stats.frames % options.compare_every == 0:
            self.comparison.add(pred, self.compare.predict(frame.image), label)
        if options.save_masks:
            target = Path(options.save_masks) / f"{frame.name}.png"
            if not cv2.imwrite(str(target), pred):
                self.warn("masks_not_written", f"cannot write mask {target}")
        view = None
        if self.drawing:
            t0 = time.perf_counter()
            view = blend(frame.image, pred, self.table, options.alpha)
            self.legend.draw(view, pred)
            draw_status(view, stats.line())
            stats.add("overlay", 1000 * (time.perf_counter() - t0))
            if self.video:
                self.video.write(view)
            if self.show:
                self.latest_view = view
        if options.serve is not None:
            options.serve.publish(view, stats)
        stats.frame_done()
        now = time.perf_counter()
        if now - self.last_status >= options.status_every:
            extra = f"  dropped {self.reader.dropped}" if self.reader is not None else ""
            options.echo(stats.line() + extra)
            self.last_status = now

    def show_latest(self) -> bool:
        """Show the newest overlay; False when the user closed the window (q / Esc)."""
        import cv2

        view, self.latest_view = self.latest_view, None
        if view is not None:
            cv2.imshow("edgeseg", cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (27, ord("q"))

    def close(self, ok: bool = True) -> None:
        """Release the outputs; with ``ok`` False (the run failed) the partial video is removed."""
        import cv2

        if self.video:
            self.video.close(ok)
        if self.reader is not None:
            self.reader.stop()
        if self.show:
            cv2.destroyAllWindows()

    def summary(self) -> dict:
        meta = self.seg.meta
        out = {"model": str(self.seg.path), "precision": meta.precision, "interrupted": self.interrupted,
               **self.stats.summary()}
        if self.reader is not None:
            out.update({"dropped_frames": self.reader.dropped, "reconnects": self.reader.reconnects})
        if self.labelled:
            out["labelled_frames"] = self.labelled
            out["miou"] = metrics.mean_iou(self.truth)
            out["per_class_iou"] = metrics.summarize(self.truth, meta.class_names)["per_class_iou"]
        if self.comparison is not None:
            out["compare"] = {"float_model": str(self.compare.path), **self.comparison.summary(meta.class_names)}
        if self.warnings:
            out["warnings"] = dict(self.warnings)
        return out


def _close_quietly_on_error(run: StreamRun, ok: bool) -> None:
    """Close the run's outputs. After a failure, an error while closing is only logged: the
    failure the user must see is the first one."""
    try:
        run.close(ok)
    except Exception as e:  # noqa: BLE001 - re-raised below unless another error is in flight
        if ok:
            raise
        log.warning("while stopping after an error: %s", e)


def run_stream(seg, frames, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None) -> dict:
    """Process frames until the source ends, ``max_frames`` or Ctrl-C; returns the summary.

    With ``options.pipeline`` (the default) three threads overlap: decoding (file and folder
    sources; live sources have their own reader thread), letterbox + inference (this thread),
    and post-processing + overlay + outputs (:class:`_Finisher`).
    """
    from edgeseg.runtime.stream import prefetch

    run = StreamRun(seg, options, reader, compare, labels)
    finisher = _Finisher(run.handle) if options.pipeline else None
    if options.pipeline and reader is None:
        frames = prefetch(frames)
    submitted = 0
    ok = False
    try:
        try:
            for frame in frames:
                pending = seg.infer(frame.image)
                if finisher is not None:
                    finisher.submit(frame, pending)
                else:
                    run.handle(frame, pending)
                submitted += 1
                if run.show and not run.show_latest():
                    break
                if options.max_frames and submitted >= options.max_frames:
                    break
        finally:
            if finisher is not None:
                finisher.close()
        ok = True
    except KeyboardInterrupt:
        run.interrupted = ok = True
    finally:
        _close_quietly_on_error(run, ok)
    summary = run.summary()
    if options.stats_json:
        write_json_atomic(options.stats_json, summary)
    return summary
