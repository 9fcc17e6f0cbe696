"""ONNX models on TensorRT through its own Python bindings (``--providers trt``): the GPU path of
a Jetson, where PyPI has no aarch64 onnxruntime-gpu but JetPack ships TensorRT's bindings as a
system package (``python3-libnvinfer``), which a ``--system-site-packages`` venv sees.

The engine is built once from the ONNX file (fp16 where the GPU has it; the int8 export's Q/DQ
nodes are TensorRT's explicit quantization) and cached by the file's hash under
``~/.cache/edgeseg/tensorrt``. Buffers go through the CUDA runtime, ``libcudart``, by ctypes, so
nothing beyond JetPack is needed (no pycuda, no cuda-python). Written against TensorRT 8.6 / 10's
tensor API (JetPack 6.0 / 6.1+); tested here with stand-ins for both libraries, not on a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
from pathlib import Path

import numpy as np

from edgeseg.runtime.model.backend import Backend, BackendError, TensorInfo

log = logging.getLogger("edgeseg")

JETSON_GPU_HELP = ("for the GPU install NVIDIA's JetPack build of onnxruntime-gpu (Jetson AI Lab index for "
                   "JetPack 6) or use JetPack's TensorRT with --providers trt (sudo apt install python3-libnvinfer, "
                   "venv with --system-site-packages)")
HOST_TO_DEVICE, DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind
CUDART_NAMES = ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "/usr/local/cuda/lib64/libcudart.so")


class CudaRuntime:
    """The few CUDA runtime calls the backend needs, from ``libcudart`` by ctypes."""

    def __init__(self, lib=None):
        self.lib = lib or self._open()
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    @staticmethod
    def _open():
        found = ctypes.util.find_library("cudart")
        for name in ((found,) if found else ()) + CUDART_NAMES:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
        raise BackendError("TensorRT needs the CUDA runtime (libcudart.so), which is not installed here")

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise BackendError(f"CUDA {what} failed: {self.lib.cudaGetErrorString(code).decode(errors='replace')}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMalloc")
        return ptr.value

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def stream(self) -> int:
        stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        return stream.value or 0

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                                             ctypes.c_int(kind), ctypes.c_void_p(stream)), "cudaMemcpyAsync")

    def destroy_stream(self, stream: int) -> None:
        self.lib.cudaStreamDestroy(ctypes.c_void_p(stream))

    def synchronize(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendError("--providers trt needs TensorRT's Python bindings: on a Jetson sudo apt install "
                           "python3-libnvinfer and make the venv with --system-site-packages") from None
    return tensorrt


def engine_path(model: Path, data: bytes, trt) -> Path:
    """The cached engine of the ONNX file ``model`` (``data``: its bytes) for this TensorRT."""
    from edgeseg.runtime.model.onnx_backend import engine_cache

    digest = hashlib.sha256(data).hexdigest()[:16]
    return engine_cache() / f"{model.stem}-{digest}-trt{trt.__version__}.engine"


def build_engine(trt, logger, model: Path, data: bytes, int8: bool) -> bytes:
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)  # implicit in TensorRT 10
    network = builder.create_network(1 << int(flag) if flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT cannot parse {model.name}: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)  # the Q/DQ nodes give the scales (explicit quantization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT could not build an engine for {model.name} (run with --verbose for its log)")
    return bytes(serialized)


class TensorRTBackend(Backend):
    """Args:
        path: an ``.onnx`` model from ``edgeseg export --files onnx``.
        int8: build with INT8 enabled (the Q/DQ nodes give the scales); None: when the file has
            QuantizeLinear nodes.
        trt, cuda: the ``tensorrt`` module and a :class:`CudaRuntime` (tests pass stand-ins).
    """

    def __init__(self, path, int8: bool | None = None, trt=None, cuda: CudaRuntime | None = None):
        from edgeseg.core.files import write_bytes_atomic

        self.path = Path(path)
        data = self.path.read_bytes()  # read once: hashed for the cache, parsed for a build
        int8 = b"QuantizeLinear" in data if int8 is None else int8
        trt = trt or import_tensorrt()
        self.cuda = cuda or CudaRuntime()
        logger = trt.Logger(trt.Logger.WARNING)
        cached = engine_path(self.path, data, trt)
        if cached.is_file():
            plan = cached.read_bytes()
        else:
            log.info("building a TensorRT engine for %s (once; cached in %s)", self.path.name, cached.parent)
            plan = build_engine(trt, logger, self.path, data, int8)
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(cached, plan)
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BackendError(f"TensorRT cannot load the engine cached in {cached} (delete it to rebuild)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise BackendError(f"{self.path.name}: expected one input and an output, the engine has {names}")
        self._in, self._out = inputs[0], outputs[0]
        self.input, self.output = (TensorInfo(tuple(int(v) for v in self.engine.get_tensor_shape(n)),
                                              np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))).type)
                                   for n in (self._in, self._out))
        self._host_out = np.empty(self.output.shape, self.output.dtype)
        self._buffers = {}
        for name, info in ((self._in, self.input), (self._out, self.output)):
            self._buffers[name] = self.cuda.malloc(int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize)
            self.context.set_tensor_address(name, self._buffers[name])
        self.stream = self.cuda.stream()
        self.description = f"TensorRT {trt.__version__} (GPU engine{', int8 Q/DQ' if int8 else ''})"
        self.leaves_cpu_free = True

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, self.input.dtype)
        self.cuda.copy(self._buffers[self._in], x.ctypes.data, x.nbytes, HOST_TO_DEVICE, self.stream)
        if not self.context.execute_async_v3(self.stream):
            raise BackendError(f"TensorRT failed to run {self.path.name}")
        out = self._host_out
        self.cuda.copy(out.ctypes.data, self._buffers[self._out], out.nbytes, DEVICE_TO_HOST, self.stream)
        self.cuda.synchronize(self.stream)
        return out.copy()

    def __del__(self):
        try:
            for ptr in getattr(self, "_buffers", {}).values():
                self.cuda.free(ptr)
            if getattr(self, "stream", None):
                self.cuda.destroy_stream(self.stream)
        except Exception:  # noqa: BLE001 - at interpreter exit the library may be gone
            pass
