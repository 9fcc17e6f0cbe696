"""The one place where TensorFlow is imported.

tensorflow-model-optimization only works with Keras 2, so ``TF_USE_LEGACY_KERAS`` must be set
before TensorFlow is first imported. Every training-side module gets ``tf`` and ``keras`` (the
``tf_keras`` package) from here; ``edgeseg.runtime`` never imports this module.

TensorFlow's C++ side writes its start-up lines (``I0000 ... oneDNN``, ``E0000 ... failed call to
cuInit`` on every machine without a GPU) straight to file descriptor 2, before its log level
applies. They are captured while TensorFlow is imported and its devices are listed, and kept in
``STARTUP_LOG``; with ``EDGESEG_VERBOSE=1`` (``--verbose``) they pass through.
"""

import os
import sys
import tempfile
from contextlib import contextmanager

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def _captured_stderr(log: list):
    """Point file descriptor 2 at a temporary file for the block; its text goes into ``log``,
    and to the terminal as well if the block raises (so a failed import still explains itself)."""
    if os.environ.get("EDGESEG_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            log.append(text)
            if failed:
                sys.stderr.write(text)


STARTUP_LOG: list = []
with _captured_stderr(STARTUP_LOG):
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    GPUS = tf.config.list_physical_devices("GPU")  # initialises CUDA here, where it is quiet


def device_line() -> str:
    """One line saying what training runs on."""
    if not GPUS:
        return "training on the CPU (no GPU found)"
    names = []
    for gpu in GPUS:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
        except (ValueError, RuntimeError):
            names.append(gpu.name)
    return f"training on {len(GPUS)} GPU{'s' if len(GPUS) > 1 else ''}: {', '.join(names)}"


__all__ = ["GPUS", "STARTUP_LOG", "device_line", "keras", "tf"]
