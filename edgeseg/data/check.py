"""`edgeseg data check` and `edgeseg data stats`: scan a dataset with numpy + OpenCV."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.data.base import DatasetInfo
from edgeseg.errors import DataError


class UnreadableLabel(DataError):
    """A label file that is missing or cannot be decoded as an image."""


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


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image; DataError naming the file if it cannot be decoded."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """Train ids and the mask of unknown raw values; DataError naming the file if unreadable."""
    return read_label_map(path, info.label_map)


def read_label_map(path: Path, label_map) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_label` with a bare :class:`LabelMap` (the runtime has no DatasetInfo)."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UnreadableLabel(f"cannot read label {path}")
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw[..., :3], cv2.COLOR_BGR2RGB)
    try:
        return label_map.encode(raw)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def check_split(info: DatasetInfo, items, unpaired, expected, split: str, progress=None) -> CheckReport:
    import cv2

    report = CheckReport(split=split, pairs=len(items))
    for image in unpaired:
        report.problems.append(f"missing label: {image} has no {expected.get(image, 'label')}")
    for image_path, label_path in items:
        if progress:
            progress()
        try:
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                raise DataError(f"unreadable image: {image_path}")
            label, unknown = read_label(label_path, info)
        except DataError as e:
            report.problems.append(str(e))
            continue
        if image.shape[:2] != label.shape[:2]:
            report.problems.append(
                f"size mismatch: {image_path} is {image.shape[1]}x{image.shape[0]} but "
                f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        report.sizes[f"{image.shape[0]}x{image.shape[1]}"] += 1
        if unknown.any():
            raw = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
            values = np.unique(raw[unknown] if raw.ndim == 2 else raw[unknown][:, ::-1].astype(int) @ [65536, 256, 1])
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
        label, _ = read_label(Path(path), info)
        counts += np.bincount(label.ravel(), minlength=256)[: info.num_classes]
        if progress:
            progress()
    return counts
