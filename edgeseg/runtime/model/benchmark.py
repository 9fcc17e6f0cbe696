"""Timing exported models (.tflite and .onnx): warm-up, then timed rounds, interleaved across
models so that noise on a shared machine hits all of them alike. Used by `edgeseg benchmark`
and the benchmark tools."""

from __future__ import annotations

import time

import numpy as np

from edgeseg.runtime.model.backend import is_onnx, open_backend


class _Ready:
    """A backend and a zero input for it."""

    def __init__(self, backend):
        self.backend, self.x = backend, np.zeros(backend.input.shape, backend.input.dtype)

    def invoke(self):
        self.backend.run(self.x)


def ready_interpreter(model_path, threads: int, delegates=(), warmup: int = 3, providers=None) -> _Ready:
    """A model (.tflite or .onnx) with a zero input and ``warmup`` runs done."""
    ready = _Ready(open_backend(model_path, threads, delegates, providers))
    for _ in range(warmup):
        ready.invoke()
    return ready


def time_invokes(interpreters: dict, runs: int, settle: int = 2) -> dict:
    """Milliseconds of ``runs`` runs per model (name -> ready model), in interleaved rounds;
    name -> {median_ms, p90_ms, p95_ms, runs}.

    In each round a model first runs ``settle`` untimed invokes: ONNX Runtime's worker threads
    keep spinning for a while after a run, and the next model timed straight after one ran up to
    2x slower (CamVid fp32 TFLite: 47 ms against 21 ms alone; with two settling invokes, 21.3).
    """
    times = {name: [] for name in interpreters}
    settle = settle if len(interpreters) > 1 else 0
    for _ in range(runs):
        for name, it in interpreters.items():
            for _ in range(settle):
                it.invoke()
            t0 = time.perf_counter()
            it.invoke()
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
                   "p95_ms": float(np.percentile(t, 95)), "runs": len(t)} for name, t in times.items()}


def benchmark_models(models, thread_counts, delegates=(), runs: int = 20, warmup: int = 3,
                     providers=None) -> list[dict]:
    """Latency for every model x thread count: one row each (model, backend, threads, median, p95);
    ``delegates`` apply to .tflite files, ``providers`` to .onnx ones."""
    rows = []
    for threads in thread_counts:
        ready = {}
        for m in models:
            onnx = is_onnx(m)
            ready[str(m)] = ready_interpreter(m, threads, () if onnx else delegates, warmup, providers if onnx else None)
        for model, stats in time_invokes(ready, runs).items():
            rows.append({"model": model, "backend": ready[model].backend.description, "threads": threads, **stats})
    return rows
