"""Reading frames and label files from disk with OpenCV, the way the device does: RGB uint8
images, labels mapped to train ids. Errors name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.labels import LabelMap

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class UnreadableLabel(DataError):
    """A label file that is missing or cannot be decoded as an image."""


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image(p))


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image; DataError naming the file if it cannot be decoded."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_raw_label(path: Path) -> np.ndarray:
    """A label file as stored: HxW values, or HxWx3 RGB for colour (palette) files."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UnreadableLabel(f"cannot read label {path}")
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw[..., :3], cv2.COLOR_BGR2RGB)
    return raw


def read_label(path: Path, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """Train ids (uint8) and the mask of unknown raw values; DataError naming the file."""
    raw = read_raw_label(path)
    try:
        return label_map.encode(raw)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
