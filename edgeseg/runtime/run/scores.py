"""Scoring a live run: ground-truth labels looked up by frame name (`--labels DIR`), and the
confusion matrices of the model against them and against a float model (`--compare`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core import metrics
from edgeseg.core.images import UnreadableLabel, read_label
from edgeseg.core.labels import LabelMap


class LabelLookup:
    """Label maps for frames, by frame name, from ``--labels DIR``, decoded with the label map the
    model carries in its metadata (e.g. CamVid's void id 11 -> ignore)."""

    def __init__(self, folder: Path, label_map: LabelMap):
        self.folder = Path(folder)
        self.label_map = label_map

    def get(self, name: str):
        """The frame's train ids, or None when it has no (readable) label file."""
        try:
            return read_label(self.folder / f"{name}.png", self.label_map)[0]
        except UnreadableLabel:
            return None


def _zeros(n: int) -> np.ndarray:
    return np.zeros((n, n), np.int64)


@dataclass
class LabelScore:
    """The model against the labels of the frames that have one."""

    num_classes: int
    cm: np.ndarray = None
    frames: int = 0

    def __post_init__(self):
        self.cm = _zeros(self.num_classes)

    def add(self, label, pred) -> None:
        self.frames += 1
        self.cm += metrics.confusion_matrix(label, pred, self.num_classes)

    def summary(self, class_names) -> dict:
        if not self.frames:
            return {}
        return {"labelled_frames": self.frames, "miou": metrics.mean_iou(self.cm),
                "per_class_iou": metrics.summarize(self.cm, class_names)["per_class_iou"]}


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
