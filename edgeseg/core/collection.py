"""The folder `edgeseg run --collect` fills: a ``folder`` dataset edgeseg trains on, with the
model's masks as draft labels and a CSV of why each frame was kept.

Layout::

    DIR/classes.txt          the model's classes, ``name R G B``
    DIR/train/images/*.jpg   the frames as the camera gave them
    DIR/train/masks/*.png    labels (train ids, 255 = ignore): the model's drafts until fixed
    DIR/frames.csv           one row per kept frame: score, reason, time, label state
    DIR/drafts/*.png         a draft replaced by an imported label is moved here, not deleted
"""

from __future__ import annotations

import csv
from pathlib import Path

from edgeseg.core.errors import ConfigError

FRAMES_CSV = "frames.csv"
CSV_FIELDS = ("name", "time", "frame", "reason", "score", "uncertainty", "disagreement", "model")
SPLIT = "train"


def images_dir(root: Path) -> Path:
    return Path(root) / SPLIT / "images"


def masks_dir(root: Path) -> Path:
    return Path(root) / SPLIT / "masks"


def drafts_dir(root: Path) -> Path:
    return Path(root) / "drafts"


def is_collection(root: Path) -> bool:
    path = Path(root) / FRAMES_CSV
    if not path.is_file():
        return False
    with path.open(newline="") as f:
        header = next(csv.reader(f), None)
    return header is not None and tuple(header) == CSV_FIELDS


def check_target(root: Path, option: str = "--collect") -> None:
    """What can be told before the model is known: ``root`` is new, empty or a collection."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{option} {root} is a file; give a folder")
    if root.is_dir() and not is_collection(root) and any(root.iterdir()):
        raise ConfigError(f"{option} {root} is not empty and is not an edgeseg collection; choose a new folder")


def prepare(root: Path, class_names, colors, option: str = "--collect") -> int:
    """Make ``root`` a collection for a model with these classes, or continue one made for the
    same classes; the number of frames it already holds. Anything else (a folder with other
    files, a collection of other classes) is refused before the run starts: nothing of the
    user's is written over."""
    from edgeseg.core.files import check_writable_dir
    from edgeseg.core.labels import read_classes, write_classes

    root = Path(root)
    check_target(root, option)
    if is_collection(root):
        names, _ = read_classes(root / "classes.txt")
        if tuple(names) != tuple(class_names):
            raise ConfigError(f"{option} {root} was collected for other classes ({', '.join(names)}); "
                              "choose another folder")
        return sum(1 for _ in images_dir(root).iterdir()) if images_dir(root).is_dir() else 0
    check_writable_dir(root, option)
    for folder in (images_dir(root), masks_dir(root)):
        folder.mkdir(parents=True, exist_ok=True)
    write_classes(root / "classes.txt", class_names, colors)
    with (root / FRAMES_CSV).open("w", newline="") as f:
        csv.writer(f).writerow(CSV_FIELDS)
    return 0


def read_rows(root: Path) -> list[dict]:
    """The rows of ``frames.csv``, oldest first."""
    with (Path(root) / FRAMES_CSV).open(newline="") as f:
        return list(csv.DictReader(f))
