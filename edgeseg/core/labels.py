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
        ids: raw single-channel value (an id PNG's value, an indexed PNG's index) -> train id
            (``IGNORE_LABEL`` for void classes). Values missing from the table are *unknown*:
            mapped to ignore and reported by `data check` (and refused by `train`).
        colors: packed RGB colour -> train id, for colour (RGB) masks (Pascal VOC's palette, the
            colours of a ``classes.txt``). Grey masks of the same dataset are read through ``ids``.
        colour_hint: said when a colour mask meets a map without colours.
    """

    ids: dict[int, int]
    colors: dict[int, int] = field(default_factory=dict)
    colour_hint: str = field(default="", compare=False)

    @classmethod
    def identity(cls, num_classes: int) -> "LabelMap":
        """Labels that already hold train ids ``0..num_classes-1`` and ``IGNORE_LABEL``."""
        return cls(ids={**{i: i for i in range(num_classes)}, IGNORE_LABEL: IGNORE_LABEL})

    def id_lut(self, size: int = 256) -> np.ndarray:
        """A ``size``-entry uint8 table for single-channel labels (unknown values -> ignore)."""
        lut = np.full(size, IGNORE_LABEL, np.uint8)
        for raw, train in self.ids.items():
            if 0 <= raw < size:
                lut[raw] = train
        return lut

    def color_table(self) -> dict[int, int]:
        """Packed RGB -> train id for colour label files, grey-encoded ids of the same dataset
        included (``(v, v, v)`` means raw id ``v``)."""
        table = dict(self.colors)
        for raw_id, train in self.ids.items():
            if 0 <= raw_id < 256:
                table.setdefault((raw_id << 16) | (raw_id << 8) | raw_id, train)
        return table

    def _ids_or_rgb(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` as HxW ids, or HxWx3 RGB for a colour mask this map decodes by colour; a
        colour mask without colours in the map is a DataError."""
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[..., 0]
        if raw.ndim == 2 or self.colors:
            return raw
        grey = raw[..., 0]
        if np.array_equal(grey, raw[..., 1]) and np.array_equal(grey, raw[..., 2]):
            return grey
        raise DataError("label image has colour channels (RGB), but class ids are expected"
                        + (f" ({self.colour_hint})" if self.colour_hint else ""))

    def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map a decoded label (HxW ids of 8 or 16 bits, or HxWx3 RGB) to train ids.

        Returns:
            ``(train_ids, unknown)``: uint8 train ids and a bool mask of unknown raw values.
        """
        raw = self._ids_or_rgb(raw)
        if raw.ndim == 2:
            size = 256 if raw.dtype == np.uint8 else int(raw.max(initial=0)) + 1
            size = max(size, 256)
            known = np.zeros(size, bool)
            known[[k for k in self.ids if 0 <= k < size]] = True
            return self.id_lut(size)[raw], ~known[raw]
        keys = pack_rgb(raw)
        table = self.color_table()
        uniq, inverse = np.unique(keys, return_inverse=True)
        mapped = np.array([table.get(int(k), IGNORE_LABEL) for k in uniq], np.uint8)
        unknown = np.array([int(k) not in table for k in uniq], bool)
        inverse = inverse.reshape(keys.shape)
        return mapped[inverse], unknown[inverse]

    def census(self, raw: np.ndarray) -> tuple[np.ndarray, dict]:
        """What a decoded label holds, without mapping every pixel: pixels per train id (256
        entries; unknown values count as ``IGNORE_LABEL``) and ``{unknown value: pixels}``, an
        int for an id, an ``(r, g, b)`` tuple for a colour."""
        raw = self._ids_or_rgb(raw)
        train = np.zeros(256, np.int64)
        unknown = {}
        if raw.ndim == 2:
            counts = _histogram(raw)
            values = np.flatnonzero(counts)
            table = self.ids
        else:
            values, counts = np.unique(pack_rgb(raw), return_counts=True)
            table = self.color_table()
            counts = dict(zip(values.tolist(), counts.tolist()))
        for v in values.tolist():
            n = int(counts[v])
            t = table.get(v)
            if t is None:
                unknown[v if raw.ndim == 2 else unpack_rgb(v)] = n
                t = IGNORE_LABEL
            train[t] += n
        return train, unknown

    def valid_values(self) -> str:
        """The raw values this map knows, for messages: ``0..3, 255 (ignore)``."""
        ids = sorted(self.ids)
        ignored = [i for i in ids if self.ids[i] == IGNORE_LABEL]
        kept = [i for i in ids if self.ids[i] != IGNORE_LABEL]
        text = _ranges(kept)
        if ignored:
            text += f"; {_ranges(ignored)} ignored"
        if self.colors:
            text += f"; {len(self.colors)} colours"
        return text


def _histogram(raw: np.ndarray) -> np.ndarray:
    """Pixels per value of an id image (OpenCV's histogram for 8 bits: a tenth of numpy's time,
    exact in float32 below 2**24 pixels)."""
    if raw.dtype == np.uint8 and raw.size < 1 << 24:
        import cv2

        return cv2.calcHist([np.ascontiguousarray(raw)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(raw.ravel(), minlength=256)


def unpack_rgb(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def describe_value(value) -> str:
    """An unknown label value for a message: ``7``, or ``colour (255, 0, 0)``."""
    return f"colour ({value[0]}, {value[1]}, {value[2]})" if isinstance(value, tuple) else f"id {value}"


def _ranges(values) -> str:
    """``0..3, 7, 9..11``."""
    out, run = [], []
    for v in values:
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
        run = [v]
    if run:
        out.append(f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return ", ".join(out) or "none"


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


CLASSES_FORMAT = "one class per line, 'name' or 'name R G B'; 'ignore: V' or 'ignore: R G B' for a mask value to ignore"


@dataclass(frozen=True)
class ClassFile:
    """A ``classes.txt``. Line k (blank lines and ``#`` comments aside) is the class of mask id k,
    ``name`` or ``name R G B`` (its colour in overlays, and in colour masks). ``ignore: V`` (a
    mask id) or ``ignore: R G B`` (a mask colour) declares a value whose pixels count in neither
    loss nor metrics; a class line whose id is declared ignore is no class of the model (the
    classes after it keep their order). 255 is always ignore."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    label_map: LabelMap

    @property
    def num_classes(self) -> int:
        return len(self.names)


def _ints(values, path, n, what) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except ValueError:
        out = ()
    if not out or any(not 0 <= v <= 255 for v in out):
        raise DataError(f"{path}:{n}: {what} must be integers 0-255, got {' '.join(values)!r}")
    return out


def read_class_file(path: Path) -> ClassFile:
    """Read a ``classes.txt`` (see :class:`ClassFile`); DataError naming the line at fault."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"classes file not found: {path} ({CLASSES_FORMAT})")
    lines, ignore_ids, ignore_colors = [], {}, {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        row = line.split("#", 1)[0].split()  # '#' starts a comment
        if not row:
            continue
        if row[0].lower() == "ignore:":
            if len(row) == 2:
                ignore_ids[_ints(row[1:], path, n, "an ignore id")[0]] = n
            elif len(row) == 4:
                ignore_colors[_ints(row[1:], path, n, "an ignore colour")] = n
            else:
                raise DataError(f"{path}:{n}: expected 'ignore: ID' or 'ignore: R G B', got {line.strip()!r}")
            continue
        if len(row) not in (1, 4):
            raise DataError(f"{path}:{n}: expected 'name' or 'name R G B' ({CLASSES_FORMAT}), got {line.strip()!r}")
        lines.append((n, row[0], _ints(row[1:], path, n, "colour values") if len(row) == 4 else None))
    kept = [(mask_id, name, color) for mask_id, (_, name, color) in enumerate(lines) if mask_id not in ignore_ids]
    void_colors = [color for mask_id, (_, _, color) in enumerate(lines) if mask_id in ignore_ids and color]
    names = tuple(name for _, name, _ in kept)
    if len(set(names)) != len(names):
        dup = next(name for name in names if names.count(name) > 1)
        raise DataError(f"{path}: class '{dup}' is listed twice")
    colors = tuple(color or default_color(i, len(kept)) for i, (_, _, color) in enumerate(kept))
    ids = {mask_id: train for train, (mask_id, _, _) in enumerate(kept)}
    ids.update({v: IGNORE_LABEL for v in ignore_ids})
    ids.setdefault(IGNORE_LABEL, IGNORE_LABEL)
    color_map = {int(pack_rgb(np.array(color))): train for train, (_, _, color) in enumerate(kept) if color}
    for color in (*ignore_colors, *void_colors):
        color_map[int(pack_rgb(np.array(color)))] = IGNORE_LABEL
    if len(color_map) < sum(1 for _, _, c in kept if c) + len(set(ignore_colors) | set(void_colors)):
        raise DataError(f"{path}: two lines give the same colour; colour masks could not be told apart")
    hint = (f"give each class its colour in {path.name} ('name R G B') to read colour masks"
            if not color_map else "")
    return ClassFile(names=names, colors=colors, label_map=LabelMap(ids=ids, colors=color_map, colour_hint=hint))


def read_classes(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """A ``classes.txt``'s class names and colours (see :func:`read_class_file`)."""
    classes = read_class_file(path)
    return classes.names, classes.colors


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
