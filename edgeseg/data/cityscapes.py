"""Cityscapes fine annotations mapped to the 19 evaluation classes (official label table).

Layout: ``leftImg8bit/SPLIT/CITY/X_leftImg8bit.png`` and ``gtFine/SPLIT/CITY/X_gtFine_labelIds.png``.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.labels import IGNORE_LABEL, DatasetInfo, LabelMap
from edgeseg.data.base import Pairs, pair_files, require_dir

# (label id, train id) from cityscapesscripts/helpers/labels.py; every other id 0..33 is void.
_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
INFO = DatasetInfo(
    name="cityscapes",
    class_names=CLASS_NAMES,
    colors=COLORS,
    label_map=LabelMap(ids={i: _TRAIN_IDS.get(i, IGNORE_LABEL) for i in range(34)}),
)

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


LAYOUT = "leftImg8bit/SPLIT/CITY/*_leftImg8bit.png + gtFine/SPLIT/CITY/*_gtFine_labelIds.png"
_TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"


def detect(root: Path) -> bool:
    """Cityscapes' folders, and label files under its names in city folders."""
    return ((root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()
            and next((root / "gtFine").glob(f"*/*/*{_LABEL_SUFFIX}"), None) is not None)


def near_miss(root: Path) -> str | None:
    """What is wrong with a folder that is almost a Cityscapes copy."""
    images, labels = root / "leftImg8bit", root / "gtFine"
    if not images.is_dir() and not labels.is_dir():
        return None
    if not labels.is_dir():
        return f"it has {images} but no gtFine/: unpack gtFine_trainvaltest.zip beside it"
    if not images.is_dir():
        return f"it has {labels} but no leftImg8bit/: unpack leftImg8bit_trainvaltest.zip beside it"
    if next(labels.glob(f"*/*/*{_LABEL_SUFFIX}"), None) is not None:
        return None
    if next(labels.glob(f"*/*{_LABEL_SUFFIX}"), None) or next(images.glob(f"*/*{_IMAGE_SUFFIX}"), None):
        return ("its files lie directly in SPLIT/ folders; Cityscapes keeps them in city folders "
                "(leftImg8bit/train/aachen/..., gtFine/train/aachen/...): unpack the original zips as they are")
    if next(labels.glob(f"*/*/*{_TRAIN_ID_SUFFIX}"), None) or next(labels.glob(f"*/*{_TRAIN_ID_SUFFIX}"), None):
        return (f"gtFine holds only *{_TRAIN_ID_SUFFIX} files; edgeseg maps the original "
                f"*{_LABEL_SUFFIX} itself: unpack gtFine_trainvaltest.zip again (it has both)")
    return f"gtFine holds no *{_LABEL_SUFFIX} files in city folders (gtFine/SPLIT/CITY/)"


def info(root: Path) -> DatasetInfo:
    return INFO


def pairs(root: Path, split: str) -> Pairs:
    image_root = require_dir(root / "leftImg8bit" / split, f"Cityscapes split '{split}'")
    label_root = root / "gtFine" / split

    def label_of(image: Path) -> Path:
        stem = image.name[: -len(_IMAGE_SUFFIX)]
        return label_root / image.parent.name / f"{stem}{_LABEL_SUFFIX}"

    return pair_files(sorted(image_root.glob(f"*/*{_IMAGE_SUFFIX}")), label_of)
