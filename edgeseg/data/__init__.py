"""Dataset formats (a registry), loading and checking. Numpy/OpenCV only; the tf.data pipeline
lives in :mod:`edgeseg.data.pipeline`."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from edgeseg.core.errors import ConfigError, DataError
from edgeseg.core.labels import LabelMap
from edgeseg.data import camvid, cityscapes, folder, synthetic, voc
from edgeseg.data.base import Split

log = logging.getLogger("edgeseg")

DATASET_MODULES: dict[str, ModuleType] = {
    "camvid": camvid,
    "cityscapes": cityscapes,
    "voc": voc,
    "folder": folder,
    "synthetic": synthetic,
}

TFRECORD_LAYOUT = "shards from `edgeseg data tfrecords` (dataset.json + SPLIT-*.tfrecord)"

__all__ = ["DATASET_MODULES", "Split", "detect_format", "get_format", "load_split", "resolve_format"]


def get_format(name: str) -> ModuleType:
    try:
        return DATASET_MODULES[name]
    except KeyError:
        raise ConfigError(f"unknown dataset format '{name}'; choose one of: {', '.join(DATASET_MODULES)}") from None


def _is_tfrecord(root: Path) -> bool:
    return (root / "dataset.json").is_file() and any(root.glob("*.tfrecord"))


def check_tfrecord_target(out: Path, name: str) -> None:
    """``edgeseg data tfrecords --out``: a missing or empty folder, or shards of the same dataset
    written earlier (their splits are replaced); anything else is refused, nothing written."""
    import json

    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    if _is_tfrecord(out):
        existing = json.loads((out / "dataset.json").read_text()).get("name")
        if existing != name:
            raise DataError(f"--out {out} holds TFRecords of dataset '{existing}', not '{name}'; choose another folder")
        return
    if any(out.iterdir()):
        raise DataError(f"--out {out} is not empty and holds no edgeseg TFRecords; choose a new or empty folder")


def _layouts() -> list[tuple[str, object, str]]:
    """(format, detector, layout) of every format detection knows."""
    return [("synthetic", synthetic.detect, synthetic.LAYOUT),
            ("tfrecord", _is_tfrecord, TFRECORD_LAYOUT),
            *((name, DATASET_MODULES[name].detect, DATASET_MODULES[name].LAYOUT) for name in ("folder", "cityscapes", "voc", "camvid"))]


KNOWN_LAYOUTS = ("cityscapes", "voc", "camvid")


def near_misses(root: Path, formats=KNOWN_LAYOUTS) -> list[str]:
    """Hints for a folder that almost has a known layout (an extracted VOCdevkit, Cityscapes
    without city folders, CamVid's layout holding other data)."""
    hints = []
    for name in formats:
        near = getattr(DATASET_MODULES[name], "near_miss", None)
        hint = near(root) if near else None
        if hint:
            hints.append(f"{name}? {hint}")
    return hints


def detect_format(root: str | Path) -> str:
    """The format of the dataset folder ``root``, from its layout; DataError naming the folder,
    the layouts and what was almost found when it is none of them, or the candidates when it
    could be more than one.

    What the user wrote comes first: the synthetic set's marker, TFRecords' ``dataset.json``,
    then a ``classes.txt`` (a folder dataset, whatever its mask folder is called). A known layout
    is taken only when it really is one: CamVid's ids (and names), VOC's palette, Cityscapes'
    file names."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    for name, detect, _ in _layouts()[:3]:  # synthetic, tfrecord, folder: told by the user's files
        if detect(root):
            return name
    found = [name for name in KNOWN_LAYOUTS if DATASET_MODULES[name].detect(root)]
    if (root / "classes.txt").is_file():
        also = f"; it also looks like {' and '.join(found)} (pass --format {found[0]} to read it so)" if found else ""
        raise DataError(f"{root} has a classes.txt, which makes it a folder dataset, but not the folder layout "
                        f"({folder.LAYOUT}){also}")
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{root} could be {' or '.join(found)}: pass --format "
                        f"({'; '.join(f'{n}: {DATASET_MODULES[n].LAYOUT}' for n in found)})")
    hints = near_misses(root)
    if hints:
        raise DataError(f"cannot tell the dataset format of {root}: " + "; ".join(hints))
    layouts = "; ".join(f"{name}: {layout}" for name, _, layout in _layouts())
    raise DataError(f"cannot tell the dataset format of {root}: it has none of these layouts ({layouts}); "
                    "pass --format")


def describe(root, fmt: str) -> str:
    """What a detected format means, for the line that says it: its classes."""
    try:
        info = get_format(fmt).info(Path(root)) if fmt not in ("tfrecord",) else None
    except Exception:  # noqa: BLE001 - the line is informative; loading reports the error
        return ""
    if info is None:
        return ""
    names = ", ".join(info.class_names[:6]) + (", ..." if info.num_classes > 6 else "")
    return f" ({info.num_classes} classes: {names})"


def resolve_format(root: str | Path | None, fmt: str | None) -> str:
    """``fmt`` when given; else ``synthetic`` without a folder, or the format detected in ``root``
    (logged with its classes, so the user sees what was assumed)."""
    if fmt:
        return fmt
    if root is None or str(root) == "":
        return "synthetic"
    fmt = detect_format(root)
    log.info("%s: detected dataset format '%s'%s", root, fmt, describe(root, fmt))
    return fmt


def resolve_root(root: str | Path | None, fmt: str) -> Path:
    if root is None or str(root) == "":
        if fmt == "synthetic":
            return synthetic.default_root()
        raise ConfigError(f"--data is required for format '{fmt}'")
    root = Path(root).expanduser()
    if fmt != "synthetic" and not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    return root


def label_map_of(fmt: str, num_classes: int, dataset: dict | None = None) -> LabelMap:
    """How label files of a format map to train ids: as a run read them (its ``dataset.json``,
    written since a folder dataset's colours and ignored values are kept there), else the
    format's fixed table (CamVid's void id, Cityscapes' label ids, VOC's palette), else the files
    hold train ids already."""
    if dataset and "label_ids" in dataset:
        return LabelMap(ids={int(k): int(v) for k, v in dataset["label_ids"].items()},
                        colors={int(k): int(v) for k, v in dataset.get("label_colors", {}).items()})
    info = getattr(DATASET_MODULES.get(fmt), "INFO", None)
    return info.label_map if info is not None else LabelMap.identity(num_classes)


def _hint(root: Path, fmt: str) -> str:
    """A near miss of the format the user gave (with --format, or detected): Cityscapes without
    city folders, a VOCdevkit instead of its VOC2012."""
    if fmt == "voc":
        year = voc.devkit_year(root)
        return f" ({root} is an extracted VOCdevkit: point --data at {year})" if year else ""
    hint = cityscapes.near_miss(root) if fmt == "cityscapes" else None
    return f" ({hint})" if hint else ""


def find_pairs(root: Path, fmt: str, split: str):
    """``(info, Pairs)`` of a split, unpaired images included (what `data check` reports)."""
    module = get_format(fmt)
    root = resolve_root(root, fmt)
    try:
        info, found = module.info(root), module.pairs(root, split)
    except DataError as e:
        raise DataError(f"{e}{_hint(root, fmt)}") from None
    hint = _hint(root, fmt) if not found.items and not found.unpaired else ""
    if hint:
        raise DataError(f"no (image, label) pairs in split '{split}' of {root}{hint}")
    return info, found


def load_split(root: str | Path | None, fmt: str, split: str, allow_unpaired: bool = False) -> Split:
    """Load a split, or several joined with commas (``train,val``); an image without a label is
    an error naming both files."""
    if "," in split:
        parts = [load_split(root, fmt, s.strip(), allow_unpaired) for s in split.split(",") if s.strip()]
        return Split(info=parts[0].info, root=parts[0].root, split=split,
                     items=[item for part in parts for item in part.items],
                     unpaired=tuple(i for part in parts for i in part.unpaired),
                     expected_label={k: v for part in parts for k, v in part.expected_label.items()})
    module = get_format(fmt)
    root = resolve_root(root, fmt)
    info = module.info(root)
    try:
        found = module.pairs(root, split)
    except DataError as e:
        raise DataError(f"{e}{_hint(root, fmt)}") from None
    if found.unpaired and (not allow_unpaired or not found.items):
        first = found.unpaired[0]
        more = f" (and {len(found.unpaired) - 1} more)" if len(found.unpaired) > 1 else ""
        raise DataError(f"image {first} has no label {found.expected_label[first]}{more}{_hint(root, fmt)}")
    if not found.items:
        raise DataError(f"no (image, label) pairs in split '{split}' of {root}{_hint(root, fmt)}")
    return Split(info=info, root=root, split=split, items=found.items,
                 unpaired=tuple(found.unpaired) if allow_unpaired else (),
                 expected_label=dict(found.expected_label) if allow_unpaired else {})
