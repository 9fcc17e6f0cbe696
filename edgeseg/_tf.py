"""The one place where TensorFlow is imported.

tensorflow-model-optimization only works with Keras 2, so ``TF_USE_LEGACY_KERAS`` must be set
before TensorFlow is first imported. Every training-side module gets ``tf`` and ``keras`` (the
``tf_keras`` package) from here; ``edgeseg.runtime`` never imports this module.

TensorFlow's C++ side writes its start-up lines (``I0000 ... oneDNN``, ``E0000 ... failed call to
cuInit`` on every machine without a GPU) straight to file descriptor 2, before its log level
applies. They are captured while TensorFlow is imported and its devices are listed, and kept in
``STARTUP_LOG`` (see :mod:`edgeseg.core.quiet`).

Under TensorFlow < 2.16 (Sony's IMX500 toolchain pins 2.15, :mod:`edgeseg.export.imx500`) ``keras``
is TensorFlow's own Keras 2: MCT matches layers of that package, and the model builders run
unchanged there.
"""

import os

from edgeseg.core.quiet import captured_stderr

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


STARTUP_LOG: list = []
with captured_stderr(STARTUP_LOG, echo_on_error=True):
    import tensorflow as tf  # noqa: E402

    if tuple(int(v) for v in tf.__version__.split(".")[:2]) < (2, 16):
        keras = tf.keras
    else:
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
