"""The LiteRT interpreter: ``ai_edge_litert``, falling back to ``tflite_runtime``."""

from __future__ import annotations

import logging

log = logging.getLogger("edgeseg")


class BackendError(RuntimeError):
    pass


def interpreter_api():
    """``(Interpreter, load_delegate, name)`` from the first LiteRT package installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "tflite_runtime"
    except ImportError:
        raise BackendError("no LiteRT interpreter installed: pip install ai-edge-litert "
                           "(or tflite-runtime on older devices)") from None


def make_interpreter(model_path, threads: int | None = None, delegates=()):
    """An allocated interpreter for ``model_path`` (XNNPACK is LiteRT's default CPU path)."""
    Interpreter, _, _ = interpreter_api()
    try:
        interpreter = Interpreter(model_path=str(model_path), num_threads=threads,
                                  experimental_delegates=list(delegates) or None)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BackendError(f"cannot load {model_path}: {str(e).splitlines()[0]}") from None
    return interpreter
