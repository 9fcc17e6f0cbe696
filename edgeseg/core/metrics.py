"""Segmentation metrics as pure numpy functions over a confusion matrix.

TF-free on purpose: the device runtime scores int8-vs-float predictions with the same code that
training uses (the Keras metric in :mod:`edgeseg.train.keras_metrics` matches it, tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.labels import IGNORE_LABEL


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int,
                     ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``cm[true, pred]`` pixel counts, skipping ``ignore_label`` and out-of-range labels; a
    prediction outside ``[0, num_classes)`` is a model of other classes: DataError."""
    labels = np.asarray(labels).ravel().astype(np.int64)
    preds = np.asarray(preds).ravel().astype(np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and predictions differ in size: {labels.shape} vs {preds.shape}")
    keep = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    if preds.size and (preds.min() < 0 or preds.max() >= num_classes):
        raise DataError(f"a prediction of class {int(preds.max() if preds.max() >= num_classes else preds.min())} "
                         f"is outside the {num_classes} classes scored")
    idx = labels[keep] * num_classes + preds[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both labels and predictions."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in labels or predictions."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0


def pixel_accuracy(cm: np.ndarray) -> float:
    total = np.asarray(cm).sum()
    return float(np.trace(cm) / total) if total else 0.0


def summarize(cm: np.ndarray, class_names) -> dict:
    """JSON-ready summary: mIoU, pixel accuracy and per-class IoU."""
    iou = per_class_iou(cm)
    return {
        "miou": mean_iou(cm),
        "pixel_accuracy": pixel_accuracy(cm),
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(class_names, iou)},
        "pixels": int(np.asarray(cm).sum()),
    }


def class_mean(per_class_iou: dict, names) -> float | None:
    """Mean IoU of the classes ``names`` (e.g. the rare ones) that the frames scored have; None
    when none of them is present."""
    values = [per_class_iou[n] for n in names if per_class_iou.get(n) is not None]
    return sum(values) / len(values) if values else None


def class_weights(pixel_counts, method: str = "median_freq", max_weight: float = 10.0) -> np.ndarray:
    """Class weights from pixel frequencies.

    ``median_freq`` (Eigen & Fergus 2015, as in SegNet): median(freq) / freq;
    ``inverse_sqrt``: 1 / sqrt(freq), normalised to mean 1. Both clipped to ``max_weight``
    so a class with few pixels does not dominate the loss.
    """
    counts = np.asarray(pixel_counts, np.float64)
    freq = counts / max(counts.sum(), 1.0)
    present = freq > 0
    w = np.ones_like(freq)
    if method == "median_freq":
        w[present] = np.median(freq[present]) / freq[present]
    elif method == "inverse_sqrt":
        w[present] = 1.0 / np.sqrt(freq[present])
        w[present] /= w[present].mean()
    else:
        raise ValueError(f"unknown class-weight method '{method}'")
    return np.minimum(w, max_weight)


@dataclass
class Score:
    """One model scored on one split: its confusion matrix and what it was.

    Args:
        name: shown in tables.
        kind: ``keras`` for a training run, else the exported file's precision (fp32, int8, ...).
        cm: ``cm[true, pred]`` pixel counts over the split.
        class_names: one per class.
        frames: frames scored.
        path: the weights or model file.
        bytes: model file size (exported models).
        latency_ms: median time per frame (exported models, through the runtime).
    """

    name: str
    kind: str
    cm: np.ndarray
    class_names: list
    frames: int
    path: str
    bytes: int | None = None
    latency_ms: float | None = None

    @property
    def summary(self) -> dict:
        return summarize(self.cm, self.class_names)
