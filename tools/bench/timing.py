"""The timing loop the standalone benchmark scripts share for what edgeseg's runtime cannot run
(`bench_peers.py` in .venv-bench: PyTorch and ONNX Runtime sessions; `gpu_check.py` on a GPU
machine, which has no edgeseg venv)."""

from __future__ import annotations

import time

import numpy as np


def timeit(fn, rounds: int, warmup: int = 3) -> dict:
    """Milliseconds of ``rounds`` calls of ``fn`` after ``warmup`` untimed ones: median and p90."""
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(rounds):
        s = time.perf_counter()
        fn()
        t.append(1000 * (time.perf_counter() - s))
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90))}
