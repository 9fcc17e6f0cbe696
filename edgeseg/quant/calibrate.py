"""Representative data for post-training int8 calibration.

Frames come from the *training* split only. ``random`` draws them with a fixed seed;
``balanced`` walks the classes from rarest to commonest and takes frames that contain each, so
thin, rare classes (poles, signs, cyclists) shape the activation ranges too. The chosen frames
are written as a manifest (paths relative to the dataset root) so an export can be repeated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeseg.core.files import write_text_atomic
from edgeseg.core.geometry import PAD_VALUE
from edgeseg.data.base import Split
from edgeseg.core.images import read_image, read_label
from edgeseg.core.errors import ConfigError, DataError

log = logging.getLogger("edgeseg")

SELECTIONS = ("random", "balanced")
MIN_RECOMMENDED = 100


def select_frames(split: Split, size: int, method: str = "balanced", seed: int = 0) -> list[tuple[Path, Path]]:
    """Choose ``size`` (image, label) pairs of ``split`` for calibration."""
    if method not in SELECTIONS:
        raise ConfigError(f"--calib-select must be one of {', '.join(SELECTIONS)}, got '{method}'")
    items = list(split.items)
    if size < 1:
        raise ConfigError(f"--calib-size must be >= 1, got {size}")
    if size >= len(items):
        return items
    rng = np.random.default_rng(seed)
    if method == "random":
        return [items[i] for i in sorted(rng.choice(len(items), size, replace=False))]
    present = np.zeros((len(items), split.info.num_classes), bool)
    for i, (_, label_path) in enumerate(items):
        label, _ = read_label(label_path, split.info.label_map)
        present[i] = np.bincount(label.ravel(), minlength=256)[: split.info.num_classes] > 0
    order = np.argsort(present.sum(0))  # rarest class first (fewest frames containing it)
    chosen: list[int] = []
    taken = np.zeros(len(items), bool)
    while len(chosen) < size:
        progressed = False
        for c in order:
            candidates = np.flatnonzero(present[:, c] & ~taken)
            if len(candidates) and len(chosen) < size:
                pick = int(rng.choice(candidates))
                taken[pick] = True
                chosen.append(pick)
                progressed = True
        if not progressed:  # frames with no labelled class left
            rest = np.flatnonzero(~taken)
            chosen.extend(int(i) for i in rng.choice(rest, size - len(chosen), replace=False))
    return [items[i] for i in sorted(chosen)]


def write_manifest(path: Path, split: Split, items, method: str, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# edgeseg calibration manifest: {split.info.name} split '{split.split}', "
              f"{len(items)} frames, selection={method}, seed={seed}\n"
              f"# paths are relative to the dataset root\n")
    lines = [f"{Path(image).relative_to(split.root)}\t{Path(label).relative_to(split.root)}\n" for image, label in items]
    write_text_atomic(path, header + "".join(lines))
    return path


def read_manifest(path: Path, root: Path) -> list[tuple[Path, Path]]:
    if not path.is_file():
        raise ConfigError(f"--calib-manifest: file not found: {path}")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{n}: expected 'IMAGE<TAB>LABEL'")
        image, label = (Path(root) / p for p in parts)
        if not image.is_file():
            raise DataError(f"{path}:{n}: calibration image not found: {image}")
        items.append((image, label))
    if not items:
        raise DataError(f"calibration manifest {path} lists no frames")
    return items


def load_calibration_frames(items, input_size, pad_value: float = PAD_VALUE, progress=None):
    """Float32 frames (1xHxWx3) in the model's input layout, letterboxed exactly as the runtime
    fits a frame (so frames of any size calibrate, e.g. Pascal VOC's)."""
    from edgeseg.core.geometry import letterbox

    frames = []
    for image_path, _ in items:
        x, _ = letterbox(read_image(Path(image_path)), input_size, pad_value)
        frames.append(x[None])
        if progress:
            progress()
    return frames


def check_calibration_size(n: int, batch_size: int = 1) -> None:
    if n == 0:
        raise DataError("the calibration set is empty")
    if n < batch_size:
        raise ConfigError(f"--calib-size {n} is smaller than the batch size {batch_size}")
    if n < MIN_RECOMMENDED:
        log.warning("only %d calibration frames; a few hundred give steadier int8 ranges", n)
