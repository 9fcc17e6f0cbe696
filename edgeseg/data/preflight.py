"""The check `edgeseg train` makes of every frame before its first step (and `edgeseg data
tfrecords` before it writes a shard): :func:`edgeseg.data.check.check_split` over the splits the
run reads, images checked by their files without decoding their pixels, and pairs found right by
an earlier check and unchanged since not read again (:class:`CheckCache`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.labels import DatasetInfo
from edgeseg.data.check import PairScan, check_split


class CheckCache:
    """Pairs found right by an earlier check before training, so that the next run on the same
    data reads only what changed: by image and label path, with both files' size and
    modification time, their image size and pixels per class. One JSON file per dataset split and
    label map under ``$EDGESEG_CACHE/checked`` (default ``~/.cache/edgeseg``), the last 64 kept; a
    cache that cannot be read or written is only not used. Pairs with a problem are never kept:
    they are read every time."""

    VERSION = 1
    KEEP = 64  # cache files (dataset splits) kept

    def __init__(self, info: DatasetInfo, root, split: str):
        import hashlib
        import json

        key = json.dumps([self.VERSION, str(Path(root).resolve()), split, sorted(info.label_map.ids.items()),
                          sorted(info.label_map.colors.items())])
        folder = Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "checked"
        self.path = folder / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.json"
        self.entries: dict = {}
        self.kept: dict = {}  # what this check found right: the next cache
        try:
            self.entries = json.loads(self.path.read_text()).get("pairs", {})
        except (OSError, ValueError, AttributeError):
            self.entries = {}

    @staticmethod
    def _stamp(path) -> list | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def get(self, image, label) -> PairScan | None:
        entry = self.entries.get(str(image))
        if not entry or entry[0] != str(label) or entry[1] != self._stamp(image) or entry[2] != self._stamp(label):
            return None
        pixels = np.zeros(256, np.int64)
        for value, n in entry[4].items():
            pixels[int(value)] = n
        self.kept[str(image)] = entry
        return PairScan(size=tuple(entry[3]), pixels=pixels)

    def stamps(self, image, label) -> tuple:
        """Taken before a pair is read: a file changed while it was read is read again next time."""
        return self._stamp(image), self._stamp(label)

    def put(self, image, label, stamps: tuple, scan: PairScan) -> None:
        if not scan.problems and scan.pixels is not None and scan.size is not None and None not in stamps:
            self.kept[str(image)] = [str(label), *stamps, list(scan.size),
                                     {str(i): int(n) for i, n in enumerate(scan.pixels) if n}]

    def save(self) -> None:
        if self.kept == self.entries:
            return
        from edgeseg.core.files import write_json_atomic

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, {"version": self.VERSION, "pairs": self.kept}, indent=None)
            # the folder keeps the splits checked last, not every dataset ever checked
            files = sorted(self.path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for old in files[:-self.KEEP]:
                old.unlink(missing_ok=True)
        except OSError:
            pass


def check_before_training(sources, progress_factory=None, use_cache: bool = True) -> dict:
    """What `edgeseg train` does before its first step: every pair of the splits it will read
    (``sources``: Splits; TFRecord shards were checked when written) read as training will,
    images by their files (whole, their size) without decoding their pixels. Returns the pixels
    per train id of each source (by ``id``), for class weights; DataError with one line per kind
    of problem (the first files named, the count) when any is found, before anything is written.

    ``progress_factory(total)``: a context manager whose value is called once per pair (a
    progress bar), used when there are many pairs. Pairs found right before and unchanged since
    are not read again (:class:`CheckCache`).
    """
    import contextlib
    import logging

    log = logging.getLogger("edgeseg")
    splits, seen = [], set()
    for source in sources:
        if source is None or not hasattr(source, "items") or id(source) in seen:
            continue
        seen.add(id(source))
        splits.append(source)
    pending = {}
    for source in splits:  # pairs shared by two sources (a held-out part of a split) read once
        for item in source.items:
            pending.setdefault(item, source)
    items = list(pending)
    unpaired = [(s, image) for s in splits for image in getattr(s, "unpaired", ())]
    if not items and not unpaired:
        return {}
    t0 = time.perf_counter()
    if len(items) >= 200:
        log.info("checking the %d frames training reads (pairs found right by an earlier check and unchanged "
                 "since are not read again)", len(items))
    bar = progress_factory(len(items)) if progress_factory and len(items) >= 200 else contextlib.nullcontext(None)
    with bar as tick:
        reports = {}
        for source in splits:  # per dataset: label maps differ between a dataset and its mix
            own = [item for item in items if pending[item] is source]
            reports[id(source)] = check_split(
                source.info, own, [image for s, image in unpaired if s is source],
                dict(getattr(source, "expected_label", {})), source.split, progress=tick, decode_images=False,
                cache=CheckCache(source.info, source.root, source.split) if use_cache else None)
    seconds = time.perf_counter() - t0
    problems = [(source, reports[id(source)]) for source in splits if not reports[id(source)].ok]
    log.info("checked %d frames in %.1fs (%s)", len(items), seconds, ", ".join(sorted({str(s.split) for s in splits})))
    if problems:
        lines = []
        bad = 0
        for source, report in problems:
            where = f"{source.root} ({source.split})"
            bad += report.bad_frames()
            lines += [f"  {where}: {line}" for line in report.kind_lines()]
        roots = sorted({str(source.root) for source, _ in problems})
        raise DataError(f"{bad} frame(s) cannot be trained on; nothing was written "
                        f"(`edgeseg data check {roots[0]}` lists every file):\n" + "\n".join(lines))
    counts = {}
    for source in splits:
        counts[id(source)] = reports[id(source)].pixels[: source.info.num_classes]
    return counts
