"""`edgeseg benchmark`: inference latency of model files. Imports no TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, fail, handle_errors, model_file_problem, provider_list, setup_logging, usage


def _thread_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        usage(f"--threads takes comma-separated counts >= 1 (e.g. 1,2,4), got {text!r}")
    return counts


@handle_errors
def benchmark(
    models: Annotated[list[Path], typer.Argument(help=".tflite and/or .onnx models.")],
    threads: Annotated[str, typer.Option(help="Comma-separated thread counts.")] = "1,2,4",
    delegate: Annotated[Optional[str], typer.Option(help="xnnpack | gpu | nnapi | edgetpu | PATH.so (.tflite models)")] = None,
    providers: Annotated[Optional[str], typer.Option(help="ONNX Runtime providers for .onnx models: tensorrt,cuda,cpu; or trt (TensorRT's bindings).")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed invokes per model and thread count.")] = 20,
    warmup: Annotated[int, typer.Option(min=0)] = 3,
    json_out: Annotated[Optional[Path], typer.Option("--json")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Inference latency (invoke only) across models and thread counts: median and p95."""
    setup_logging(verbose)
    from edgeseg.core.files import check_output_file
    from edgeseg.runtime.model.backend import BackendError, load_delegates
    from edgeseg.runtime.model.benchmark import benchmark_models

    counts = _thread_counts(threads)
    problems = [p for p in map(model_file_problem, models) if p]
    if problems:
        fail(problems[0])
    check_output_file(json_out, "--json")
    delegates = load_delegates(delegate)
    try:
        rows = benchmark_models(models, counts, delegates, runs, warmup, provider_list(providers))
    except BackendError as e:
        fail(str(e))
    typer.echo(f"{'model':<34} {'backend':<40} {'threads':>7} {'median ms':>10} {'p95 ms':>8}")
    for r in rows:
        typer.echo(f"{Path(r['model']).name[:34]:<34} {r['backend'][:40]:<40} {r['threads']:>7} "
                   f"{r['median_ms']:>10.1f} {r['p95_ms']:>8.1f}")
    if json_out:
        from edgeseg.core.files import write_json_atomic

        write_json_atomic(json_out, rows)
