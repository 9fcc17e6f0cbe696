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


LAYOUT = "SPLIT/images + SPLIT/labels, or SPLIT/ + SPLITannot/ (ids 0-11, CamVid's frame names)"
# CamVid's four recordings: frames are named after them (0001TP_006690, Seq05VD_f00000).
SEQUENCES = ("0001TP", "0006R0", "0016E5", "Seq05VD")


def _label_folders(root: Path) -> list[tuple[Path, bool]]:
    """``(label folder, shared layout)`` of each split that has either CamVid layout."""
    found = []
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        if (child / "images").is_dir() and (child / "labels").is_dir():
            found.append((child / "labels", True))
        elif child.name.endswith("annot") and (root / child.name[: -len("annot")]).is_dir():
            found.append((child, False))
    return found


def _not_camvid(root: Path) -> str | None:
    """Why a folder with CamVid's layout is not CamVid (None: it is): masks read (a few of
    them) must hold CamVid's ids 0-11, and, in the images/labels layout, which any dataset of
    one's own may have, frames must bear CamVid's recording names."""
    from edgeseg.data.base import describe_values, mask_values, spread

    folder, shared = _label_folders(root)[0]
    masks = sorted(folder.glob("*.png"))
    if not masks:
        return f"{folder} holds no .png masks"
    values, unreadable = mask_values(spread(masks))
    if unreadable:
        return f"its masks cannot be read ({unreadable})"
    wrong = sorted(v for v in values if isinstance(v, tuple) or v > VOID_ID)
    if wrong:
        return f"its masks hold {describe_values(wrong)} (CamVid's ids are 0-{VOID_ID})"
    if shared and not any(m.stem.startswith(SEQUENCES) for m in masks):
        return f"its frames do not bear CamVid's names (e.g. 0001TP_006690), like {masks[0].name}"
    return None


def detect(root: Path) -> bool:
    """Whether ``root`` is CamVid in either layout (for ``--data`` without ``--format``)."""
    return bool(_label_folders(root)) and _not_camvid(root) is None


def near_miss(root: Path) -> str | None:
    """What to do with a folder that has CamVid's layout but is not CamVid (its masks or names)."""
    if not _label_folders(root):
        return None
    why = _not_camvid(root)
    if why is None:
        return None
    return (f"it has CamVid's layout but {why}: for your own classes add {root / 'classes.txt'} "
            "(one class name per line, line k = mask id k; it makes this a 'folder' dataset), "
            "or pass --format camvid if it is CamVid")


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
