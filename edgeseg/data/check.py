"""`edgeseg data check`, `edgeseg data stats`, and the check `edgeseg train` makes of every frame
before its first step: scan a dataset with numpy + OpenCV.

Each (image, label) pair is read as training reads it: the image's file must be whole (a PNG's
checksums, a JPEG's end marker; `data check` also decodes it), the label is decoded, its size
must be the image's, and every value it holds must be one of the dataset's (a class id or colour,
or an ignored value). Problems are grouped by kind; each names its file. Pairs are read in
threads (OpenCV decodes without the GIL).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.images import UnreadableImage, probe_image, read_image, read_label, read_raw_label
from edgeseg.core.labels import DatasetInfo, describe_value

# kind -> what a line of the summary says of the files of that kind
KINDS = {
    "missing_label": "images without a label",
    "unreadable_image": "images that cannot be read",
    "unreadable_label": "labels that cannot be read",
    "colour_label": "colour masks without colours to read them by (give 'name R G B' lines in classes.txt, or save ids)",
    "size_mismatch": "image and label of different sizes",
    "unknown_values": "labels with values outside the classes",
    "empty_split": "empty splits",
}


def size_text(wh) -> str:
    """A size as every message writes it: ``192x144`` is width x height (the caller says
    ``(WxH)`` once in the line)."""
    return f"{wh[0]}x{wh[1]}"


@dataclass(frozen=True)
class Problem:
    kind: str
    path: Path  # the file at fault
    text: str  # the full line, naming the file
    short: str = ""  # what the summary line of its kind says of it (default: text)


@dataclass
class PairScan:
    problems: list[Problem] = field(default_factory=list)
    size: tuple[int, int] | None = None  # of the image, (width, height)
    pixels: np.ndarray | None = None  # per train id, 256 entries
    unknown: dict = field(default_factory=dict)  # raw value -> pixels


def scan_pair(info: DatasetInfo, image_path: Path, label_path: Path, decode_image: bool = True) -> PairScan:
    """Read one pair as training does (see the module); ``decode_image`` False only checks the
    image's file (whole, and its size) without decoding its pixels."""
    out = PairScan()
    try:
        out.size = probe_image(image_path)
        if decode_image:
            read_image(image_path)
    except UnreadableImage as e:
        out.problems.append(Problem("unreadable_image", Path(image_path), str(e), _after(str(e), "cannot read image ")))
    try:
        raw = read_raw_label(label_path)
    except DataError as e:
        out.problems.append(Problem("unreadable_label", Path(label_path), str(e), _after(str(e), "cannot read label ")))
        return out
    label_size = (raw.shape[1], raw.shape[0])
    if out.size is not None and label_size != out.size:
        short = f"{image_path} is {size_text(out.size)} but {label_path} is {size_text(label_size)}"
        out.problems.append(Problem("size_mismatch", Path(label_path), f"size mismatch: {short} (WxH)", short))
    try:
        out.pixels, out.unknown = info.label_map.census(raw)
    except DataError as e:
        out.problems.append(Problem("colour_label", Path(label_path), f"{label_path}: {e}", str(label_path)))
        return out
    if out.unknown:
        values = sorted(out.unknown.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"{describe_value(v)} ({n:,} px)" for v, n in values[:5])
        more = f" and {len(values) - 5} more" if len(values) > 5 else ""
        out.problems.append(Problem(
            "unknown_values", Path(label_path),
            f"unknown label {listed}{more} in {label_path} (valid: {info.label_map.valid_values()})"))
    return out


@dataclass
class CheckReport:
    """What the check found in one split. ``ok`` when there is no problem."""

    split: str
    pairs: int = 0
    unpaired: int = 0
    problems: list[Problem] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> frames
    unknown: dict = field(default_factory=dict)  # raw value -> [pixels, files]
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    valid: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unknown_ids(self) -> Counter:
        return Counter({v: n for v, (n, _) in self.unknown.items()})

    def by_kind(self) -> dict[str, list[Problem]]:
        out: dict[str, list[Problem]] = {}
        for problem in self.problems:
            out.setdefault(problem.kind, []).append(problem)
        return out

    def bad_frames(self) -> int:
        return len({p.path.stem for p in self.problems})

    def kind_lines(self, names: int = 3) -> list[str]:
        """One line per kind of problem: how many files, the first ones named."""
        lines = []
        for kind, problems in self.by_kind().items():
            more = f"; and {len(problems) - names} more" if len(problems) > names else ""
            if kind == "unknown_values":
                values = sorted(self.unknown.items(), key=lambda kv: -kv[1][0])
                shown = "; ".join(f"{describe_value(v)}: {n:,} px in {_files(files, names)}" for v, (n, files) in values[:4])
                extra = f"; and {len(values) - 4} more values" if len(values) > 4 else ""
                lines.append(f"{KINDS[kind]}: {len(problems)} (valid: {self.valid}): {shown}{extra}")
                continue
            shown = "; ".join(p.short or p.text for p in problems[:names])
            lines.append(f"{KINDS[kind]}: {len(problems)}"
                         + (" (WxH)" if kind == "size_mismatch" else "") + f": {shown}{more}")
        return lines


def _after(text: str, prefix: str) -> str:
    return text[len(prefix):] if text.startswith(prefix) else text


def _files(files: list, names: int) -> str:
    shown = ", ".join(str(f) for f in files[:names])
    return f"{len(files)} file(s): {shown}" + (", ..." if len(files) > names else "")


def workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def check_split(info: DatasetInfo, items, unpaired, expected, split: str, progress=None,
                decode_images: bool = True, threads: int | None = None, cache=None) -> CheckReport:
    """Check every pair of a split (see :func:`scan_pair`), in threads; ``progress()`` after each.
    With a ``cache`` (:class:`edgeseg.data.preflight.CheckCache`), pairs unchanged since it found
    them right are not read again."""
    t0 = time.perf_counter()
    report = CheckReport(split=split, pairs=len(items), unpaired=len(unpaired), valid=info.label_map.valid_values())
    for image in unpaired:
        expect = expected.get(image, "label")
        report.problems.append(Problem("missing_label", Path(image), f"missing label: {image} has no {expect}",
                                       f"{image} (no {expect})"))

    def scan(pair):
        if cache is None:
            return scan_pair(info, pair[0], pair[1], decode_images)
        known = cache.get(*pair)
        if known is not None:
            return known
        stamps = cache.stamps(*pair)
        scanned = scan_pair(info, pair[0], pair[1], decode_images)
        cache.put(pair[0], pair[1], stamps, scanned)
        return scanned

    with ThreadPoolExecutor(threads or workers()) as pool:
        for (_, label_path), scanned in zip(items, pool.map(scan, items)):
            if progress:
                progress()
            report.problems += scanned.problems
            if scanned.size is not None:
                report.sizes[scanned.size] += 1
            if scanned.pixels is not None:
                report.pixels += scanned.pixels
            for value, n in scanned.unknown.items():
                entry = report.unknown.setdefault(value, [0, []])
                entry[0] += n
                entry[1].append(label_path)
    if not items and not unpaired:
        report.problems.append(Problem("empty_split", Path(split), f"split '{split}' is empty"))
    if cache is not None:
        cache.save()
    report.seconds = time.perf_counter() - t0
    return report


def pixel_counts(info: DatasetInfo, label_paths, progress=None) -> np.ndarray:
    """Pixels per train id over the given label files (ignore pixels not counted)."""
    counts = np.zeros(info.num_classes, np.int64)
    for path in label_paths:
        label, _ = read_label(Path(path), info.label_map)
        counts += np.bincount(label.ravel(), minlength=256)[: info.num_classes]
        if progress:
            progress()
    return counts
