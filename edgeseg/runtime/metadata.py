"""edgeseg's model metadata: what travels inside an exported .tflite so the runtime configures
itself (classes, colours, input size and normalisation, how the output is laid out)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edgeseg.runtime.flatbuffer import FlatbufferError, read_metadata

METADATA_NAME = "edgeseg"


class MetadataError(ValueError):
    pass


@dataclass
class ModelMetadata:
    """Args:
        class_names, colors: one per class id.
        input_size: (height, width) the model takes.
        resize: how frames are fitted: ``letterbox`` (keep aspect ratio, pad bottom/right with
            ``pad_value``) or ``stretch``.
        output: ``logits`` at ``output_stride`` (the runtime upsamples and takes argmax) or
            ``labels`` at full size.
        scale, offset: the normalisation the model applies inside (informative: the model takes
            raw RGB pixels 0-255).
    """

    class_names: list[str]
    colors: list[list[int]]
    input_size: list[int]
    resize: str = "letterbox"
    pad_value: float = 127.5
    output: str = "logits"
    output_stride: int = 4
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    precision: str = "fp32"
    source_run: str | None = None
    float_miou: float | None = None
    dataset: str | None = None
    edgeseg_version: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ModelMetadata":
        try:
            raw = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MetadataError(f"edgeseg metadata is not valid JSON: {e}") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_metadata(path_or_bytes) -> ModelMetadata | None:
    """The edgeseg metadata of a .tflite model, or None when it has none."""
    buf = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    try:
        entries = read_metadata(buf)
    except FlatbufferError as e:
        raise MetadataError(str(e)) from None
    data = entries.get(METADATA_NAME)
    return ModelMetadata.from_json(data) if data is not None else None
