"""A plain folder of images and masks paired by file stem.

Layout: ``ROOT/SPLIT/images/*`` + ``ROOT/SPLIT/masks/STEM.png``, or one ``ROOT/images`` +
``ROOT/masks`` pool with ``ROOT/SPLIT.txt`` listing the stems of each split. ``ROOT/classes.txt``
has one class per line, ``name`` or ``name R G B``; masks hold class ids, 255 = ignore.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

from edgeseg.data.base import (
    IGNORE_LABEL, DatasetInfo, LabelMap, Pairs, list_images, pair_by_stem, require_dir,
)
from edgeseg.errors import DataError


def _default_color(i: int, n: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.7, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def read_classes(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    if not path.is_file():
        raise DataError(f"classes file not found: {path} (one class name per line)")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    names, colors = [], []
    for n, row in enumerate(rows, 1):
        if len(row) not in (1, 4):
            raise DataError(f"{path}:{n}: expected 'name' or 'name R G B', got {' '.join(row)!r}")
        names.append(row[0])
        colors.append(tuple(int(v) for v in row[1:]) if len(row) == 4 else None)
    colors = [c or _default_color(i, len(names)) for i, c in enumerate(colors)]
    return tuple(names), tuple(colors)


def write_classes(path: Path, names, colors) -> None:
    path.write_text("".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in zip(names, colors)))


LAYOUT = "classes.txt + SPLIT/images + SPLIT/masks (or images/, masks/, SPLIT.txt)"


def detect(root: Path) -> bool:
    if not (root / "classes.txt").is_file():
        return False
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return True
    return any((c / "images").is_dir() and (c / "masks").is_dir() for c in root.iterdir() if c.is_dir())


def info(root: Path, name: str = "folder") -> DatasetInfo:
    names, colors = read_classes(root / "classes.txt")
    ids = {**{i: i for i in range(len(names))}, IGNORE_LABEL: IGNORE_LABEL}
    return DatasetInfo(name=name, class_names=names, colors=colors, label_map=LabelMap(ids=ids))


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
