"""Scoring exported models on labelled frames with the TF-free runtime."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeseg import metrics
from edgeseg.data.base import DatasetInfo
from edgeseg.data.check import read_image, read_label
from edgeseg.core.files import write_image_atomic
from edgeseg.runtime.segmenter import Segmenter


def evaluate_tflite(model_path, items, info: DatasetInfo, threads: int = 2, progress=None) -> dict:
    """Confusion matrix and per-frame inference latency of a .tflite model over (image, label)
    pairs, predictions at each frame's own resolution."""
    seg = Segmenter(model_path, threads=threads)
    if seg.meta.num_classes != info.num_classes:
        raise ValueError(f"{model_path} has {seg.meta.num_classes} classes, the dataset {info.num_classes}")
    cm = np.zeros((info.num_classes, info.num_classes), np.int64)
    latencies = []
    for image_path, label_path in items:
        image = read_image(Path(image_path))
        label, _ = read_label(Path(label_path), info)
        t0 = time.perf_counter()
        pred = seg.predict(image)
        latencies.append(time.perf_counter() - t0)
        cm += metrics.confusion_matrix(label, pred, info.num_classes)
        if progress:
            progress(1)
    return {"cm": cm, "latency_ms": 1000 * np.asarray(latencies), "precision": seg.meta.precision,
            "bytes": Path(model_path).stat().st_size}


def bar_chart(per_model: dict, class_names, path: Path, width: int = 900) -> Path:
    """A per-class IoU bar chart (one colour per model), drawn with OpenCV."""
    import cv2

    names = list(per_model)
    palette = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193)]
    row_h, bar_h, left = 14 * len(names) + 10, 12, 170
    height = 40 + row_h * len(class_names) + 20 * len(names)
    img = np.full((height, width, 3), 255, np.uint8)
    scale = width - left - 60
    for i, cls in enumerate(class_names):
        y = 30 + i * row_h
        cv2.putText(img, cls[:20], (8, y + bar_h), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, name in enumerate(names):
            iou = per_model[name].get(cls) or 0.0
            yy = y + j * 14
            color = palette[j % len(palette)]
            cv2.rectangle(img, (left, yy), (left + int(iou * scale), yy + bar_h - 2), color, -1)
            cv2.putText(img, f"{iou:.3f}", (left + int(iou * scale) + 4, yy + bar_h - 3),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    for j, name in enumerate(names):
        y = height - 20 * (len(names) - j)
        cv2.rectangle(img, (left, y), (left + 14, y + 12), palette[j % len(palette)], -1)
        cv2.putText(img, name, (left + 20, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "per-class IoU", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    write_image_atomic(path, img)
    return path
