"""Classes and labels, shared by training and the device: the ignore label, how raw label values
map to train ids (:class:`LabelMap`), a dataset's classes and colours (:class:`DatasetInfo`), and
``classes.txt`` files."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError

IGNORE_LABEL = 255  # train id of pixels that count in neither loss nor metrics (void, padding)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack an ``(..., 3)`` uint8 RGB array into int32 keys ``r<<16 | g<<8 | b``."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class LabelMap:
    """Raw label values -> train ids.

    Args:
        ids: raw single-channel value -> train id (``IGNORE_LABEL`` for void classes). Values
            missing from the table are *unknown*: mapped to ignore and reported by `data check`.
        colors: packed RGB colour -> train id, for datasets whose label files store colours
            (Pascal VOC palette PNGs decode to colours). Grey single-channel files of the same
            dataset are read through ``ids``.
    """

    ids: dict[int, int]
    colors: dict[int, int] = field(default_factory=dict)

    @classmethod
    def identity(cls, num_classes: int) -> "LabelMap":
        """Labels that already hold train ids ``0..num_classes-1`` and ``IGNORE_LABEL``."""
        return cls(ids={**{i: i for i in range(num_classes)}, IGNORE_LABEL: IGNORE_LABEL})

    def id_lut(self) -> np.ndarray:
        """A 256-entry uint8 table for single-channel labels (unknown values -> ignore)."""
        lut = np.full(256, IGNORE_LABEL, np.uint8)
        for raw, train in self.ids.items():
            if 0 <= raw < 256:
                lut[raw] = train
        return lut

    def color_table(self) -> dict[int, int]:
        """Packed RGB -> train id for colour label files, grey-encoded ids of the same dataset
        included (``(v, v, v)`` means raw id ``v``)."""
        table = dict(self.colors)
        for raw_id, train in self.ids.items():
            table.setdefault((raw_id << 16) | (raw_id << 8) | raw_id, train)
        return table

    def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map a decoded label (HxW ids or HxWx3 RGB) to train ids.

        Returns:
            ``(train_ids, unknown)``: uint8 train ids and a bool mask of unknown raw values.
        """
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[..., 0]
        if raw.ndim == 2:
            known = np.zeros(256, bool)
            known[[k for k in self.ids if 0 <= k < 256]] = True
            raw = raw.astype(np.int64)
            if raw.max(initial=0) > 255:
                raise DataError(f"label values up to {raw.max()} do not fit 8 bits")
            return self.id_lut()[raw], ~known[raw]
        if not self.colors:
            grey = raw[..., 0]
            if np.array_equal(grey, raw[..., 1]) and np.array_equal(grey, raw[..., 2]):
                return self.encode(grey)
            raise DataError("label image has colour channels but this format expects class ids")
        keys = pack_rgb(raw)
        table = self.color_table()
        uniq, inverse = np.unique(keys, return_inverse=True)
        mapped = np.array([table.get(int(k), IGNORE_LABEL) for k in uniq], np.uint8)
        unknown = np.array([int(k) not in table for k in uniq], bool)
        inverse = inverse.reshape(keys.shape)
        return mapped[inverse], unknown[inverse]


@dataclass(frozen=True)
class DatasetInfo:
    """Class metadata of a dataset.

    Args:
        name: format name (``camvid``, ``cityscapes``, ...).
        class_names: one name per train id.
        colors: one RGB colour per train id, for overlays.
        label_map: how label files map to train ids.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    label_map: LabelMap
    ignore_label: int = IGNORE_LABEL

    def __post_init__(self):
        if len(self.class_names) != len(self.colors):
            raise DataError(
                f"{self.name}: {len(self.class_names)} class names but {len(self.colors)} colours"
            )
        if not 1 < len(self.class_names) < IGNORE_LABEL:
            raise DataError(f"{self.name}: need 2..254 classes, got {len(self.class_names)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def default_color(i: int, n: int) -> tuple[int, int, int]:
    """Evenly spaced hues, for classes listed without a colour."""
    r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.7, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def read_classes(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """A ``classes.txt``: one class per line, ``name`` or ``name R G B``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"classes file not found: {path} (one class name per line)")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    names, colors = [], []
    for n, row in enumerate(rows, 1):
        if len(row) not in (1, 4):
            raise DataError(f"{path}:{n}: expected 'name' or 'name R G B', got {' '.join(row)!r}")
        names.append(row[0])
        try:
            colors.append(tuple(int(v) for v in row[1:]) if len(row) == 4 else None)
        except ValueError:
            raise DataError(f"{path}:{n}: colour values must be integers 0-255, got {' '.join(row[1:])!r}") from None
    colors = [c or default_color(i, len(names)) for i, c in enumerate(colors)]
    return tuple(names), tuple(colors)


def write_classes(path: Path, names, colors) -> None:
    """A ``classes.txt`` of ``name R G B`` lines (what :func:`read_classes` reads), written atomically."""
    from edgeseg.core.files import write_text_atomic

    write_text_atomic(path, "".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in zip(names, colors)))


def palette(colors) -> "np.ndarray":
    """A 256-entry RGB lookup table: class id -> its colour, black for every other id (void)."""
    import numpy as np

    table = np.zeros((256, 3), np.uint8)
    table[: len(colors)] = np.asarray(colors, np.uint8)
    return table


def colorize(labels, colors) -> "np.ndarray":
    """RGB image of a label map; ids without a colour (ignore, void) black."""
    return palette(colors)[labels.astype("uint8")]
