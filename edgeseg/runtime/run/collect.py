"""`edgeseg run --collect DIR`: keep the frames worth labelling, with the model's masks as draft
labels, in a folder `edgeseg train --init` fine-tunes on.

A frame's score comes from what the run already has: how unsure the model is (one minus the
margin between the two most likely classes, averaged over the pixels the frame covers) or, with
``--compare``, how much the model and the float one disagree. Frames are kept above a threshold
or as the K best of each window of frames, at least ``gap`` seconds apart and unlike the frames
kept recently (a parked car does not fill the disk), at most ``max_frames`` in the folder.
Files are written by a thread of their own; a failed write is a counted warning, never a
stopped run.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core import collection
from edgeseg.runtime.run.collect_options import CollectPolicy

log = logging.getLogger("edgeseg")
THUMB = (32, 24)  # the near-duplicate check compares grey thumbnails of this size
RECENT = 64  # ... with this many recently kept frames


def margin_uncertainty(logits: np.ndarray) -> float:
    """One minus the mean softmax margin between the two most likely classes (0: sure of every
    pixel, 1: two classes tied everywhere). ``logits``: HxWxC float."""
    top2 = np.partition(logits, -2, axis=-1)[..., -2:]
    best, second = top2[..., 1], top2[..., 0]
    total = np.exp(logits - best[..., None]).sum(-1)
    margin = (1.0 - np.exp(second - best)) / total
    return float(1.0 - margin.mean())


def thumbnail(image: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class Candidate:
    score: float
    index: int
    image: np.ndarray
    pred: np.ndarray
    captured: float
    name: str
    uncertainty: float | None
    disagreement: float | None

    def __lt__(self, other: "Candidate") -> bool:  # a min-heap of the best: ties keep the earlier frame
        return (self.score, -self.index) < (other.score, -other.index)


class Collector:
    """Offered each segmented frame (in the run's post-processing thread); keeps and writes the
    frames its policy picks into ``folder`` (a collection, :mod:`edgeseg.core.collection`)."""

    def __init__(self, folder: Path, meta, policy: CollectPolicy, warn, model_name: str, live: bool,
                 queue_size: int = 16):
        self.folder, self.policy, self.warn, self.model_name, self.live = Path(folder), policy, warn, model_name, live
        self.held = collection.prepare(self.folder, meta.class_names, meta.colors)
        self.saved = 0
        self.skipped = {"near_duplicate": 0, "too_soon": 0}
        self._window: list[Candidate] = []
        self._offered = 0
        self._last_kept: float | None = None
        self._recent: deque = deque(maxlen=RECENT)
        self._full_said = False
        self._closed = False
        self._summary: dict = {}
        self._lock = threading.Lock()  # held: added here, taken back by the writer when a write fails
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._write_loop, name="edgeseg-collect", daemon=True)
        self._thread.start()

    # --- choosing -----------------------------------------------------------------------------
    def wants_disagreement(self) -> bool:
        return self.policy.when == "disagree"

    def offer(self, frame, pred: np.ndarray, logits=None, disagreement: float | None = None) -> None:
        """One segmented frame. ``logits``: a callable giving the frame's float logits (HxWxC,
        the part the frame covers), called only when the score needs them; ``disagreement``: the
        share of pixels where the float model says otherwise (frames it ran on), else None."""
        if self._closed or self._room() <= 0:
            return
        p = self.policy
        self._offered += 1
        if p.when == "every":
            if (self._offered - 1) % p.every == 0:
                self._consider(self._candidate(frame, pred, logits, disagreement, None))
            return
        if p.when == "disagree" and disagreement is None:
            self._end_window_if_due()
            return
        cand = self._candidate(frame, pred, logits, disagreement, p.when)
        if p.threshold is not None:
            if cand.score >= p.threshold:
                self._consider(cand)
            return
        if len(self._window) < p.top:
            heapq.heappush(self._window, cand)
        elif self._window[0] < cand:
            heapq.heapreplace(self._window, cand)
        self._end_window_if_due()

    def _candidate(self, frame, pred, logits, disagreement, when) -> Candidate:
        uncertainty = margin_uncertainty(logits()) if logits is not None and when != "disagree" else None
        score = disagreement if when == "disagree" else uncertainty
        return Candidate(score if score is not None else 0.0, frame.index, frame.image, pred, frame.captured,
                         frame.name, uncertainty, disagreement)

    def _end_window_if_due(self, force: bool = False) -> None:
        """At a window's end: its candidates best first, each kept if it is far enough in time
        from the frame kept before and from those already taken from this window, and no
        near-duplicate; then queued in time order."""
        if not self._window or (not force and self._offered % self.policy.window):
            return
        taken: list[tuple[Candidate, np.ndarray | None]] = []
        for cand in sorted(self._window, reverse=True):
            thumb = self._acceptable(cand, [c for c, _ in taken], [t for _, t in taken if t is not None])
            if thumb is not False:
                taken.append((cand, thumb))
        self._window = []
        for cand, thumb in sorted(taken, key=lambda ct: ct[0].index):
            self._keep(cand, thumb)

    def _consider(self, cand: Candidate) -> None:
        thumb = self._acceptable(cand, [], [])
        if thumb is not False:
            self._keep(cand, thumb)

    def _acceptable(self, cand: Candidate, taken: list, taken_thumbs: list):
        """False (counted as skipped) or the frame's thumbnail (None without the duplicate check)."""
        p = self.policy
        times = [c.captured for c in taken] + ([self._last_kept] if self._last_kept is not None else [])
        if any(abs(cand.captured - t) < p.gap for t in times):
            self.skipped["too_soon"] += 1
            return False
        if p.dedup <= 0:
            return None
        thumb = thumbnail(cand.image)
        if any(float(np.abs(thumb - t).mean()) < p.dedup for t in (*self._recent, *taken_thumbs)):
            self.skipped["near_duplicate"] += 1
            return False
        return thumb

    def _keep(self, cand: Candidate, thumb) -> None:
        """Queue a frame for writing; what later frames are compared with changes only once it is queued."""
        if self._room() <= 0:
            return
        reason = self.policy.when if self.policy.when != "every" else f"every:{self.policy.every}"
        try:
            self._queue.put_nowait((cand, reason, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        except queue.Full:
            self.warn("collect_queue_full", "collection writer is behind; a frame was not kept")
            return
        with self._lock:
            self.held += 1
        if thumb is not None:
            self._recent.append(thumb)
        self._last_kept = cand.captured if self._last_kept is None else max(self._last_kept, cand.captured)

    def _room(self) -> int:
        room = self.policy.max_frames - self.held
        if room <= 0 and not self._full_said:
            self._full_said = True
            log.warning("--collect %s holds %d frames (--collect-max); collecting stops", self.folder, self.held)
        return room

    # --- writing ------------------------------------------------------------------------------
    def _stem(self, cand: Candidate) -> str:
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{cand.index:06d}" if self.live else cand.name
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)
        stem, n = base, 2
        while (collection.images_dir(self.folder) / f"{stem}.jpg").exists():
            stem, n = f"{base}-{n}", n + 1
        return stem

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            cand, reason, when = item
            try:
                self._write(cand, reason, when)
                self.saved += 1
            except Exception as e:  # noqa: BLE001 - a frame not written never stops the run
                with self._lock:
                    self.held -= 1
                from edgeseg.core.files import OutputError

                self.warn("collect_not_written", f"--collect: {e}" if isinstance(e, OutputError) else
                          f"--collect: cannot write into {self.folder}: {getattr(e, 'strerror', None) or e}")

    def _write(self, cand: Candidate, reason: str, when: str) -> None:
        from edgeseg.core.files import write_error, write_image_atomic

        stem = self._stem(cand)
        mask = collection.masks_dir(self.folder) / f"{stem}.png"
        image = collection.images_dir(self.folder) / f"{stem}.jpg"
        rows = self.folder / collection.FRAMES_CSV
        write_image_atomic(mask, cand.pred)  # the mask first: an image never lies there without its label
        try:
            write_image_atomic(image, cand.image)
            size = rows.stat().st_size
            try:
                with rows.open("a", newline="") as f:
                    scored = cand.uncertainty is not None or cand.disagreement is not None
                    csv.writer(f).writerow([stem, when, cand.index, reason, f"{cand.score:.5f}" if scored else "",
                                            "" if cand.uncertainty is None else f"{cand.uncertainty:.5f}",
                                            "" if cand.disagreement is None else f"{cand.disagreement:.5f}",
                                            self.model_name])
            except OSError as e:  # a row cut short by a full disk is taken back: the CSV stays whole
                with contextlib.suppress(OSError):
                    os.truncate(rows, size)
                raise write_error(rows, e) from None
        except OSError:
            image.unlink(missing_ok=True)
            mask.unlink(missing_ok=True)
            raise

    def close(self, timeout: float = 30.0) -> dict:
        """Keep the best of the unfinished window and write what is queued (at most ``timeout``
        seconds); the summary. Frames offered after this are ignored."""
        if self._closed:
            return self._summary
        self._closed = True
        self._end_window_if_due(force=True)
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._summary = {"folder": str(self.folder), "saved": self.saved, "held": self.held - self._queue.qsize(),
                         "skipped": dict(self.skipped)}
        if self._thread.is_alive():
            self._summary["not_written"] = self._queue.qsize()
            log.warning("--collect: %d frames were still waiting to be written after %.0f s", self._queue.qsize(), timeout)
        return self._summary
