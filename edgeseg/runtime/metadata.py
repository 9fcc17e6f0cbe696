"""Reading edgeseg's metadata (:mod:`edgeseg.core.metadata`) out of a .tflite file, without
TensorFlow."""

from __future__ import annotations

from pathlib import Path

from edgeseg.core.metadata import METADATA_NAME, MetadataError, ModelMetadata
from edgeseg.runtime.flatbuffer import FlatbufferError, read_metadata


def load_metadata(path_or_bytes) -> ModelMetadata | None:
    """The edgeseg metadata of a .tflite model, or None when it has none."""
    buf = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    try:
        entries = read_metadata(buf)
    except FlatbufferError as e:
        raise MetadataError(str(e)) from None
    data = entries.get(METADATA_NAME)
    return ModelMetadata.from_json(data) if data is not None else None
