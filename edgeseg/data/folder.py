"""A plain folder of images and masks paired by file stem.

Layout: ``ROOT/SPLIT/images/*`` + ``ROOT/SPLIT/masks/STEM.png``, or one ``ROOT/images`` +
``ROOT/masks`` pool with ``ROOT/SPLIT.txt`` listing the stems of each split. ``ROOT/classes.txt``
has one class per line, ``name`` or ``name R G B``; masks hold class ids, 255 = ignore.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.errors import DataError
from edgeseg.core.images import list_images
from edgeseg.core.labels import DatasetInfo, LabelMap, read_classes
from edgeseg.data.base import Pairs, pair_by_stem, require_dir


LAYOUT = "classes.txt + SPLIT/images + SPLIT/masks (or images/, masks/, SPLIT.txt)"


def detect(root: Path) -> bool:
    if not (root / "classes.txt").is_file():
        return False
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return True
    return any((c / "images").is_dir() and (c / "masks").is_dir() for c in root.iterdir() if c.is_dir())


def info(root: Path, name: str = "folder") -> DatasetInfo:
    names, colors = read_classes(root / "classes.txt")
    return DatasetInfo(name=name, class_names=names, colors=colors, label_map=LabelMap.identity(len(names)))


def pairs(root: Path, split: str) -> Pairs:
    if (root / split / "images").is_dir():
        images = list_images(root / split / "images")
        return pair_by_stem(images, root / split / "masks", lambda p: p.stem + ".png")
    listing = root / f"{split}.txt"
    if listing.is_file():
        image_dir = require_dir(root / "images", "image folder")
        by_stem = {p.stem: p for p in list_images(image_dir)}
        stems = listing.read_text().split()
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DataError(f"{listing} lists '{missing[0]}' but {image_dir} has no such image")
        return pair_by_stem([by_stem[s] for s in stems], root / "masks", lambda p: p.stem + ".png")
    raise DataError(
        f"no split '{split}' in {root}: expected {root / split / 'images'} or {listing}"
    )
