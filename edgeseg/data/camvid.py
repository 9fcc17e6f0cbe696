"""CamVid, 11-class version (SegNet). Two on-disk layouts are accepted:

- ``ROOT/SPLIT/images/NAME.jpg`` + ``ROOT/SPLIT/labels/NAME.png`` (the layout of the shared copy);
- the SegNet layout ``ROOT/SPLIT/NAME.png`` + ``ROOT/SPLITannot/NAME.png``.

Labels hold class ids 0..10; 11 is void and is ignored.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.errors import DataError
from edgeseg.core.images import list_images
from edgeseg.core.labels import IGNORE_LABEL, DatasetInfo, LabelMap
from edgeseg.data.base import Pairs, pair_by_stem

CLASS_NAMES = (
    "sky", "building", "pole", "road", "sidewalk", "tree",
    "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)
COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
VOID_ID = 11

INFO = DatasetInfo(
    name="camvid",
    class_names=CLASS_NAMES,
    colors=COLORS,
    label_map=LabelMap(ids={**{i: i for i in range(len(CLASS_NAMES))}, VOID_ID: IGNORE_LABEL}),
)


LAYOUT = "SPLIT/images + SPLIT/labels, or SPLIT/ + SPLITannot/"


def detect(root: Path) -> bool:
    """Whether ``root`` has either CamVid layout (for ``--data`` without ``--format``)."""
    for child in root.iterdir():
        if not child.is_dir():
            continue
        if (child / "images").is_dir() and (child / "labels").is_dir():
            return True
        if child.name.endswith("annot") and (root / child.name[: -len("annot")]).is_dir():
            return True
    return False


def info(root: Path) -> DatasetInfo:
    return INFO


def pairs(root: Path, split: str) -> Pairs:
    if (root / split / "images").is_dir():
        images = list_images(root / split / "images")
        return pair_by_stem(images, root / split / "labels", lambda p: p.stem + ".png")
    if (root / split).is_dir() and (root / f"{split}annot").is_dir():
        return pair_by_stem(list_images(root / split), root / f"{split}annot", lambda p: p.stem + ".png")
    raise DataError(
        f"no CamVid split '{split}' in {root}: expected {root / split / 'images'} "
        f"or {root / split} with {root / (split + 'annot')}"
    )
