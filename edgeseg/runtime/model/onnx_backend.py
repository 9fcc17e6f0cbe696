"""ONNX models on ONNX Runtime (``pip install 'edgeseg[onnx]'``): TensorRT, CUDA and CPU
execution providers, tried in that order where installed (``--providers`` chooses), TensorRT's
built engines cached in ``~/.cache/edgeseg/tensorrt``. Also the ONNX half of reading edgeseg's
metadata: the ``edgeseg`` entry of the model's ``metadata_props``, read straight from the
protobuf, so no ``onnx`` package is needed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edgeseg.runtime.model.backend import Backend, BackendError, TensorInfo

log = logging.getLogger("edgeseg")

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}
ONNX_TYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def engine_cache() -> Path:
    return Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "tensorrt"


class OnnxBackend(Backend):
    """Args:
        providers: names from ``PROVIDERS`` in order of preference; None: every one installed,
            TensorRT first. A named provider that is not installed is an error.
    """

    def __init__(self, path, threads: int | None = None, providers=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError(f"{Path(path).name} is an ONNX model: pip install 'edgeseg[onnx]' "
                               "(onnxruntime, or onnxruntime-gpu on a GPU machine)") from None
        self.path = Path(path)
        available = ort.get_available_providers()
        if providers:
            unknown = [p for p in providers if p not in PROVIDERS]
            if unknown:
                raise BackendError(f"unknown provider '{unknown[0]}'; choose from {', '.join(PROVIDERS)}")
            missing = [p for p in providers if PROVIDERS[p] not in available]
            if missing:
                raise BackendError(f"ONNX Runtime here has no {PROVIDERS[missing[0]]} "
                                   f"(installed: {', '.join(available)})")
            chosen = [PROVIDERS[p] for p in providers]
        else:
            chosen = [name for name in PROVIDERS.values() if name in available]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        provider_options = [self._options(name) for name in chosen]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen,
                                                provider_options=provider_options)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise BackendError(f"cannot load {self.path}: {str(e).strip().splitlines()[0]}") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._in, self._out = inp.name, out.name
        self.input = TensorInfo(tuple(int(v) for v in inp.shape), ONNX_TYPES.get(inp.type, np.float32))
        self.output = TensorInfo(tuple(int(v) for v in out.shape), ONNX_TYPES.get(out.type, np.float32))
        self.provider = self.session.get_providers()[0]
        self.description = f"ONNX Runtime ({self.provider})"
        self.leaves_cpu_free = self.provider != PROVIDERS["cpu"]  # TensorRT, CUDA

    @staticmethod
    def _options(name: str) -> dict:
        if name == PROVIDERS["tensorrt"]:
            cache = engine_cache()
            cache.mkdir(parents=True, exist_ok=True)
            return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
        return {}

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self._out], {self._in: x})[0]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def onnx_metadata(buf: bytes) -> dict[str, str]:
    """``ModelProto.metadata_props`` (field 14: key 1, value 2) of an ONNX file; ValueError if
    the bytes are not a protobuf message."""
    props = {}
    try:
        for number, wire, value in _fields(memoryview(buf)):
            if number == 14 and wire == 2:
                entry = {n: bytes(v).decode() for n, w, v in _fields(value) if w == 2}
                props[entry.get(1, "")] = entry.get(2, "")
    except (IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"not an ONNX model ({e})") from None
    return props
