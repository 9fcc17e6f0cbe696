"""``--delegate gpu``: a .tflite model on LiteRT's own GPU accelerator, the one ``ai-edge-litert``
ships in its wheels for x86-64 and aarch64 (``libLiteRtWebGpuAccelerator.so``: ML Drift on WebGPU,
through Dawn on Vulkan). Vulkan is what a Raspberry Pi 4/5 has (Mesa's v3dv), what a Jetson has
(NVIDIA's driver) and what a desktop has; no delegate library needs to be found or built.

It runs behind LiteRT's ``CompiledModel`` API with the CPU accelerator beside it, so ops the GPU
cannot take run on the CPU (``fully_accelerated`` says whether any do). The GPU computes in fp16
unless ``enforce_f32``. A machine without a Vulkan adapter (or a model the accelerator refuses)
raises :class:`GpuUnavailable` with the reason in one line (``vulkan.diagnose`` says why the loader
found no adapter), and so does an aarch64 CPU that the library would abort on as it loads, before
it is loaded (``cpu_features``); :func:`open_gpu_backend` then falls back to the CPU interpreter,
saying so, unless ``strict``.
"""

from __future__ import annotations

import atexit
import functools
import logging
import re
from pathlib import Path

import numpy as np

from edgeseg.core.quiet import captured_stderr
from edgeseg.runtime.model import vulkan
from edgeseg.runtime.model.backend import Backend, BackendError, LiteRTBackend, make_interpreter, tensor_info
from edgeseg.runtime.model.cpu_features import gpu_accelerator_cpu_gap

log = logging.getLogger("edgeseg")

NO_ADAPTER = "no Vulkan adapter that WebGPU can use (check `vulkaninfo --summary`)"


class GpuUnavailable(BackendError):
    """The GPU accelerator cannot run this model here; the message says why (``reason``: the why
    alone)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _reason(text: str, error: Exception) -> str:
    """What went wrong, in a few words: the Vulkan loader's view of a missing adapter, else the
    first error LiteRT logged (``text`` is empty with --verbose, where LiteRT's log is shown)."""
    if not text or "libvulkan.so" in text or "No adapters found" in text or "Failed to initialize WebGPU" in text:
        why = vulkan.diagnose(text)
        if why or text:
            return why or NO_ADAPTER
    lines = [line.strip() for line in text.splitlines() if "ERROR" in line or line.startswith("E0000")]
    return (lines[0] if lines else str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)[:200]


@functools.cache
def _quiet_at_exit() -> None:
    """Register :func:`_quiet_exit` once, before any model: atexit runs it after every close()."""
    atexit.register(_quiet_exit)


def _quiet_exit() -> None:
    """LiteRT's accelerator registry is a C++ static: it logs "DestroyAccelerator" to fd 2 after
    Python has finished. Everything edgeseg says has been said by then (atexit runs last)."""
    import os
    import sys

    from edgeseg.core.quiet import verbose

    if verbose():
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


class LiteRTGpuBackend(Backend):
    """Args:
        path: a .tflite model.
        threads: CPU threads for the ops that stay on the CPU.
        enforce_f32: compute in fp32 on the GPU (default fp16, as the accelerator does).
    """

    def __init__(self, path, threads: int | None = None, enforce_f32: bool = False):
        gap = gpu_accelerator_cpu_gap()
        if gap is not None:  # the library would abort the whole process as it loads
            raise GpuUnavailable(gap.message)
        try:
            from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, GpuOptions, HardwareAccelerator, Options
        except ImportError:
            raise GpuUnavailable("this LiteRT has no CompiledModel API (pip install 'ai-edge-litert>=2.1')") from None
        self.path = Path(path)
        said: list[str] = []
        failure = None
        _quiet_at_exit()
        with captured_stderr(said, fds=(1, 2)):
            try:
                options = Options(hardware_accelerators=HardwareAccelerator.GPU | HardwareAccelerator.CPU,
                                  cpu_options=CpuOptions(num_threads=threads or 0),
                                  gpu_options=GpuOptions(enforce_f32=enforce_f32))
                self.model = CompiledModel.from_file(str(self.path), options=options)
                self.fully_accelerated = self.model.is_fully_accelerated()
                self._inputs = self.model.create_input_buffers(0)
                self._outputs = self.model.create_output_buffers(0)
                self.model.run_by_index(0, self._inputs, self._outputs)  # the first run loads more (OpenCL probe)
            except (RuntimeError, ValueError) as e:
                failure = RuntimeError(str(e))  # without its traceback, which holds LiteRT's environment
            if failure is not None:  # the half-made environment says goodbye on fd 2: here, not later
                import gc

                self.model = None
                gc.collect()
        if failure is not None:
            reason = _reason("".join(said), failure)
            raise GpuUnavailable(f"the GPU accelerator cannot run {self.path.name}: {reason}", reason)
        text = "".join(said)
        found = re.search(r"Selected adapter: (.+?), arch=([^,]*), vendor=([^,]*), backend=(\w+)", text)
        self.adapter = found.group(1) if found else "unknown adapter"
        self.gpu_backend = found.group(4) if found else "WebGPU"
        # CompiledModel's tensor details have no quantization: read the types and scales from the file
        details = make_interpreter(self.path, 1, allocate=False)
        self.input = tensor_info(details.get_input_details()[0])
        self.output = tensor_info(details.get_output_details()[0])
        del details
        self._size = int(np.prod(self.output.shape))
        self.leaves_cpu_free = self.fully_accelerated
        self.description = (f"LiteRT GPU accelerator ({self.gpu_backend} on {self.adapter}; "
                            f"{'whole graph on the GPU' if self.fully_accelerated else 'some ops on the CPU'}"
                            f"{', fp32' if enforce_f32 else ''})")

    def run(self, x: np.ndarray) -> np.ndarray:
        self._inputs[0].write(np.ascontiguousarray(x, self.input.dtype))
        self.model.run_by_index(0, self._inputs, self._outputs)
        return self._outputs[0].read(self._size, self.output.dtype).reshape(self.output.shape)

    def close(self) -> None:
        """Release the model, the buffers and the accelerators (LiteRT says so on fd 2: kept quiet)."""
        if getattr(self, "model", None) is None:
            return
        import gc

        with captured_stderr():
            self._inputs = self._outputs = self.model = None
            gc.collect()


def probe_gpu(path) -> dict:
    """What the GPU accelerator of this machine makes of a model file, for the export report:
    the adapter and whether the whole graph runs on it, or why it cannot run."""
    try:
        backend = LiteRTGpuBackend(path, 1)
    except GpuUnavailable as e:
        return {"available": False, "why": e.reason}
    except Exception as e:  # noqa: BLE001 - another LiteRT's API: the export must not fail for a probe
        return {"available": False, "why": f"{type(e).__name__}: {e}"[:200]}
    facts = {"available": True, "adapter": backend.adapter, "backend": backend.gpu_backend,
             "fully_accelerated": backend.fully_accelerated}
    backend.close()
    return facts


def probe_gpu_isolated(path, timeout: float = 180) -> dict:
    """:func:`probe_gpu` in a child process: the export's process holds TensorFlow, whose bundled
    LLVM and a Mesa driver's (lavapipe) abort the process as it exits once both are loaded; a probe
    that crashes or hangs costs its own process, not the export."""
    import json
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-m", __name__, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"available": False, "why": f"the GPU probe did not finish in {timeout:.0f} s"}
    except OSError as e:
        return {"available": False, "why": f"the GPU probe could not start: {e}"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])  # said before the child exited, however it exited
    except (IndexError, ValueError):
        said = done.stderr.strip().splitlines()
        return {"available": False, "why": f"the GPU probe process failed (exit {done.returncode})"
                                           + (f": {said[-1][:160]}" if said else "")}


def open_gpu_backend(path, threads: int | None = None, strict: bool = False) -> Backend:
    """The GPU accelerator, or the CPU interpreter with one line saying why not (``strict``: the
    reason as an error)."""
    try:
        backend = LiteRTGpuBackend(path, threads)
    except GpuUnavailable as e:
        if strict:
            raise
        log.warning("%s: running on the CPU (XNNPACK) instead", e)
        return LiteRTBackend(path, threads)
    if not backend.fully_accelerated:
        log.warning("%s: some ops run on the CPU beside the GPU (LiteRT's accelerator took part of the graph)",
                    backend.path.name)
    return backend





if __name__ == "__main__":  # probe_gpu_isolated's child: one JSON line on stdout
    import json
    import sys

    import os

    print(json.dumps(probe_gpu(sys.argv[1])), flush=True)
    os._exit(0)  # nothing left to say: skip the C++ destructors that may abort at exit
