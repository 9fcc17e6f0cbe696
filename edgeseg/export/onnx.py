"""Keras / TFLite -> ONNX, with the same graph contract as the TFLite export: raw RGB pixels in
(float32, batch 1), stride-4 logits out, edgeseg's metadata in ``metadata_props``.

- fp32: tf2onnx from the batch-1 concrete function of the Keras model.
- int8 (QDQ): tf2onnx from the int8 TFLite model converted for float input and output, so the
  ONNX model has exactly the TFLite model's quantization: the same calibration frames (the same
  manifest) for PTQ, the QAT ranges for QAT. ``ort``: ONNX Runtime's static quantization of the
  fp32 ONNX model on the same calibration frames, for comparison (see docs/quantization.md).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from edgeseg._tf import tf
from edgeseg.core.errors import ExportError
from edgeseg.core.metadata import METADATA_NAME, ModelMetadata

OPSET = 17
INT8_CONVERTERS = ("tflite", "ort")


def _tf2onnx():
    try:
        import onnx  # noqa: F401
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx and onnx: pip install 'edgeseg[onnx]'") from None
    return tf2onnx


def keras_to_onnx(model, head=None) -> bytes:
    """``head``: ``head(logits, size)`` ends the graph (a labels head)."""
    tf2onnx = _tf2onnx()
    h, w = model.input_shape[1:3]
    spec = (tf.TensorSpec([1, h, w, 3], tf.float32, name="image"),)
    try:
        if head is None:
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
        else:
            fn = tf.function(lambda image: head(model(image, training=False), (h, w)))
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds
        raise ExportError(f"ONNX conversion failed: {str(e).strip().splitlines()[-1]}") from e
    return proto.SerializeToString()


def tflite_to_onnx(tflite: bytes) -> bytes:
    """A TFLite model (quantized or not) as ONNX: quantized tensors become QDQ pairs."""
    tf2onnx = _tf2onnx()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        try:
            proto, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET)
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"TFLite -> ONNX conversion failed: {str(e).strip().splitlines()[-1]}") from e
    return proto.SerializeToString()


def ort_static_int8(fp32: bytes, frames) -> bytes:
    """ONNX Runtime's static QDQ quantization (int8 weights per channel, uint8 activations)
    calibrated on ``frames`` (float32 1xHxWx3 arrays)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise ExportError("ONNX int8 with ONNX Runtime needs onnxruntime: pip install 'edgeseg[onnx]'") from None
    import onnx

    name = onnx.load_from_string(fp32).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(frames)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: np.asarray(x, np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def embed_onnx_metadata(data: bytes, meta: ModelMetadata) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    kept = [p for p in proto.metadata_props if p.key != METADATA_NAME]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, meta.to_json().decode()
    return proto.SerializeToString()


def onnx_ops(data: bytes) -> dict:
    """Operator -> count, as the delegate report lists TFLite ops."""
    import onnx

    return dict(sorted(Counter(n.op_type for n in onnx.load_from_string(data).graph.node).items()))
