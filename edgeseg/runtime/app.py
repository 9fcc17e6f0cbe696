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
from edgeseg.runtime.overlay import blend, draw_legend, draw_status, palette
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


def run_stream(seg, frames, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None) -> dict:
    """Process frames until the source ends, ``max_frames`` or Ctrl-C; returns the summary."""
    import cv2

    meta = seg.meta
    table = palette(meta.colors)
    stats = RunStats()
    comparison = Comparison(meta.num_classes) if compare is not None else None
    truth = np.zeros((meta.num_classes, meta.num_classes), np.int64)
    labelled = 0
    video = VideoSink(options.save, options.fps_hint) if options.save else None
    if options.save_masks:
        Path(options.save_masks).mkdir(parents=True, exist_ok=True)
    show = options.show
    if show:
        show, why = gui_available()
        if not show:
            log.warning(why)
    last_status = time.perf_counter()
    interrupted = False
    try:
        for frame in frames:
            stats.add("capture", frame.capture_ms)
            pred, times = seg.segment(frame.image)
            for stage, ms in times.items():
                stats.add(stage, ms)
            label = labels.get(frame.name) if labels else None
            if label is not None and label.shape == pred.shape:
                labelled += 1
                truth += metrics.confusion_matrix(label, pred, meta.num_classes)
            if comparison is not None and stats.frames % options.compare_every == 0:
                comparison.add(pred, compare.predict(frame.image), label)
            if options.save_masks:
                cv2.imwrite(str(Path(options.save_masks) / f"{frame.name}.png"), pred)
            if video or show or options.serve or options.draw:
                t0 = time.perf_counter()
                view = blend(frame.image, pred, table, options.alpha)
                draw_legend(view, meta.class_names, meta.colors, np.bincount(pred.ravel(), minlength=meta.num_classes) > 0)
                draw_status(view, stats.line())
                stats.add("overlay", 1000 * (time.perf_counter() - t0))
                if video:
                    video.write(view)
                if options.serve:
                    options.serve.publish(view, stats)
                if show:
                    cv2.imshow("edgeseg", cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
            stats.frame_done()
            now = time.perf_counter()
            if now - last_status >= options.status_every:
                extra = f"  dropped {reader.dropped}" if reader is not None else ""
                options.echo(stats.line() + extra)
                last_status = now
            if options.max_frames and stats.frames >= options.max_frames:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if video:
            video.close()
        if reader is not None:
            reader.stop()
        if show:
            cv2.destroyAllWindows()
    summary = {"model": str(seg.path), "precision": meta.precision, "interrupted": interrupted, **stats.summary()}
    if reader is not None:
        summary.update({"dropped_frames": reader.dropped, "reconnects": reader.reconnects})
    if labelled:
        summary["labelled_frames"] = labelled
        summary["miou"] = metrics.mean_iou(truth)
        summary["per_class_iou"] = metrics.summarize(truth, meta.class_names)["per_class_iou"]
    if comparison is not None:
        summary["compare"] = {"float_model": str(compare.path), **comparison.summary(meta.class_names)}
    if options.stats_json:
        Path(options.stats_json).write_text(json.dumps(summary, indent=2))
    return summary
