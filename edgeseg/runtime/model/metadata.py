"""Reading edgeseg's metadata (:mod:`edgeseg.core.metadata`) out of a .tflite or .onnx file,
without TensorFlow or the onnx package."""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.metadata import METADATA_NAME, MetadataError, ModelMetadata
from edgeseg.runtime.model.backend import is_onnx
from edgeseg.runtime.model.flatbuffer import FlatbufferError, read_metadata


def load_metadata(path_or_bytes) -> ModelMetadata | None:
    """The edgeseg metadata of a .tflite or .onnx model (by suffix; bytes: TFLite), or None
    when it has none."""
    is_path = isinstance(path_or_bytes, (str, Path))
    buf = Path(path_or_bytes).read_bytes() if is_path else path_or_bytes
    if is_path and is_onnx(path_or_bytes):
        from edgeseg.runtime.model.onnx_backend import onnx_metadata

        try:
            data = onnx_metadata(buf).get(METADATA_NAME)
        except ValueError as e:
            raise MetadataError(f"{path_or_bytes}: {e}") from None
        return _parsed(data.encode(), path_or_bytes) if data is not None else None
    try:
        entries = read_metadata(buf)
    except FlatbufferError as e:
        raise MetadataError(f"{path_or_bytes}: {e}" if is_path else str(e)) from None
    data = entries.get(METADATA_NAME)
    return _parsed(data, path_or_bytes if is_path else None) if data is not None else None


def _parsed(data: bytes, where) -> ModelMetadata:
    try:
        return ModelMetadata.from_json(data)
    except MetadataError as e:
        raise MetadataError(f"{where}: {e}" if where is not None else str(e)) from None
