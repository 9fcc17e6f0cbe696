"""What every dataset format provides: class metadata, a label map and (image, label) pairs.

A format module exposes ``info(root) -> DatasetInfo`` and ``pairs(root, split) -> Pairs``. All
formats map their label files to *train ids* ``0..num_classes-1`` with ``IGNORE_LABEL`` (255)
for pixels that count in neither loss nor metrics. This module is numpy-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import DataError

IGNORE_LABEL = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack an ``(..., 3)`` uint8 RGB array into int32 keys ``r<<16 | g<<8 | b``."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class LabelMap:
    """Raw label values -> train ids.

    Args:
        ids: raw single-channel value -> train id (``IGNORE_LABEL`` for void classes). Values
            missing from the table are *unknown*: mapped to ignore and reported by `data check`.
        colors: packed RGB colour -> train id, for datasets whose label files store colours
            (Pascal VOC palette PNGs decode to colours). Grey single-channel files of the same
            dataset are read through ``ids``.
    """

    ids: dict[int, int]
    colors: dict[int, int] = field(default_factory=dict)

    def id_lut(self) -> np.ndarray:
        """A 256-entry uint8 table for single-channel labels (unknown values -> ignore)."""
        lut = np.full(256, IGNORE_LABEL, np.uint8)
        for raw, train in self.ids.items():
            if 0 <= raw < 256:
                lut[raw] = train
        return lut

    def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map a decoded label (HxW ids or HxWx3 RGB) to train ids.

        Returns:
            ``(train_ids, unknown)``: uint8 train ids and a bool mask of unknown raw values.
        """
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[..., 0]
        if raw.ndim == 2:
            known = np.zeros(256, bool)
            known[[k for k in self.ids if 0 <= k < 256]] = True
            raw = raw.astype(np.int64)
            if raw.max(initial=0) > 255:
                raise DataError(f"label values up to {raw.max()} do not fit 8 bits")
            return self.id_lut()[raw], ~known[raw]
        if not self.colors:
            grey = raw[..., 0]
            if np.array_equal(grey, raw[..., 1]) and np.array_equal(grey, raw[..., 2]):
                return self.encode(grey)
            raise DataError("label image has colour channels but this format expects class ids")
        keys = pack_rgb(raw)
        table = dict(self.colors)
        for raw_id, train in self.ids.items():  # grey-encoded ids of the same dataset
            table.setdefault(int(pack_rgb(np.array([raw_id] * 3))), train)
        uniq, inverse = np.unique(keys, return_inverse=True)
        mapped = np.array([table.get(int(k), IGNORE_LABEL) for k in uniq], np.uint8)
        unknown = np.array([int(k) not in table for k in uniq], bool)
        inverse = inverse.reshape(keys.shape)
        return mapped[inverse], unknown[inverse]


@dataclass(frozen=True)
class DatasetInfo:
    """Class metadata of a dataset.

    Args:
        name: format name (``camvid``, ``cityscapes``, ...).
        class_names: one name per train id.
        colors: one RGB colour per train id, for overlays.
        label_map: how label files map to train ids.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    label_map: LabelMap
    ignore_label: int = IGNORE_LABEL

    def __post_init__(self):
        if len(self.class_names) != len(self.colors):
            raise DataError(
                f"{self.name}: {len(self.class_names)} class names but {len(self.colors)} colours"
            )
        if not 1 < len(self.class_names) < IGNORE_LABEL:
            raise DataError(f"{self.name}: need 2..254 classes, got {len(self.class_names)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Pairs:
    """(image, label) file pairs of one split, and the images that have no label."""

    items: list[tuple[Path, Path]]
    unpaired: list[Path] = field(default_factory=list)
    expected_label: dict[Path, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """A loaded split: metadata plus checked pairs."""

    info: DatasetInfo
    root: Path
    split: str
    items: list[tuple[Path, Path]]

    @property
    def image_paths(self) -> list[str]:
        return [str(i) for i, _ in self.items]

    @property
    def label_paths(self) -> list[str]:
        return [str(l) for _, l in self.items]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def pair_by_stem(images: list[Path], label_dir: Path, label_name) -> Pairs:
    """Pair each image with ``label_dir / label_name(image)``; collect images without one."""
    return pair_files(images, lambda image: label_dir / label_name(image))


def pair_files(images: list[Path], label_of) -> Pairs:
    """Pair each image with the path ``label_of(image)``; collect images without one."""
    items, unpaired, expected = [], [], {}
    for image in images:
        label = label_of(image)
        if label.is_file():
            items.append((image, label))
        else:
            unpaired.append(image)
            expected[image] = label
    return Pairs(items, unpaired, expected)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what} not found: {path}")
    return path
