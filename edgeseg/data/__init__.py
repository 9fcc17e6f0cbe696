"""Dataset formats (a registry), loading and checking. Numpy/OpenCV only; the tf.data pipeline
lives in :mod:`edgeseg.data.pipeline`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from edgeseg.data import camvid, cityscapes, folder, synthetic, voc
from edgeseg.data.base import IGNORE_LABEL, DatasetInfo, LabelMap, Split
from edgeseg.errors import ConfigError, DataError

FORMATS: dict[str, ModuleType] = {
    "camvid": camvid,
    "cityscapes": cityscapes,
    "voc": voc,
    "folder": folder,
    "synthetic": synthetic,
}

__all__ = ["FORMATS", "IGNORE_LABEL", "DatasetInfo", "LabelMap", "Split", "get_format", "load_split"]


def get_format(name: str) -> ModuleType:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset format '{name}'; choose one of: {', '.join(FORMATS)}") from None


def resolve_root(root: str | Path | None, fmt: str) -> Path:
    if root is None or str(root) == "":
        if fmt == "synthetic":
            return synthetic.default_root()
        raise ConfigError(f"--data is required for format '{fmt}'")
    root = Path(root).expanduser()
    if fmt != "synthetic" and not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    return root


def load_info(root: str | Path | None, fmt: str) -> DatasetInfo:
    return get_format(fmt).info(resolve_root(root, fmt))


def load_split(root: str | Path | None, fmt: str, split: str, allow_unpaired: bool = False) -> Split:
    """Load one split; an image without a label is an error naming both files."""
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
