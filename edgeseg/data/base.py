"""What every dataset format provides: (image, label) pairs of a split.

A format module exposes ``info(root) -> DatasetInfo`` (:mod:`edgeseg.core.labels`),
``pairs(root, split) -> Pairs``, ``detect(root)`` and ``LAYOUT``. All formats map their label
files to *train ids* ``0..num_classes-1`` with ``IGNORE_LABEL`` (255) for pixels that count in
neither loss nor metrics.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.core.errors import DataError
from edgeseg.core.labels import DatasetInfo

@dataclass(frozen=True)
class Pairs:
    """(image, label) file pairs of one split, and the images that have no label."""

    items: list[tuple[Path, Path]]
    unpaired: list[Path] = field(default_factory=list)
    expected_label: dict[Path, Path] = field(default_factory=dict)


def names_frame(pattern: str, image) -> bool:
    """Whether the glob ``pattern`` (``--holdout``, ``--frames``) names the frame of ``image``: its
    file name without the extension, e.g. ``'0006R0_*'`` for one CamVid drive."""
    return fnmatch.fnmatch(Path(image).stem, pattern)


def frames_named(source, frames: str | None):
    """``source`` (a :class:`Split`, or TFRecord shards) or, with a glob, only the frames it
    names (``--frames``: a drive held out, say)."""
    if frames is None:
        return source
    if not hasattr(source, "select"):
        raise DataError("--frames picks image files by name; TFRecord shards have none")
    return source.select(frames)


@dataclass(frozen=True)
class Split:
    """A loaded split: metadata plus checked pairs."""

    info: DatasetInfo
    root: Path
    split: str
    items: list[tuple[Path, Path]]
    unpaired: tuple = ()  # images without a label, when loaded with allow_unpaired
    expected_label: dict = field(default_factory=dict)

    def partition(self, pattern: str) -> tuple["Split", "Split"]:
        """(frames whose image name does not match the glob ``pattern``, frames that do): a
        held-out part of a split, e.g. one recording sequence."""
        matches = [names_frame(pattern, image) for image, _ in self.items]
        held = [item for item, match in zip(self.items, matches) if match]
        kept = [item for item, match in zip(self.items, matches) if not match]
        if not held:
            raise DataError(f"--holdout {pattern!r} matches no frame of split '{self.split}'")
        if len(held) == len(self.items):
            raise DataError(f"--holdout {pattern!r} matches every frame of split '{self.split}'")
        return (Split(self.info, self.root, f"{self.split} without {pattern}", kept, self.unpaired, self.expected_label),
                Split(self.info, self.root, f"{self.split}: {pattern}", held))

    def select(self, pattern: str) -> "Split":
        """The frames whose image name matches the glob ``pattern`` (``evaluate --frames``)."""
        items = [item for item in self.items if names_frame(pattern, item[0])]
        if not items:
            raise DataError(f"--frames {pattern!r} matches no frame of split '{self.split}'")
        return Split(self.info, self.root, f"{self.split}: {pattern}", items)

    @property
    def image_paths(self) -> list[str]:
        return [str(i) for i, _ in self.items]

    @property
    def label_paths(self) -> list[str]:
        return [str(l) for _, l in self.items]


def pair_by_stem(images: list[Path], label_dir: Path, label_name) -> Pairs:
    """Pair each image with ``label_dir / label_name(image)``; collect images without one."""
    return pair_files(images, lambda image: label_dir / label_name(image))


def pair_files(images: list[Path], label_of) -> Pairs:
    """Pair each image with the path ``label_of(image)``; collect images without one."""
    items, unpaired, expected = [], [], {}
    for image in images:
        label = label_of(image)
        if label.is_file():
            items.append((image, label))
        else:
            unpaired.append(image)
            expected[image] = label
    return Pairs(items, unpaired, expected)


def spread(items: list, k: int = 3) -> list:
    """Up to ``k`` of ``items``, first, last and evenly between: what format detection reads."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def mask_values(paths) -> tuple[set, str | None]:
    """The values the label files hold (ints for id and indexed masks, ``(r, g, b)`` for colour
    masks), and why they could not be read (None when all were)."""
    import numpy as np

    from edgeseg.core.images import read_raw_label
    from edgeseg.core.labels import pack_rgb, unpack_rgb

    values = set()
    for path in paths:
        try:
            raw = read_raw_label(path)
        except DataError as e:
            return values, str(e)
        if raw.ndim == 3 and np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2]):
            raw = raw[..., 0]  # a grey colour mask holds ids
        if raw.ndim == 2:
            values.update(np.unique(raw).tolist())
        else:
            values.update(unpack_rgb(int(k)) for k in np.unique(pack_rgb(raw)))
    return values, None


def describe_values(values) -> str:
    ints = sorted(v for v in values if not isinstance(v, tuple))
    colours = sorted(v for v in values if isinstance(v, tuple))
    parts = []
    if ints:
        parts.append("ids " + ", ".join(map(str, ints[:8])) + (" ..." if len(ints) > 8 else ""))
    if colours:
        parts.append(f"{len(colours)} colours, e.g. " + ", ".join(f"({r}, {g}, {b})" for r, g, b in colours[:3]))
    return " and ".join(parts) or "nothing"


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what} not found: {path}")
    return path
