"""A plain folder of images and masks paired by file stem: your own data.

Layout: ``ROOT/classes.txt`` and ``ROOT/SPLIT/images/*`` + ``ROOT/SPLIT/masks/STEM.png`` (the
mask folder may be called ``labels/``), or one ``ROOT/images`` + ``ROOT/masks`` pool with
``ROOT/SPLIT.txt`` listing the stems of each split. ``classes.txt`` has one class per line,
``name`` or ``name R G B`` (line k is mask id k), and ``ignore: V`` / ``ignore: R G B`` lines for
mask values to ignore (:class:`edgeseg.core.labels.ClassFile`). Masks: id PNGs (8 or 16 bit),
indexed PNGs (the index is the id), or colour PNGs in the colours of ``classes.txt``; 255 is
ignored.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.errors import DataError
from edgeseg.core.images import list_images
from edgeseg.core.labels import DatasetInfo, read_class_file
from edgeseg.data.base import Pairs, pair_by_stem, require_dir

MASK_FOLDERS = ("masks", "labels")
LAYOUT = "classes.txt + SPLIT/images + SPLIT/masks or SPLIT/labels (or images/, masks/, SPLIT.txt)"


def mask_folder(parent: Path) -> Path | None:
    """``parent/masks`` or ``parent/labels``, whichever exists (both: a DataError)."""
    found = [parent / name for name in MASK_FOLDERS if (parent / name).is_dir()]
    if len(found) > 1:
        raise DataError(f"{parent} has both masks/ and labels/; keep the masks in one of them")
    return found[0] if found else None


def _has_pairs_folder(parent: Path) -> bool:
    return (parent / "images").is_dir() and any((parent / name).is_dir() for name in MASK_FOLDERS)


def has_layout(root: Path) -> bool:
    """images/ with masks/ (or labels/) at the root or in a split folder."""
    return _has_pairs_folder(root) or any(_has_pairs_folder(c) for c in root.iterdir() if c.is_dir())


def detect(root: Path) -> bool:
    return (root / "classes.txt").is_file() and has_layout(root)


def info(root: Path, name: str = "folder") -> DatasetInfo:
    classes = read_class_file(root / "classes.txt")
    return DatasetInfo(name=name, class_names=classes.names, colors=classes.colors, label_map=classes.label_map)


def pairs(root: Path, split: str) -> Pairs:
    if (root / split / "images").is_dir():
        images = list_images(root / split / "images")
        masks = mask_folder(root / split) or root / split / "masks"
        return pair_by_stem(images, masks, lambda p: p.stem + ".png")
    listing = root / f"{split}.txt"
    if listing.is_file():
        image_dir = require_dir(root / "images", "image folder")
        by_stem = {p.stem: p for p in list_images(image_dir)}
        stems = listing.read_text().split()
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DataError(f"{listing} lists '{missing[0]}' but {image_dir} has no such image")
        masks = mask_folder(root) or root / "masks"
        return pair_by_stem([by_stem[s] for s in stems], masks, lambda p: p.stem + ".png")
    raise DataError(
        f"no split '{split}' in {root}: expected {root / split / 'images'} or {listing}"
    )
