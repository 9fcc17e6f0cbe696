"""`edgeseg data check` and `edgeseg data stats`: scan a dataset with numpy + OpenCV."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.images import read_image, read_label, read_raw_label
from edgeseg.core.labels import DatasetInfo, pack_rgb


@dataclass
class CheckReport:
    """Problems found in one split. ``ok`` when there are none."""

    split: str
    pairs: int = 0
    problems: list[str] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    unknown_ids: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_split(info: DatasetInfo, items, unpaired, expected, split: str, progress=None) -> CheckReport:
    report = CheckReport(split=split, pairs=len(items))
    for image in unpaired:
        report.problems.append(f"missing label: {image} has no {expected.get(image, 'label')}")
    for image_path, label_path in items:
        if progress:
            progress()
        try:
            image = read_image(image_path)
            label, unknown = read_label(label_path, info.label_map)
        except DataError as e:
            report.problems.append(str(e))
            continue
        if image.shape[:2] != label.shape[:2]:
            report.problems.append(
                f"size mismatch: {image_path} is {image.shape[1]}x{image.shape[0]} but "
                f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        report.sizes[f"{image.shape[0]}x{image.shape[1]}"] += 1
        if unknown.any():
            raw = read_raw_label(label_path)
            values = np.unique(raw[unknown] if raw.ndim == 2 else pack_rgb(raw[unknown]))
            report.unknown_ids.update(int(v) for v in values)
            report.problems.append(
                f"unknown label id(s) {', '.join(map(str, values[:5].tolist()))} in {label_path} "
                f"(valid: {_valid_ids(info)})")
    if not items and not unpaired:
        report.problems.append(f"split '{split}' is empty")
    return report


def _valid_ids(info: DatasetInfo) -> str:
    ids = sorted(info.label_map.ids)
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(map(str, ids)) if len(ids) < 12 else f"{ids[0]}..{ids[-1]} (some void)"


def pixel_counts(info: DatasetInfo, label_paths, progress=None) -> np.ndarray:
    """Pixels per train id over the given label files (ignore pixels not counted)."""
    counts = np.zeros(info.num_classes, np.int64)
    for path in label_paths:
        label, _ = read_label(Path(path), info.label_map)
        counts += np.bincount(label.ravel(), minlength=256)[: info.num_classes]
        if progress:
            progress()
    return counts
