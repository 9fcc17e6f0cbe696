"""A deterministic, generated road-scene dataset: the embedded default for the demo and tests.

Scenes have a sky, buildings on the horizon, a road in perspective with sidewalks, trees, cars
and thin poles, with texture and noise so that colour alone does not separate the classes.
Generated once into a folder in the ``folder`` layout, then read like any other dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.files import current_umask
from edgeseg.core.labels import DatasetInfo, write_classes
from edgeseg.data import folder
from edgeseg.data.base import Pairs

CLASS_NAMES = ("sky", "building", "road", "sidewalk", "tree", "car", "pole")
COLORS = (
    (70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232), (107, 142, 35),
    (0, 0, 142), (153, 153, 153),
)
SKY, BUILDING, ROAD, SIDEWALK, TREE, CAR, POLE = range(len(CLASS_NAMES))
VERSION = 1
DEFAULT_SIZE = (96, 128)
DEFAULT_COUNTS = {"train": 240, "val": 60}


def default_root() -> Path:
    cache = Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg"))
    return cache / f"synthetic-v{VERSION}"


def render_scene(rng: np.random.Generator, size=DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 image and its uint8 label map."""
    import cv2

    h, w = size
    img = np.zeros((h, w, 3), np.float32)
    lab = np.zeros((h, w), np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.55))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]

    sky_top, sky_bottom = np.array(rng.uniform([60, 110, 170], [120, 160, 230])), np.array([200, 215, 235])
    img[:] = sky_top + (sky_bottom - sky_top) * yy[..., None]
    lab[:] = SKY

    x = -int(rng.integers(0, w // 6))
    while x < w:  # buildings along the horizon
        bw = int(rng.integers(w // 8, w // 3))
        top = int(rng.integers(int(horizon * 0.1), max(int(horizon * 0.8), 2)))
        base = rng.uniform(50, 140)
        tint = rng.uniform(-25, 25, 3)
        x0, x1 = max(x, 0), min(x + bw, w)
        img[top:horizon, x0:x1] = base + tint
        lab[top:horizon, x0:x1] = BUILDING
        for wy in range(top + 3, horizon - 3, 6):  # windows
            for wx in range(x0 + 2, x1 - 3, 5):
                img[wy:wy + 2, wx:wx + 2] = base * 0.4
        x += bw + int(rng.integers(0, w // 10))

    ground = np.zeros((h, w), np.uint8)
    vx = rng.uniform(0.3, 0.7) * w
    left, right = rng.uniform(-0.4, 0.15) * w, rng.uniform(0.85, 1.4) * w
    road_poly = np.array([[vx - 2, horizon], [vx + 2, horizon], [right, h], [left, h]], np.int32)
    img[horizon:] = np.array([150, 140, 150]) + rng.uniform(-20, 20, 3)
    lab[horizon:] = SIDEWALK
    cv2.fillPoly(ground, [road_poly], 1)
    road_color = np.array([100, 80, 100]) + rng.uniform(-15, 15, 3)
    img[ground == 1] = road_color
    lab[ground == 1] = ROAD
    cv2.line(img, (int(vx), horizon), (int((left + right) / 2), h), (230, 230, 230), 1)

    for _ in range(int(rng.integers(1, 4))):  # trees beside the road
        cx = int(rng.integers(0, w))
        r = int(rng.integers(h // 12, h // 6))
        cy = horizon - int(rng.integers(0, r))
        trunk = np.zeros((h, w), np.uint8)
        cv2.line(trunk, (cx, cy), (cx, min(horizon + r // 2, h - 1)), 1, 2)
        crown = np.zeros((h, w), np.uint8)
        cv2.circle(crown, (cx, cy), r, 1, -1)
        img[trunk == 1], lab[trunk == 1] = (90, 60, 30), TREE
        img[crown == 1] = np.array([60, 110, 40]) + rng.uniform(-20, 20, 3)
        lab[crown == 1] = TREE

    for _ in range(int(rng.integers(0, 3))):  # cars on the road, larger when nearer
        depth = rng.uniform(0.15, 1.0)
        cy = int(horizon + depth * (h - horizon) * 0.9)
        cw, ch = int(w * 0.25 * depth) + 4, int(h * 0.14 * depth) + 3
        cx = int(vx + (rng.uniform(left, right) - vx) * depth * 0.8)
        x0, y0 = max(cx - cw // 2, 0), max(cy - ch, 0)
        x1, y1 = min(cx + cw // 2, w), min(cy, h)
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        img[y0:y1, x0:x1] = rng.uniform(20, 235, 3)
        img[y0:y0 + max((y1 - y0) // 3, 1), x0 + 1:x1 - 1] = (40, 50, 60)
        lab[y0:y1, x0:x1] = CAR

    for _ in range(int(rng.integers(0, 3))):  # thin poles
        px = int(rng.integers(0, w))
        top = int(rng.integers(0, max(horizon - 5, 1)))
        bottom = int(min(h - 1, horizon + rng.integers(2, max((h - horizon) // 2, 3))))
        cv2.line(img, (px, top), (px, bottom), (180, 180, 170), 1)
        cv2.line(lab, (px, top), (px, bottom), POLE, 1)

    img += rng.normal(0, 8, img.shape)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    gain = rng.uniform(0.75, 1.2)
    return np.clip(img * gain, 0, 255).astype(np.uint8), lab


MARKER = "synthetic.json"
LAYOUT = "a folder written by `edgeseg data synth` (holds synthetic.json)"


def detect(root: Path) -> bool:
    return (root / MARKER).is_file()


def check_target(root: Path) -> None:
    """Refuse a folder this module did not write: generation replaces ``root`` entirely, so it
    must be missing, empty, or an earlier synthetic dataset (it holds ``synthetic.json``)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; refusing to generate synthetic data there")
    if root.is_dir() and not detect(root) and any(root.iterdir()):
        raise DataError(f"{root} is not empty and holds no {MARKER}: refusing to generate synthetic "
                        "data there (give a new or empty folder, or --format for the data it holds)")


def generate(root: Path, counts=None, size=DEFAULT_SIZE, seed: int = 0) -> Path:
    """Write the dataset into ``root`` (atomically: a temp folder renamed at the end).

    ``root`` must be missing, empty or an earlier synthetic dataset (see :func:`check_target`);
    anything else raises DataError and nothing is touched."""
    import cv2

    counts = counts or DEFAULT_COUNTS
    root = Path(root)
    check_target(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        for s, (split, n) in enumerate(sorted(counts.items())):
            (tmp / split / "images").mkdir(parents=True)
            (tmp / split / "masks").mkdir(parents=True)
            for i in range(n):
                rng = np.random.default_rng([seed, s, i])
                image, label = render_scene(rng, size)
                cv2.imwrite(str(tmp / split / "images" / f"{i:05d}.jpg"),
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(str(tmp / split / "masks" / f"{i:05d}.png"), label)
        write_classes(tmp / "classes.txt", CLASS_NAMES, COLORS)
        meta = {"version": VERSION, "size": list(size), "counts": counts, "seed": seed}
        (tmp / MARKER).write_text(json.dumps(meta))
        check_target(root)  # again: something may have appeared there meanwhile
        if root.is_dir():
            if detect(root):
                shutil.rmtree(root)
            else:
                root.rmdir()  # empty (checked); fails rather than delete anything that appeared
        tmp.chmod(0o777 & ~current_umask())
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def ensure(root: Path | None = None) -> Path:
    """Generate the dataset at ``root`` unless it is already there; a folder holding anything
    else is refused (DataError), never overwritten."""
    root = Path(root) if root else default_root()
    if not detect(root):
        generate(root)
    return root


def info(root: Path) -> DatasetInfo:
    return folder.info(ensure(root), name="synthetic")


def pairs(root: Path, split: str) -> Pairs:
    return folder.pairs(ensure(root), split)
