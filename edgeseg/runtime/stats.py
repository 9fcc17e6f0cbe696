"""Per-stage latency statistics and FPS for the run loop."""

from __future__ import annotations

import time
from collections import defaultdict, deque

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess")


class RunStats:
    """Latencies (ms) per stage over a rolling window and over the whole run."""

    def __init__(self, window: int = 120):
        self.window = window
        self.recent = defaultdict(lambda: deque(maxlen=window))
        self.all = defaultdict(list)
        self.frames = 0
        self.start = time.perf_counter()
        self._times = deque(maxlen=window)

    def add(self, stage: str, ms: float) -> None:
        self.recent[stage].append(ms)
        self.all[stage].append(ms)

    def frame_done(self) -> None:
        self.frames += 1
        self._times.append(time.perf_counter())

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    def line(self) -> str:
        parts = [f"{self.fps:5.1f} FPS"]
        for stage in STAGES:
            if self.recent[stage]:
                v = np.asarray(self.recent[stage])
                parts.append(f"{stage} {np.percentile(v, 50):.1f}/{np.percentile(v, 95):.1f}ms")
        return "  ".join(parts)

    def summary(self) -> dict:
        wall = time.perf_counter() - self.start
        out = {"frames": self.frames, "seconds": wall, "fps": self.frames / wall if wall else 0.0, "stages": {}}
        for stage, values in self.all.items():
            v = np.asarray(values)
            out["stages"][stage] = {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                                    "mean_ms": float(v.mean())}
        return out
