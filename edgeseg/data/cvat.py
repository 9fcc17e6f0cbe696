"""A collection's labels to and from CVAT's "Segmentation mask 1.1" format (Pascal VOC style),
which CVAT imports into a task made of the collection's images and exports once they are fixed.

The archive::

    labelmap.txt                      # label:color_rgb:parts:actions, one line a label
    ImageSets/Segmentation/default.txt  # the image stems
    SegmentationClass/STEM.png        # RGB: each pixel the colour of its label

``background`` (black) is the ignore label (255): pixels nobody should be scored on; when a class
is itself named ``background`` (Pascal VOC), the ignore label is ``ignore`` in VOC's void colour.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from edgeseg.core import collection
from edgeseg.core.errors import DataError
from edgeseg.core.labels import IGNORE_LABEL, LabelMap, default_color, pack_rgb, read_classes

BACKGROUND = "background"
IGNORE = "ignore"
VOID_COLOR = (224, 224, 192)  # Pascal VOC's void


def ignore_label(names) -> tuple[str, tuple[int, int, int]]:
    """The name and colour the ignore label (255) has in the labelmap."""
    if BACKGROUND in names:
        if IGNORE in names:
            raise DataError(f"classes named both '{BACKGROUND}' and '{IGNORE}': the CVAT labelmap needs one of "
                            "these names for the ignored pixels")
        return IGNORE, VOID_COLOR
    return BACKGROUND, (0, 0, 0)
LABELMAP = "labelmap.txt"
LIST = "ImageSets/Segmentation/default.txt"
MASKS = "SegmentationClass"


def label_colors(colors, ignore_color=(0, 0, 0)) -> list[tuple[int, int, int]]:
    """The class colours, unless two are the same or one is the ignore label's: then evenly
    spaced hues for all, so every colour names one label."""
    colors = [tuple(int(v) for v in c) for c in colors]
    if len(set(colors)) == len(colors) and tuple(ignore_color) not in colors:
        return colors
    return [default_color(i, len(colors)) for i in range(len(colors))]


def _require_collection(root: Path) -> tuple[tuple[str, ...], list[Path]]:
    root = Path(root)
    if not collection.is_collection(root):
        raise DataError(f"{root} is not an edgeseg collection (no {collection.FRAMES_CSV}; made by `edgeseg run --collect`)")
    names, _ = read_classes(root / "classes.txt")
    return names, sorted(collection.masks_dir(root).glob("*.png"))


def export_cvat(root: Path, out: Path) -> int:
    """Write the collection's masks as a CVAT "Segmentation mask 1.1" zip; the number of masks."""
    import cv2

    from edgeseg.core.files import atomic_path

    names, masks = _require_collection(root)
    _, class_colors = read_classes(Path(root) / "classes.txt")
    ignore, ignore_color = ignore_label(names)
    colors = label_colors(class_colors, ignore_color)
    table = np.tile(np.asarray(ignore_color, np.uint8), (256, 1))  # ignore (and unknown) ids
    table[: len(colors)] = colors
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        lines = ["# label:color_rgb:parts:actions", f"{ignore}:{','.join(map(str, ignore_color))}::"]
        lines += [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip(names, colors)]
        z.writestr(LABELMAP, "\n".join(lines) + "\n")
        z.writestr(LIST, "".join(f"{m.stem}\n" for m in masks))
        for mask in masks:
            ids = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
            if ids is None or ids.ndim != 2:
                raise DataError(f"{mask}: not a single-channel label PNG")
            ok, png = cv2.imencode(".png", cv2.cvtColor(table[ids], cv2.COLOR_RGB2BGR))
            z.writestr(f"{MASKS}/{mask.stem}.png", png.tobytes())
    return len(masks)


def _read_labelmap(text: str, source: str, names) -> LabelMap:
    """The labels' colours as a LabelMap to train ids, by label name; a label the collection does
    not know is an error."""
    ids = {n: i for i, n in enumerate(names)}
    colors = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            rgb = tuple(int(v) for v in rest.split(":")[0].split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3:
            raise DataError(f"{source}:{n}: expected 'label:R,G,B::', got {line!r}")
        if name in ids:
            colors[int(pack_rgb(np.array(rgb)))] = ids[name]
        elif name in (BACKGROUND, IGNORE):
            colors[int(pack_rgb(np.array(rgb)))] = IGNORE_LABEL
        else:
            raise DataError(f"{source}:{n}: label '{name}' is not a class of the collection ({', '.join(names)})")
    if not colors:
        raise DataError(f"{source} lists no label")
    return LabelMap(ids={}, colors=colors)


def _decode(data: bytes, label_map: LabelMap, name: str) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{name}: not an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    ids, unknown = label_map.encode(rgb)
    if unknown.any():
        r, g, b = (int(v) for v in rgb[unknown][0])
        raise DataError(f"{name}: colour {r},{g},{b} is no label of {LABELMAP}")
    return ids


def import_cvat(archive: Path, root: Path, force: bool = False) -> int:
    """Put the labels of a CVAT "Segmentation mask 1.1" zip into the collection ``root``; the
    number of labels. Each draft replaced is moved to ``drafts/``; a mask that is no draft any
    more (an earlier import) is replaced only with ``force``. Everything is read and checked
    before the first mask is written."""
    import cv2

    from edgeseg.core.files import atomic_path

    names, _ = _require_collection(root)
    root = Path(root)
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"CVAT export not found: {archive}")
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive} is not a zip file (export the task as 'Segmentation mask 1.1')") from None
    with z:
        files = set(z.namelist())
        if LABELMAP not in files:
            raise DataError(f"{archive} has no {LABELMAP} (export the task as 'Segmentation mask 1.1')")
        label_map = _read_labelmap(z.read(LABELMAP).decode(), f"{archive.name}:{LABELMAP}", names)
        labels = {}
        for member in sorted(f for f in files if f.startswith(f"{MASKS}/") and f.endswith(".png")):
            stem = Path(member).stem
            if not (collection.images_dir(root) / f"{stem}.jpg").is_file():
                raise DataError(f"{archive.name}:{member}: the collection has no frame {stem}")
            ids = _decode(z.read(member), label_map, f"{archive.name}:{member}")
            draft = cv2.imread(str(collection.masks_dir(root) / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            if draft is not None and draft.shape != ids.shape:
                raise DataError(f"{archive.name}:{member} is {ids.shape[1]}x{ids.shape[0]}, "
                                f"the frame {draft.shape[1]}x{draft.shape[0]} (WxH)")
            labels[stem] = ids
    if not labels:
        raise DataError(f"{archive} holds no {MASKS}/*.png masks")
    drafts = collection.drafts_dir(root)
    done = [s for s in labels if (drafts / f"{s}.png").exists()]
    if done and not force:
        raise DataError(f"{len(done)} frame(s) already have imported labels (e.g. {done[0]}); "
                        "pass --force to replace them")
    drafts.mkdir(exist_ok=True)
    for stem, ids in labels.items():
        mask = collection.masks_dir(root) / f"{stem}.png"
        draft = drafts / f"{stem}.png"
        if mask.exists() and not draft.exists():  # a copy: the frame keeps a mask if the write below fails
            with atomic_path(draft) as tmp:
                shutil.copyfile(mask, tmp)
        with atomic_path(mask) as tmp:
            if not cv2.imwrite(str(tmp), ids):
                raise OSError(f"cannot write {mask}")
    return len(labels)

