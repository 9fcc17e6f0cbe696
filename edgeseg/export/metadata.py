"""Write edgeseg metadata into a .tflite flatbuffer (the runtime reads it without TensorFlow)."""

from __future__ import annotations

from edgeseg.core.metadata import METADATA_NAME, ModelMetadata


def embed_metadata(model_bytes: bytes, meta: ModelMetadata) -> bytes:
    """Return ``model_bytes`` with an ``edgeseg`` Model.metadata entry holding ``meta`` as JSON."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = list(meta.to_json())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
