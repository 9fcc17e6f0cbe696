"""Pascal VOC 2012 segmentation: ``JPEGImages``, palette PNGs in ``SegmentationClass``
(or grey id PNGs, as in SegmentationClassAug), split lists in ``ImageSets/Segmentation``.
21 classes; the object border (palette index 255) is ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.labels import IGNORE_LABEL, DatasetInfo, LabelMap, pack_rgb
from edgeseg.data.base import Pairs, pair_by_stem

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC palette: bits of the index spread over the high bits of R, G and B."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


_CMAP = voc_colormap()
INFO = DatasetInfo(
    name="voc",
    class_names=CLASS_NAMES,
    colors=tuple(tuple(int(v) for v in _CMAP[i]) for i in range(len(CLASS_NAMES))),
    label_map=LabelMap(
        ids={**{i: i for i in range(len(CLASS_NAMES))}, 255: IGNORE_LABEL},
        colors={
            **{int(pack_rgb(_CMAP[i])): i for i in range(len(CLASS_NAMES))},
            int(pack_rgb(_CMAP[255])): IGNORE_LABEL,
        },
    ),
)


LAYOUT = "JPEGImages/ + SegmentationClass/ (VOC's palette) + ImageSets/Segmentation/SPLIT.txt"
_VOC_VALUES = {*range(len(CLASS_NAMES)), 255}
_VOC_COLOURS = {tuple(int(v) for v in _CMAP[i]) for i in _VOC_VALUES}


def _has_layout(root: Path) -> bool:
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


def _not_voc(root: Path) -> str | None:
    """Why a folder with VOC's layout is not Pascal VOC (None: it is): a few of its masks must
    hold VOC's 21 classes and border, as palette indices, grey ids or VOC's colours (tools export
    their own classes in this layout too)."""
    from edgeseg.data.base import describe_values, mask_values, spread

    masks = sorted((root / "SegmentationClass").glob("*.png"))
    if not masks:
        return f"{root / 'SegmentationClass'} holds no .png masks"
    values, unreadable = mask_values(spread(masks))
    if unreadable:
        return f"its masks cannot be read ({unreadable})"
    wrong = sorted(v for v in values if v not in _VOC_VALUES and v not in _VOC_COLOURS)
    if wrong:
        return f"its masks hold {describe_values(wrong)}, which are not Pascal VOC's 21 classes"
    return None


def detect(root: Path) -> bool:
    return _has_layout(root) and _not_voc(root) is None


def devkit_year(root: Path) -> Path | None:
    """The VOC2012 (or other year) folder inside an extracted VOCdevkit, from ``root`` being the
    devkit or the folder it was extracted into."""
    for devkit in (root, root / "VOCdevkit"):
        years = sorted(p for p in devkit.glob("VOC20*") if _has_layout(p)) if devkit.is_dir() else []
        if years:
            return years[-1]
    return None


def near_miss(root: Path) -> str | None:
    year = devkit_year(root)
    if year is not None:
        return f"it is an extracted VOCdevkit: point --data at {year}"
    if _has_layout(root):
        why = _not_voc(root)
        if why:
            return (f"it has Pascal VOC's layout but {why}: for your own classes use the folder layout "
                    "(classes.txt with 'name R G B' per class, images/, masks/, SPLIT.txt), "
                    "or pass --format voc if it is Pascal VOC")
    return None


def info(root: Path) -> DatasetInfo:
    return INFO


def pairs(root: Path, split: str) -> Pairs:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"VOC split list not found: {listing}")
    images = [root / "JPEGImages" / f"{stem}.jpg" for stem in listing.read_text().split()]
    missing = [image for image in images if not image.is_file()]
    if missing:
        raise DataError(f"{listing} lists '{missing[0].stem}' but {missing[0]} does not exist")
    return pair_by_stem(images, root / "SegmentationClass", lambda image: image.stem + ".png")
