"""What travels inside an exported model so the runtime configures itself: classes and colours,
how labels of the model's dataset map to its classes, input size and how frames are fitted to
it, the output layout, precision and provenance. Written by the exporter, read by the runtime."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from edgeseg.core.errors import EdgesegError
from edgeseg.core.geometry import PAD_VALUE
from edgeseg.core.labels import LabelMap

METADATA_NAME = "edgeseg"


class MetadataError(EdgesegError, ValueError):
    """Metadata that is missing, unreadable, or does not describe the model it is in."""


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
        label_ids, label_colors: how label files of the model's dataset map to class ids (raw id
            -> class, packed RGB -> class; 255 = ignore), for ``edgeseg run --labels``; empty: the
            label files hold class ids.
    """

    class_names: list[str]
    colors: list[list[int]]
    input_size: list[int]
    resize: str = "letterbox"
    pad_value: float = PAD_VALUE
    output: str = "logits"
    output_stride: int = 4
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    precision: str = "fp32"
    source_run: str | None = None
    float_miou: float | None = None
    dataset: str | None = None
    edgeseg_version: str | None = None
    label_ids: dict = field(default_factory=dict)
    label_colors: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ModelMetadata":
        try:
            raw = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MetadataError(f"edgeseg metadata is not valid JSON: {e}") from None
        if not isinstance(raw, dict):
            raise MetadataError(f"edgeseg metadata is a JSON {type(raw).__name__}, not an object")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as e:  # a missing or ill-typed field
            raise MetadataError(f"edgeseg metadata is incomplete: {e}") from None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_map(self) -> LabelMap:
        """How label files of the model's dataset map to its class ids."""
        if not self.label_ids and not self.label_colors:
            return LabelMap.identity(self.num_classes)
        return LabelMap(ids={int(k): int(v) for k, v in self.label_ids.items()},
                        colors={int(k): int(v) for k, v in self.label_colors.items()})

    @classmethod
    def for_classes(cls, classes, input_size) -> "ModelMetadata":
        """What a model without metadata is run with: a ``classes.txt``
        (:class:`edgeseg.core.labels.ClassFile`: names, colours, and how its labels read) and
        the input size (height, width)."""
        return cls(class_names=list(classes.names), colors=[list(c) for c in classes.colors],
                   input_size=list(input_size), **cls.label_fields(classes.label_map))

    @staticmethod
    def label_fields(label_map: LabelMap) -> dict:
        """``label_ids``/``label_colors`` for a dataset's label map (JSON keys are strings)."""
        return {"label_ids": {str(k): v for k, v in label_map.ids.items()},
                "label_colors": {str(k): v for k, v in label_map.colors.items()}}
