"""The Jetson's GPU path without a Jetson: TensorRTBackend driven against stand-ins for the
``tensorrt`` module and for libcudart (real ctypes memory, real copies), whose "engine" runs
the ONNX file with ONNX Runtime on the CPU. What this proves: the backend builds, caches and
reloads the engine, binds the buffers, copies in and out, and gives what ONNX Runtime gives;
what it cannot: TensorRT's own numerics on a GPU (left for a board or the GPU check)."""

import ctypes
import types

import numpy as np
import pytest

from conftest import error_lines, run_edgeseg
from edgeseg.runtime.model.backend import BackendError, open_backend
from edgeseg.runtime.model.tensorrt_backend import CudaRuntime, TensorRTBackend

ort = pytest.importorskip("onnxruntime")


class StandInCudart:
    """libcudart's calls as the backend makes them through ctypes: device memory is host memory."""

    def __init__(self):
        self.buffers, self.calls = {}, []

    class _Fn:
        def __init__(self, fn):
            self.fn, self.restype = fn, None

        def __call__(self, *args):
            return self.fn(*args)

    def __getattr__(self, name):
        fn = getattr(self, "_" + name)
        wrapped = StandInCudart._Fn(fn)
        setattr(self, name, wrapped)
        return wrapped

    def _cudaGetErrorString(self, code):
        return b"stand-in error"

    def _cudaMalloc(self, pointer, size):
        buf = (ctypes.c_char * size.value)()
        self.buffers[ctypes.addressof(buf)] = buf
        pointer._obj.value = ctypes.addressof(buf)
        self.calls.append("malloc")
        return 0

    def _cudaFree(self, ptr):
        self.buffers.pop(ptr.value, None)
        return 0

    def _cudaStreamCreate(self, stream):
        stream._obj.value = 0xC0FFEE
        return 0

    def _cudaMemcpyAsync(self, dst, src, size, kind, stream):
        assert stream.value == 0xC0FFEE
        device = dst.value if kind.value == 1 else src.value
        assert device in self.buffers, "a copy to or from memory that was not cudaMalloc'd"
        ctypes.memmove(dst.value, src.value, size.value)
        self.calls.append("h2d" if kind.value == 1 else "d2h")
        return 0

    def _cudaStreamDestroy(self, stream):
        self.calls.append("stream destroyed")
        return 0

    def _cudaStreamSynchronize(self, stream):
        self.calls.append("sync")
        return 0


def stand_in_tensorrt(built: list):
    """The parts of TensorRT 10's Python API the backend uses; ``built`` records each build."""
    trt = types.SimpleNamespace(__version__="10.3.0-stand-in")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace()  # TensorRT 10: no EXPLICIT_BATCH
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(FP16="fp16", INT8="int8")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: dtype

    class Network:
        onnx = None

    class Parser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse(self, data):
            if not data.startswith(b"\x08"):  # an ONNX ModelProto starts with ir_version (field 1)
                self.num_errors = 1
                return False
            self.network.onnx = data
            return True

        def get_error(self, i):
            return "In node -1: not an ONNX model"

    class Config:
        def __init__(self):
            self.flags = set()

        def set_memory_pool_limit(self, pool, size):
            assert pool == "workspace" and size > 0

        def set_flag(self, flag):
            self.flags.add(flag)

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            assert flags == 0
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            built.append(sorted(config.flags))
            return b"PLAN" + network.onnx

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses = engine, {}

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            e = self.engine
            x = np.ctypeslib.as_array((ctypes.c_float * int(np.prod(e.shapes[e.names[0]]))).from_address(
                self.addresses[e.names[0]])).reshape(e.shapes[e.names[0]])
            y = e.session.run(None, {e.names[0]: x})[0].astype(np.float32)
            ctypes.memmove(self.addresses[e.names[1]], y.ctypes.data, y.nbytes)
            return True

    class Engine:
        def __init__(self, plan):
            self.session = ort.InferenceSession(plan[4:], providers=["CPUExecutionProvider"])
            inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
            self.names = [inp.name, out.name]
            self.shapes = {inp.name: tuple(inp.shape), out.name: tuple(out.shape)}
            self.num_io_tensors = 2

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return "in" if name == self.names[0] else "out"

        def get_tensor_shape(self, name):
            return self.shapes[name]

        def get_tensor_dtype(self, name):
            return np.float32

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            return Engine(plan) if plan.startswith(b"PLAN") else None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    return trt


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tensorrt_backend_builds_caches_and_runs_like_onnx_runtime(onnx_export, precision, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    model = onnx_export / f"tiny_{precision}.onnx"
    built, cudart = [], StandInCudart()
    trt = stand_in_tensorrt(built)
    backend = TensorRTBackend(model, int8=precision == "int8", trt=trt, cuda=CudaRuntime(cudart))
    reference = open_backend(model, threads=1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.uniform(-1, 1, reference.input.shape).astype(np.float32)
        assert np.array_equal(backend.run(x), reference.run(x))
    assert built == [["fp16", "int8"] if precision == "int8" else ["fp16"]]
    assert cudart.calls[:2] == ["malloc", "malloc"] and cudart.calls[2:6] == ["h2d", "d2h", "sync", "h2d"]
    assert backend.input.shape == reference.input.shape and backend.output.dtype == np.float32
    engines = list((tmp_path / "cache" / "tensorrt").glob("*.engine"))
    assert len(engines) == 1 and "trt10.3.0-stand-in" in engines[0].name
    del backend
    import gc

    gc.collect()
    assert cudart.calls[-1] == "stream destroyed" and not cudart.buffers  # nothing left on the "GPU"
    again = TensorRTBackend(model, trt=trt, cuda=CudaRuntime(StandInCudart()))  # the cached engine
    assert len(built) == 1 and "TensorRT 10.3.0-stand-in" in again.description
    x = rng.uniform(-1, 1, reference.input.shape).astype(np.float32)
    assert np.array_equal(again.run(x), reference.run(x))


def test_tensorrt_backend_failures_are_one_line(onnx_export, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(BackendError, match="TensorRT cannot parse bad.onnx: In node -1"):
        TensorRTBackend(bad, trt=stand_in_tensorrt([]), cuda=CudaRuntime(StandInCudart()))
    with pytest.raises(BackendError, match="give it alone"):
        open_backend(onnx_export / "tiny_fp32.onnx", providers=["trt", "cpu"])


def test_trt_without_tensorrt_and_a_jetson_without_a_gpu_provider_say_what_to_install(onnx_export, video, tmp_path):
    model = onnx_export / "tiny_fp32.onnx"
    result = run_edgeseg("run", model, "--source", video, "--providers", "trt", "--max-frames", "1")
    assert result.returncode == 1
    assert error_lines(result.stderr) == ["edgeseg: error: --providers trt needs TensorRT's Python bindings: on a "
                                          "Jetson sudo apt install python3-libnvinfer and make the venv with "
                                          "--system-site-packages"]
    jetson = tmp_path / "jetson"
    (jetson / "etc").mkdir(parents=True)
    (jetson / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    result = run_edgeseg("run", model, "--source", video, "--max-frames", "2", env={"EDGESEG_SYSROOT": str(jetson)})
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "runs on the Jetson's CPU" in line]
    assert len(said) == 1 and "onnxruntime-gpu" in said[0] and "--providers trt" in said[0]
    result = run_edgeseg("run", model, "--source", video, "--max-frames", "2")  # not a Jetson: nothing said
    assert result.returncode == 0 and "Jetson" not in result.stderr
