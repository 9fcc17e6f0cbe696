"""Keras -> TFLite conversion, from a concrete function with a fixed batch of 1.

With a dynamic batch the converter leaves every dilated convolution as
SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND with the BatchNorm unfolded and in float, and the int8
model then fails to prepare under XNNPACK. A static [1, H, W, 3] signature lets it fold the
dilation into the convolutions.
"""

from __future__ import annotations

import numpy as np

from edgeseg._tf import tf
from edgeseg.core.errors import ExportError
from edgeseg.export.formats import ExportFormat

IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}


def concrete_function(model, head=None):
    """The batch-1 function of ``model``; ``head``: a function of its output and the input size
    that ends the graph (a labels head)."""
    h, w = model.input_shape[1:3]
    if head is None:
        fn = tf.function(lambda image: model(image, training=False))
    else:
        fn = tf.function(lambda image: head(model(image, training=False), (h, w)))
    return fn.get_concrete_function(tf.TensorSpec([1, h, w, 3], tf.float32, name="image"))


def full_integer_converter(model, representative=None, io: str = "int8", allow_float: bool = False):
    """A converter for a full-integer model: int8 ops only (``allow_float``: float ops may
    remain, for layers kept in float), ``io``-typed input and output, calibrated on
    ``representative`` (a list of float32 arrays shaped like the input) when given."""
    if io not in IO_DTYPES:
        raise ExportError(f"--io must be one of {', '.join(IO_DTYPES)}, got '{io}'")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function(model)], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative:
        converter.representative_dataset = lambda: ([np.asarray(x, np.float32)] for x in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if allow_float:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    converter.inference_input_type = IO_DTYPES[io]
    converter.inference_output_type = IO_DTYPES[io]
    return converter


def convert(model, fmt: ExportFormat, representative=None, io: str = "int8", head=None) -> bytes:
    """Convert ``model`` (a float model, or a tfmot QAT model for ``qat``) to TFLite bytes.

    Args:
        representative: for ``int8``: a list of float32 arrays shaped like the input.
        io: input/output type of integer models: ``int8``, ``uint8`` or ``float``.
        head: for a labels-head row, ``head(logits, size)`` ends the graph (float rows only).
    """
    if fmt.integer_io:
        if fmt.calibration and not representative:
            raise ExportError("int8 export needs calibration frames (--calib-data)")
        converter = full_integer_converter(model, representative if fmt.calibration else None, io)
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function(model, head)], model)
        precision = fmt.labels_of or fmt.name  # a labels head: as the logits file it ends
        if precision in ("fp16", "dynamic"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError and friends
        raise ExportError(f"TFLite conversion to {fmt.name} failed: {str(e).strip().splitlines()[-1]}") from e
