"""What runs a model file: LiteRT for ``.tflite`` (``ai_edge_litert``, falling back to
``tflite_runtime``), ONNX Runtime for ``.onnx`` (:mod:`edgeseg.runtime.model.onnx_backend`) or, with
``--providers trt``, TensorRT's own bindings (:mod:`edgeseg.runtime.model.tensorrt_backend`), behind one
small interface: input and output shapes, types and quantization, and ``run``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core.errors import EdgesegError
from edgeseg.core.quiet import captured_stderr

log = logging.getLogger("edgeseg")


class BackendError(EdgesegError, RuntimeError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: ``shape`` (with the batch), ``dtype``, and for integer tensors
    ``quantization`` (scale, zero point): real = (q - zero point) * scale."""

    shape: tuple
    dtype: type
    quantization: tuple[float, int] | None = None


class Backend:
    """A loaded model: ``input``, ``output`` (:class:`TensorInfo`), ``description`` (what runs
    it, for the user), and ``run(x) -> output`` for one batch. ``leaves_cpu_free``: the model
    runs on an accelerator, whole, so the CPU's cores are free while it runs (post-processing
    threads can use them)."""

    path: Path
    input: TensorInfo
    output: TensorInfo
    description: str
    leaves_cpu_free: bool = False

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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


def make_interpreter(model_path, threads: int | None = None, delegates=(), allocate: bool = True):
    """An allocated interpreter for ``model_path`` (XNNPACK is LiteRT's default CPU path);
    ``allocate`` False: only to read the tensors' details (no kernels prepared)."""
    from edgeseg.runtime.model.flatbuffer import FlatbufferError, check_constant_tensors

    Interpreter, _, _ = interpreter_api()
    try:
        check_constant_tensors(Path(model_path).read_bytes())
    except FlatbufferError as e:
        raise BackendError(f"cannot load {model_path}: {e}") from None
    except OSError:
        pass  # the interpreter says why it cannot read the file
    try:
        # LiteRT announces "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
        with captured_stderr():
            interpreter = Interpreter(model_path=str(model_path), num_threads=threads,
                                      experimental_delegates=list(delegates) or None)
            if allocate:
                interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BackendError(f"cannot load {model_path}: {str(e).splitlines()[0]}") from None
    return interpreter


def tensor_info(details: dict) -> TensorInfo:
    scale, zero = details.get("quantization", (0.0, 0))
    return TensorInfo(tuple(int(v) for v in details["shape"]), details["dtype"],
                      (float(scale), int(zero)) if details["dtype"] != np.float32 else None)


class LiteRTBackend(Backend):
    def __init__(self, path, threads: int | None = None, delegates=()):
        self.path = Path(path)
        self.interpreter = make_interpreter(self.path, threads, delegates)
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.input, self.output = tensor_info(inp), tensor_info(out)
        self._in, self._out = inp["index"], out["index"]
        self.description = f"LiteRT ({interpreter_api()[2]}, {'delegate' if delegates else 'XNNPACK CPU'})"

    def run(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)


@dataclass(frozen=True)
class GpuAccelerator:
    """What ``--delegate gpu`` loads: LiteRT's own GPU accelerator (:mod:`edgeseg.runtime.model.litert_gpu`,
    WebGPU on Vulkan), opened with the model, rather than a delegate library. ``strict``: fail
    instead of falling back to the CPU."""

    strict: bool = False


def is_onnx(path) -> bool:
    """Whether a model file is ONNX, by its suffix (anything else is taken for TFLite)."""
    return Path(path).suffix.lower() == ".onnx"


def open_backend(path, threads: int | None = None, delegates=(), providers=None) -> Backend:
    """The backend for a model file, by its suffix: ``.onnx`` -> ONNX Runtime (``providers``;
    ``["trt"]``: TensorRT's bindings), anything else -> LiteRT (``delegates``)."""
    if is_onnx(path):
        if delegates:
            raise BackendError("--delegate is for .tflite models; ONNX models take --providers")
        if providers and "trt" in providers:
            if list(providers) != ["trt"]:
                raise BackendError("--providers trt runs the whole model on TensorRT: give it alone")
            from edgeseg.runtime.model.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(path)
        from edgeseg.runtime.model.onnx_backend import OnnxBackend

        return OnnxBackend(path, threads, providers)
    if providers:
        raise BackendError("--providers is for .onnx models; .tflite models take --delegate")
    gpu = [d for d in delegates if isinstance(d, GpuAccelerator)]
    if gpu:
        from edgeseg.runtime.model.litert_gpu import open_gpu_backend

        return open_gpu_backend(path, threads, gpu[0].strict)
    return LiteRTBackend(path, threads, delegates)


DELEGATE_LIBRARIES = {  # "gpu" is LiteRT's accelerator (GpuAccelerator); the classic GPU delegate by path
    "nnapi": "libnnapi_delegate.so",
    "edgetpu": "libedgetpu.so.1",
}


def _open_delegate(load_delegate, library: str):
    """``load_delegate(library)``, with the library checked first. LiteRT's ``Delegate`` that
    fails to load its library leaves an object whose ``__del__`` prints a second traceback
    (``'Delegate' object has no attribute '_library'``) under the user's error; a library that
    does not open, or is not a delegate, is refused before one is made, and what is left of a
    failed one is collected here with that message silenced."""
    import ctypes
    import gc
    import sys

    try:
        handle = ctypes.CDLL(library)
    except OSError as e:
        raise ValueError(str(e) or f"cannot open {library}") from None
    if not hasattr(handle, "tflite_plugin_create_delegate"):
        raise ValueError(f"{library} is not a LiteRT delegate (no tflite_plugin_create_delegate)")
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, AttributeError) and "Delegate" in repr(unraisable.object)):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        return load_delegate(library)
    finally:
        gc.collect()
        sys.unraisablehook = previous


def load_delegates(name: str | None, strict: bool = False) -> list:
    """Delegates for ``--delegate``: ``xnnpack`` (LiteRT's default CPU path: nothing to load),
    ``gpu`` (LiteRT's GPU accelerator, opened with the model: :class:`GpuAccelerator`),
    ``nnapi``, ``edgetpu`` or a path to a delegate ``.so``.

    A delegate that cannot be loaded is reported in one line and the CPU is used instead,
    unless ``strict``.
    """
    if name in (None, "", "cpu", "xnnpack"):
        return []
    if name == "gpu":
        return [GpuAccelerator(strict)]
    _, load_delegate, _ = interpreter_api()
    library = DELEGATE_LIBRARIES.get(name, name)
    try:
        return [_open_delegate(load_delegate, library)]
    except (ValueError, OSError, RuntimeError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        message = f"cannot load the {name} delegate ({library}): {reason}"
        if strict:
            raise BackendError(message) from None
        log.warning("%s; running on the CPU (XNNPACK) instead", message)
        return []
