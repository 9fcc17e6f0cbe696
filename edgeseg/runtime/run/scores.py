"""Scoring a live run: ground-truth labels looked up by frame name (`--labels DIR`), and the
confusion matrices of the model against them and against a float model (`--compare`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core import metrics
from edgeseg.core.errors import DataError
from edgeseg.core.images import read_raw_label
from edgeseg.core.labels import LabelMap, describe_value


@dataclass(frozen=True)
class Refusal:
    """Why a frame's label is not scored: a kind (counted in the summary's warnings) and the line
    said the first time."""

    kind: str
    message: str


class LabelLookup:
    """Label maps for frames, by frame name, from ``--labels DIR``, decoded with the label map the
    model carries in its metadata (e.g. CamVid's void id 11 -> ignore). Every label is checked
    before it is scored: it must decode, hold ids (or, for a model whose labels are colours, the
    model's colours), only values the model knows (its classes and the ignored ones), and be the
    frame's size."""

    def __init__(self, folder: Path, label_map: LabelMap, num_classes: int | None = None):
        self.folder = Path(folder)
        self.label_map = label_map
        self.num_classes = num_classes

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.png"

    def get(self, name: str):
        """The frame's train ids, or None when it has no (acceptable) label file."""
        return self.check(name)[0]

    def check(self, name: str, shape=None) -> tuple[np.ndarray | None, Refusal | None]:
        """``(train ids, None)``; ``(None, None)``: the frame has no label file; ``(None,
        Refusal)``: it has one that cannot be right (``shape``: the frame's, HxW)."""
        path = self.path(name)
        if not path.is_file():
            return None, None
        try:
            raw = read_raw_label(path)
        except DataError as e:
            return None, Refusal("label_unreadable", f"{e}; such labels are not scored")
        try:
            label, unknown = self.label_map.encode(raw)
        except DataError as e:
            return None, Refusal("label_wrong_channels", f"label {path}: {e}; such labels are not scored")
        if unknown.any():
            _, values = self.label_map.census(raw)
            listed = ", ".join(f"{describe_value(v)} ({n:,} px)"
                               for v, n in sorted(values.items(), key=lambda kv: -kv[1])[:5])
            classes = f"the model's {self.num_classes} classes" if self.num_classes else "the model's classes"
            return None, Refusal("label_unknown_ids",
                                 f"label {path} holds {listed}, outside {classes} "
                                 f"(valid: {self.label_map.valid_values()}); such labels are not scored")
        if shape is not None and tuple(label.shape) != tuple(shape[:2]):
            return None, Refusal("label_wrong_size",
                                 f"label {path} is {label.shape[1]}x{label.shape[0]} but the frame is "
                                 f"{shape[1]}x{shape[0]} (WxH); such labels are not scored")
        return label, None


def _zeros(n: int) -> np.ndarray:
    return np.zeros((n, n), np.int64)


@dataclass
class LabelScore:
    """The model against the labels of the frames that have one, and what was not scored: frames
    without a label file, labels refused (:class:`LabelLookup`)."""

    num_classes: int
    cm: np.ndarray = None
    frames: int = 0
    refused: int = 0
    unlabelled: int = 0
    folder: str | None = None  # --labels, once a frame was looked up
    first_unlabelled: str | None = None

    def __post_init__(self):
        self.cm = _zeros(self.num_classes)

    def add(self, label, pred) -> None:
        self.frames += 1
        self.cm += metrics.confusion_matrix(label, pred, self.num_classes)

    def looked_up(self, folder, name: str, label, refusal) -> None:
        """A frame's label looked up in ``folder``: counted as not scored when there is none
        (``label`` and ``refusal`` None) or it was refused."""
        self.folder = str(folder)
        if label is not None:
            return
        if refusal is None:
            self.unlabelled += 1
            self.first_unlabelled = self.first_unlabelled or name
        else:
            self.refused += 1

    def summary(self, class_names) -> dict:
        if self.folder is None and not self.frames:
            return {}
        out = {"labelled_frames": self.frames}
        if self.folder is not None:
            out.update({"labels_refused": self.refused, "unlabelled_frames": self.unlabelled,
                        "labels_folder": self.folder})
            if self.first_unlabelled:
                out["first_unlabelled_frame"] = self.first_unlabelled
        if self.frames:
            out.update({"miou": metrics.mean_iou(self.cm),
                        "per_class_iou": metrics.summarize(self.cm, class_names)["per_class_iou"]})
        return out


def label_score_line(s: dict) -> str:
    """The mIoU line of a run summary: what it rests on, and which frames were not scored."""
    refused, unlabelled = s.get("labels_refused", 0), s.get("unlabelled_frames", 0)
    aside = ", ".join(part for part in (f"{refused} labels refused" if refused else "",
                                        f"{unlabelled} frames without a label" if unlabelled else "") if part)
    aside = f" ({aside})" if aside else ""
    if s["labelled_frames"]:
        return f"mIoU on {s['labelled_frames']} labelled frames{aside}: {s['miou']:.4f}"
    if refused:
        return f"0 labelled frames{aside}: every label found in {s['labels_folder']} was refused (see above)"
    first = s.get("first_unlabelled_frame")
    example = f" (frame {first} would have {first}.png)" if first else ""
    return (f"0 labelled frames: no label in {s.get('labels_folder')} matches the name of any of the "
            f"{s['frames']} frames{example}")


@dataclass
class Comparison:
    """The model against a float model on every Nth frame, and both against the labels where a
    frame has one: agreement mIoU and the true mIoU drop."""

    num_classes: int
    agreement: np.ndarray = None
    truth_model: np.ndarray = None
    truth_float: np.ndarray = None
    frames: int = 0
    labelled: int = 0

    def __post_init__(self):
        self.agreement, self.truth_model, self.truth_float = (_zeros(self.num_classes) for _ in range(3))

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
