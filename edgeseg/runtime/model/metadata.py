"""Reading edgeseg's metadata (:mod:`edgeseg.core.metadata`) out of a .tflite or .onnx file,
without TensorFlow or the onnx package."""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.metadata import METADATA_NAME, MetadataError, ModelMetadata
from edgeseg.runtime.model.backend import is_onnx
from edgeseg.runtime.model.flatbuffer import read_metadata


def load_metadata(path_or_bytes) -> ModelMetadata | None:
    """The edgeseg metadata of a .tflite or .onnx model (by suffix; bytes: TFLite), or None
    when it has none. A file that cannot be read as one is a MetadataError naming it."""
    is_path = isinstance(path_or_bytes, (str, Path))
    buf = Path(path_or_bytes).read_bytes() if is_path else path_or_bytes
    try:
        if is_path and is_onnx(path_or_bytes):
            from edgeseg.runtime.model.onnx_backend import onnx_metadata

            data = onnx_metadata(buf).get(METADATA_NAME)
            data = data.encode() if data is not None else None
        else:
            data = read_metadata(buf).get(METADATA_NAME)
        return ModelMetadata.from_json(data) if data is not None else None
    except ValueError as e:  # FlatbufferError, MetadataError, the protobuf reader's ValueError
        raise MetadataError(f"{path_or_bytes}: {e}" if is_path else str(e)) from None
