"""Per-layer int8 error (``tf.lite.experimental.QuantizationDebugger``) and selective
quantization: named layers kept in float."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from edgeseg._tf import tf
from edgeseg.core.files import write_text_atomic
from edgeseg.core.errors import ExportError
from edgeseg.export.tflite import full_integer_converter


def _debugger(model, representative, keep_float=(), io: str = "int8"):
    converter = full_integer_converter(model, representative, io, allow_float=bool(keep_float))
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float) or None)
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([np.asarray(x, np.float32)] for x in representative),
        debug_options=options)


def layer_errors(model, representative, frames: int = 8) -> list[dict]:
    """Per quantized tensor: RMSE between float and int8 outputs, relative to its scale,
    worst first."""
    debugger = _debugger(model, representative[:frames])
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    out = []
    for r in rows:
        scale = float(r.get("scale") or 0) or 1.0
        mse = float(r.get("mean_squared_error") or 0)
        out.append({"op": r.get("op_name"), "tensor": r.get("tensor_name"),
                    "rmse_over_scale": float(np.sqrt(mse)) / scale,
                    "max_abs_error": float(r.get("max_abs_error") or 0)})
    return sorted(out, key=lambda r: -r["rmse_over_scale"])


def convert_keeping_float(model, representative, keep_float, io: str = "int8") -> bytes:
    """An int8 model with the named tensors/nodes left in float (selective quantization)."""
    try:
        return bytes(_debugger(model, representative, keep_float, io).get_nondebug_quantized_model())
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"selective quantization failed: {str(e).strip().splitlines()[-1]}") from e


def write_csv(rows, path: Path) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["op"])
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path
