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
    """(format, detector, layout) in the order layouts are tried: the synthetic set is a
    ``folder`` layout with a marker, so it comes first."""
    return [("synthetic", synthetic.detect, synthetic.LAYOUT),
            ("tfrecord", _is_tfrecord, TFRECORD_LAYOUT),
            *((name, DATASET_MODULES[name].detect, DATASET_MODULES[name].LAYOUT) for name in ("cityscapes", "voc", "camvid", "folder"))]


def detect_format(root: str | Path) -> str:
    """The format of the dataset folder ``root``, from its layout; DataError naming the folder and
    the layouts when it matches none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    for name, detect, _ in _layouts():
        if detect(root):
            return name
    layouts = "; ".join(f"{name}: {layout}" for name, _, layout in _layouts())
    raise DataError(f"cannot tell the dataset format of {root}: it has none of these layouts ({layouts}); "
                    "pass --format")


def resolve_format(root: str | Path | None, fmt: str | None) -> str:
    """``fmt`` when given; else ``synthetic`` without a folder, or the format detected in ``root``
    (logged, so the user sees what was assumed)."""
    if fmt:
        return fmt
    if root is None or str(root) == "":
        return "synthetic"
    fmt = detect_format(root)
    log.info("%s: detected dataset format '%s'", root, fmt)
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


def label_map_of(fmt: str, num_classes: int) -> LabelMap:
    """How label files of a format map to train ids: the format's fixed table (CamVid's void id,
    Cityscapes' label ids, VOC's palette), else the files hold train ids already."""
    info = getattr(DATASET_MODULES.get(fmt), "INFO", None)
    return info.label_map if info is not None else LabelMap.identity(num_classes)


def load_split(root: str | Path | None, fmt: str, split: str, allow_unpaired: bool = False) -> Split:
    """Load a split, or several joined with commas (``train,val``); an image without a label is
    an error naming both files."""
    if "," in split:
        parts = [load_split(root, fmt, s.strip(), allow_unpaired) for s in split.split(",") if s.strip()]
        return Split(info=parts[0].info, root=parts[0].root, split=split,
                     items=[item for part in parts for item in part.items])
    module = get_format(fmt)
    root = resolve_root(root, fmt)
    info = module.info(root)
    found = module.pairs(root, split)
    if found.unpaired and not allow_unpaired:
        first = found.unpaired[0]
        more = f" (and {len(found.unpaired) - 1} more)" if len(found.unpaired) > 1 else ""
        raise DataError(f"image {first} has no label {found.expected_label[first]}{more}")
    if not found.items:
        raise DataError(f"no (image, label) pairs in split '{split}' of {root}")
    return Split(info=info, root=root, split=split, items=found.items)
