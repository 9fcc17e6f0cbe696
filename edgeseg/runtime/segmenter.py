"""Frame in, label map out: letterbox, (de)quantize, run, upsample logits, argmax."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.runtime.backend import make_interpreter
from edgeseg.runtime.metadata import MetadataError, ModelMetadata, load_metadata


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the model input: scaled by ``scale``, at the top-left."""

    scale: float
    height: int  # scaled frame size inside the input
    width: int


def letterbox(frame: np.ndarray, size, pad_value: float = 127.5) -> tuple[np.ndarray, Letterbox]:
    """Fit ``frame`` (HxWx3 RGB) into ``size`` keeping its aspect ratio, never enlarging it,
    and pad bottom/right, as the training pipeline's evaluation transform does."""
    import cv2

    h, w = frame.shape[:2]
    H, W = size
    scale = min(1.0, H / h, W / w)
    nh, nw = int(round(h * scale)), int(round(w * scale))
    resized = frame if (nh, nw) == (h, w) else cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.full((H, W, 3), pad_value, np.float32)
    out[:nh, :nw] = resized
    return out, Letterbox(scale, nh, nw)


class Segmenter:
    """Runs an exported model on RGB frames.

    Args:
        model_path: a .tflite file from ``edgeseg export``.
        threads: interpreter threads.
        metadata: overrides the embedded metadata (needed for models exported elsewhere).
        delegates: loaded LiteRT delegates.
        upsample: ``exact`` resizes the stride-4 logits bilinearly (as in training) before the
            argmax; ``fast`` takes the argmax at stride 4 and resizes the labels (nearest):
            several times cheaper, slightly blockier boundaries.
    """

    def __init__(self, model_path, threads: int | None = None, metadata: ModelMetadata | None = None,
                 delegates=(), upsample: str = "exact"):
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.path = Path(model_path)
        meta = metadata or load_metadata(self.path)
        if meta is None:
            raise MetadataError(f"{self.path} has no edgeseg metadata; pass the input size and classes explicitly")
        self.meta = meta
        self.interpreter = make_interpreter(self.path, threads, delegates)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_size = tuple(int(v) for v in self.input["shape"][1:3])

    def _quantize_input(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return x[None]
        scale, zero = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)[None]

    def _invoke(self, frame: np.ndarray):
        """Letterbox, quantize, run; returns the raw output, the letterbox and stage times (s)."""
        import time

        t0 = time.perf_counter()
        x, box = letterbox(frame, self.input_size, self.meta.pad_value)
        self.interpreter.set_tensor(self.input["index"], self._quantize_input(x))
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        return self.interpreter.get_tensor(self.output["index"])[0], box, (t0, t1, t2)

    def raw_output(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The model's output for one RGB frame (dequantized), and the letterbox used."""
        y, box, _ = self._invoke(frame)
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y, box

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Class ids (uint8) at the frame's own resolution."""
        return self.segment(frame)[0]

    def segment(self, frame: np.ndarray) -> tuple[np.ndarray, dict]:
        """Class ids at the frame's resolution, and milliseconds spent per stage."""
        import time

        y, box, (t0, t1, t2) = self._invoke(frame)
        labels = self._postprocess(y, box, frame.shape[:2])
        t3 = time.perf_counter()
        return labels, {"preprocess": 1000 * (t1 - t0), "inference": 1000 * (t2 - t1),
                        "postprocess": 1000 * (t3 - t2)}

    def _postprocess(self, y: np.ndarray, box: Letterbox, frame_hw) -> np.ndarray:
        import cv2

        h, w = frame_hw
        H, W = self.input_size
        if self.meta.output == "labels" or self.upsample == "fast":
            small = y.astype(np.uint8) if self.meta.output == "labels" else y.argmax(-1).astype(np.uint8)
            labels = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)[: box.height, : box.width]
            if labels.shape != (h, w):
                labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
            return labels
        # Bilinear resizing and argmax commute with the per-tensor affine dequantization, so
        # integer logits are resized as uint8 (int8 flipped to uint8 keeps the order).
        if y.dtype == np.int8:
            y = y.view(np.uint8) ^ np.uint8(0x80)
        logits = _resize_channels(y, (H, W))[: box.height, : box.width]
        if (box.height, box.width) != (h, w):
            logits = _resize_channels(logits, (h, w))
        return logits.argmax(-1).astype(np.uint8)


UPSAMPLE_MODES = ("exact", "fast")


def _resize_channels(x: np.ndarray, size) -> np.ndarray:
    """Bilinear resize (half-pixel centres, as tf.image.resize) of an HxWxC array."""
    import cv2

    H, W = size
    if x.shape[:2] == (H, W):
        return x
    chunks = [cv2.resize(x[..., i:i + 4], (W, H), interpolation=cv2.INTER_LINEAR) for i in range(0, x.shape[-1], 4)]
    chunks = [c[..., None] if c.ndim == 2 else c for c in chunks]
    return np.concatenate(chunks, axis=-1)
