"""Per-stage latency statistics and FPS for the run loop, in memory that does not grow with the
length of the run (a camera stream may run for weeks)."""

from __future__ import annotations

import random
import time
from collections import defaultdict, deque

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess")


class Reservoir:
    """A uniform random sample of at most ``size`` values out of all values seen (Vitter's
    algorithm R), with the exact count and mean: percentiles of a long run in fixed memory."""

    def __init__(self, size: int = 4096, seed: int = 0):
        self.size = size
        self.values: list[float] = []
        self.count = 0
        self.total = 0.0
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.size:
                self.values[j] = value

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.values, q)) if self.values else 0.0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class RunStats:
    """Latencies (ms) per stage over a rolling window (the status line) and over the whole run
    (a fixed-size reservoir per stage: the summary's percentiles)."""

    def __init__(self, window: int = 120, reservoir: int = 4096):
        self.window = window
        self.recent = defaultdict(lambda: deque(maxlen=window))
        self.all = defaultdict(lambda: Reservoir(reservoir))
        self.frames = 0
        self.start = time.perf_counter()
        self._times = deque(maxlen=window)

    def add(self, stage: str, ms: float) -> None:
        self.recent[stage].append(ms)
        self.all[stage].add(ms)

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

    def recent_quantiles(self, quantiles=(0.5, 0.95)) -> dict:
        """{stage: {quantile: ms}} over the rolling window (/metrics)."""
        return {stage: {q: float(np.percentile(np.asarray(v), 100 * q)) for q in quantiles}
                for stage, v in self.recent.items() if v}

    def summary(self) -> dict:
        wall = time.perf_counter() - self.start
        out = {"frames": self.frames, "seconds": wall, "fps": self.frames / wall if wall else 0.0, "stages": {}}
        for stage, r in self.all.items():
            out["stages"][stage] = {"p50_ms": r.percentile(50), "p95_ms": r.percentile(95), "mean_ms": r.mean,
                                    "count": r.count}
        return out
