"""Timing ``invoke()`` of exported models: warm-up, then timed rounds, interleaved across
models so that noise on a shared machine hits all of them alike. Used by `edgeseg benchmark`
and the benchmark tools."""

from __future__ import annotations

import time

import numpy as np

from edgeseg.runtime.backend import make_interpreter


def ready_interpreter(model_path, threads: int, delegates=(), warmup: int = 3):
    """An interpreter with a zero input set and ``warmup`` invokes done."""
    it = make_interpreter(model_path, threads, delegates)
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    return it


def time_invokes(interpreters: dict, runs: int) -> dict:
    """Milliseconds of ``runs`` invokes per interpreter (name -> interpreter), in interleaved
    rounds; name -> {median_ms, p90_ms, p95_ms, runs}."""
    times = {name: [] for name in interpreters}
    for _ in range(runs):
        for name, it in interpreters.items():
            t0 = time.perf_counter()
            it.invoke()
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
                   "p95_ms": float(np.percentile(t, 95)), "runs": len(t)} for name, t in times.items()}


def benchmark_models(models, thread_counts, delegates=(), runs: int = 20, warmup: int = 3) -> list[dict]:
    """Invoke latency for every model x thread count: one row each (model, threads, median, p95)."""
    rows = []
    for threads in thread_counts:
        interpreters = {str(m): ready_interpreter(m, threads, delegates, warmup) for m in models}
        for model, stats in time_invokes(interpreters, runs).items():
            rows.append({"model": model, "threads": threads, **stats})
    return rows
