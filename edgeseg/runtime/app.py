"""The `edgeseg run` loop: frames -> segmenter -> overlay -> window / video / masks / MJPEG,
with live statistics and, optionally, int8-versus-float agreement and labelled mIoU."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg import metrics
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
    """An mp4 written under a temporary name and renamed when the run ends."""

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self.fps = fps
        self.writer = None

    def write(self, rgb: np.ndarray):
        import cv2

        if self.writer is None:
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self):
        if self.writer is not None:
            self.writer.release()
            os.replace(self.tmp, self.path)


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
        self.frames += 1
        self.agreement += metrics.confusion_matrix(float_pred, pred, self.num_classes)
        if label is not None and label.shape == pred.shape:
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

    @property
    def drawing(self) -> bool:
        o = self.options
        return bool(self.video or self.show or o.serve or o.draw)

    def handle(self, frame, pending) -> None:
        import cv2

        meta, options, stats = self.seg.meta, self.options, self.stats
        pred = self.seg.finish(pending)
        stats.add("capture", frame.capture_ms)
        for stage, ms in pending.times.items():
            stats.add(stage, ms)
        label = self.labels.get(frame.name) if self.labels else None
        if label is not None and label.shape == pred.shape:
            self.labelled += 1
            self.truth += metrics.confusion_matrix(label, pred, meta.num_classes)
        if self.comparison is not None and stats.frames % options.compare_every == 0:
            self.comparison.add(pred, self.compare.predict(frame.image), label)
        if options.save_masks:
            cv2.imwrite(str(Path(options.save_masks) / f"{frame.name}.png"), pred)
        if self.drawing:
            t0 = time.perf_counter()
            view = blend(frame.image, pred, self.table, options.alpha)
            self.legend.draw(view, pred)
            draw_status(view, stats.line())
            stats.add("overlay", 1000 * (time.perf_counter() - t0))
            if self.video:
                self.video.write(view)
            if options.serve:
                options.serve.publish(view, stats)
            if self.show:
                self.latest_view = view
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

    def close(self) -> None:
        import cv2

        if self.video:
            self.video.close()
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
        return out


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
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.close()
    summary = run.summary()
    if options.stats_json:
        Path(options.stats_json).write_text(json.dumps(summary, indent=2))
    return summary
