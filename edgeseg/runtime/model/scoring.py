"""Scoring an exported model on labelled frames with the TF-free runtime: predictions at each
frame's own resolution with the exact upsampling (`edgeseg run --upsample exact`; its default
`auto` is the same for frames no larger than the model's input)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeseg.core import metrics
from edgeseg.core.errors import DataError
from edgeseg.core.images import read_image, read_label
from edgeseg.core.labels import LabelMap
from edgeseg.core.metrics import Score
from edgeseg.runtime.model.segmenter import Segmenter


def describe_classes(names, shown: int = 4) -> str:
    """``12 (sky, building, pole, road, ...)``: enough to tell two class lists apart in one line."""
    names = list(names)
    return f"{len(names)} ({', '.join(names[:shown])}{', ...' if len(names) > shown else ''})"


def same_classes(a, b) -> bool:
    return [c.lower() for c in a] == [c.lower() for c in b]


def score_model_file(model_path, items, label_map: LabelMap, class_names, threads: int = 2,
                     progress=None) -> Score:
    """Confusion matrix and median per-frame latency of a model file over (image, label) pairs,
    with the exact upsampling at every frame's full resolution."""
    seg = Segmenter(model_path, threads=threads, upsample="exact")
    n = len(class_names)
    if not same_classes(seg.meta.class_names, class_names):
        raise DataError(f"{model_path} was trained on other classes than the dataset's: "
                        f"{describe_classes(seg.meta.class_names)} vs {describe_classes(class_names)}")
    cm = np.zeros((n, n), np.int64)
    latencies = []
    for image_path, label_path in items:
        image = read_image(Path(image_path))
        label, _ = read_label(Path(label_path), label_map)
        t0 = time.perf_counter()
        pred = seg.predict(image)
        latencies.append(time.perf_counter() - t0)
        cm += metrics.confusion_matrix(label, pred, n)
        if progress:
            progress(1)
    return Score(name=Path(model_path).name, kind=seg.meta.precision, cm=cm, class_names=list(class_names),
                 frames=len(items), path=str(model_path), bytes=Path(model_path).stat().st_size,
                 latency_ms=float(1000 * np.median(latencies)) if latencies else None)
