"""Frame in, label map out: letterbox, (de)quantize, run, upsample logits, argmax."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core.geometry import RESIZE_MODES, Letterbox, fit, letterbox
from edgeseg.core.metadata import MetadataError, ModelMetadata
from edgeseg.runtime.model.backend import open_backend
from edgeseg.runtime.model.metadata import load_metadata
from edgeseg.runtime.model.upsample import AxisTaps, bilinear_argmax, bilinear_argmax_x4, frame_taps


@dataclass
class Prepared:
    """A frame's input tensor, made ahead (in the decoding thread) by ``model``."""

    x: np.ndarray
    box: Letterbox
    frame_hw: tuple[int, int]
    ms: float
    model: object


@dataclass
class Pending:
    """A frame's raw model output, waiting for post-processing (possibly in another thread)."""

    output: np.ndarray
    box: Letterbox
    frame_hw: tuple[int, int]
    times: dict  # milliseconds per stage
    region: tuple | None = None  # (x, y, w, h) of the frame the model saw; None: all of it


class Segmenter:
    """Runs an exported model on RGB frames.

    Args:
        model_path: a .tflite or .onnx file from ``edgeseg export``.
        threads: interpreter threads.
        metadata: overrides the embedded metadata (needed for models exported elsewhere).
        delegates: loaded LiteRT delegates (.tflite).
        providers: ONNX Runtime execution providers in order of preference (.onnx).
        backend: an opened :class:`~edgeseg.runtime.model.backend.Backend` instead of one opened
            from ``model_path`` (the IMX500's outputs, computed on the sensor; needs ``metadata``).
        upsample: ``auto`` (default): the argmax of the bilinearly upsampled logits (as in
            training) at the resolution the model saw the frame at, then nearest-neighbour to
            the frame's own size: the same as ``exact`` for frames no larger than the input, and
            cheap for camera frames larger than it. ``exact``: bilinear logits at the frame's full
            resolution. ``fast``: the argmax at the output stride, labels resized nearest.
            A model with a labels head (``output: labels`` in its metadata) has done the
            upsample and argmax in its graph at the input size; its labels are cropped to the
            frame and resized nearest to the frame's size (``auto``'s masks), whatever this says.
        backend: an opened :class:`~edgeseg.runtime.model.backend.Backend` to run instead of
            opening ``model_path`` (benchmarks' stand-ins); the metadata is still read from
            ``model_path`` unless given.
    """

    def __init__(self, model_path, threads: int | None = None, metadata: ModelMetadata | None = None,
                 delegates=(), upsample: str = "auto", providers=None, backend=None):
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.path = Path(model_path)
        self._opened_with = (threads, metadata, providers)
        meta = metadata or load_metadata(self.path)
        if meta is None:
            raise MetadataError(f"{self.path} has no edgeseg metadata; pass the input size and classes explicitly")
        self.meta = meta
        self.backend = backend if backend is not None else open_backend(self.path, threads, delegates, providers)
        self.input, self.output = self.backend.input, self.backend.output
        self.input_size = tuple(int(v) for v in self.input.shape[1:3])
        self.output_size = tuple(int(v) for v in self.output.shape[1:3])
        self._check_metadata()
        self.stride = self.input_size[0] // self.output_size[0]
        self._tap_cache: dict = {}
        self._lut = None  # (lookup table, pad value) of integer inputs, made at the first frame

    def reopen(self, delegates=()) -> "Segmenter":
        """The same model file opened again as it is now (a new model copied over it), with the
        same options; its embedded metadata is read again (the metadata given when this one was
        opened stands in only for a file that has none)."""
        threads, metadata, providers = self._opened_with
        return Segmenter(self.path, threads, load_metadata(self.path) or metadata, delegates, upsample=self.upsample,
                         providers=providers)

    def _check_metadata(self) -> None:
        """The metadata must describe this graph: its resize mode is one the runtime knows, and a
        logits output is 1/``output_stride`` of the input on both axes."""
        meta, (H, W), (h, w) = self.meta, self.input_size, self.output_size
        if meta.resize not in RESIZE_MODES:
            raise MetadataError(f"{self.path}: unknown resize mode '{meta.resize}' in the metadata "
                                f"(this runtime knows {', '.join(RESIZE_MODES)})")
        if meta.output not in ("logits", "labels"):
            raise MetadataError(f"{self.path}: unknown output kind '{meta.output}' in the metadata")
        channels = int(self.output.shape[-1])
        if meta.output == "logits" and channels != meta.num_classes:
            raise MetadataError(f"{self.path}: the metadata names {meta.num_classes} classes, but the model "
                                f"outputs {channels} logits a pixel")
        stride = meta.output_stride if meta.output == "logits" else 1
        if stride < 1 or (h * stride, w * stride) != (H, W):
            raise MetadataError(f"{self.path}: the metadata says {meta.output} at stride {stride}, but the "
                                f"model maps a {H}x{W} input to a {h}x{w} output (HxW)")

    def _quantize_input(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input.dtype
        if dtype == np.float32:
            return x[None]
        scale, zero = self.input.quantization
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)[None]

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor for ``frame``. Integer-input models get their pixels through a
        256-entry lookup table (the same rounding as ``_quantize_input``, without floats)."""
        dtype = self.input.dtype
        if dtype == np.float32 or frame.dtype != np.uint8:
            x, box = letterbox(frame, self.input_size, self.meta.pad_value, self.meta.resize)
            return self._quantize_input(x), box
        import cv2

        if self._lut is None:  # both at once: two threads may prepare frames (decoding, and after a reload)
            self._lut = (self._quantize_input(np.arange(256, dtype=np.float32))[0].view(np.uint8),
                         self._quantize_input(np.float32(self.meta.pad_value))[0])
        lut, pad = self._lut
        resized, box = fit(frame, self.input_size, self.meta.resize)
        x = np.full((1, *self.input_size, 3), pad, dtype)
        x[0, : box.height, : box.width] = cv2.LUT(resized, lut).view(dtype)
        return x, box

    def prepare(self, frame: np.ndarray) -> Prepared:
        """The letterboxed, quantized input of one RGB frame, for :meth:`infer` to run later."""
        import time

        t0 = time.perf_counter()
        x, box = self._prepare(frame)
        return Prepared(x, box, frame.shape[:2], 1000 * (time.perf_counter() - t0), self)

    def infer(self, frame: np.ndarray, prepared: Prepared | None = None) -> Pending:
        """Letterbox, quantize and run one RGB frame (``prepared``: its input, made ahead by
        :meth:`prepare`; made again if another model made it); post-process the result with
        ``finish``."""
        import time

        if prepared is None or prepared.model is not self:
            prepared = self.prepare(frame)
        t1 = time.perf_counter()
        y = self.backend.run(prepared.x)[0]
        t2 = time.perf_counter()
        return Pending(y, prepared.box, prepared.frame_hw, {"preprocess": prepared.ms, "inference": 1000 * (t2 - t1)})

    def infer_frame(self, frame, prepared: Prepared | None = None) -> Pending:
        """``infer`` of a source's :class:`~edgeseg.runtime.sources.frame.Frame` (a model that
        runs on the camera takes its output from the frame instead)."""
        return self.infer(frame.image, prepared)

    @staticmethod
    def seen(pending: Pending) -> tuple[slice, slice]:
        """The part of the frame the model saw, as slices (rows, columns): where its labels
        can be compared and scored."""
        if pending.region is None:
            return slice(None), slice(None)
        x, y, w, h = pending.region
        return slice(y, y + h), slice(x, x + w)

    def finish(self, pending: Pending) -> np.ndarray:
        """Class ids (uint8) at the frame's resolution; adds the post-processing time."""
        import time

        t0 = time.perf_counter()
        labels = self._postprocess(pending.output, pending.box, pending.frame_hw)
        pending.times["postprocess"] = 1000 * (time.perf_counter() - t0)
        return labels

    def raw_output(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The model's output for one RGB frame (dequantized), and the letterbox used."""
        p = self.infer(frame)
        return self.dequantize(p.output), p.box

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        """A raw model output as float logits."""
        if self.output.dtype == np.float32:
            return y
        scale, zero = self.output.quantization
        return (y.astype(np.float32) - zero) * scale

    def frame_logits(self, pending: Pending) -> np.ndarray:
        """A frame's float logits at the output stride, over the part of the input the frame
        covers (not the letterbox padding)."""
        box, s = pending.box, self.stride
        y = self.dequantize(pending.output)
        return y[: -(-box.height // s), : -(-box.width // s)]

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Class ids (uint8) at the frame's own resolution."""
        return self.finish(self.infer(frame))

    def _postprocess(self, y: np.ndarray, box: Letterbox, frame_hw) -> np.ndarray:
        import cv2

        h, w = frame_hw
        H, W = self.input_size
        if self.meta.output == "labels" or self.upsample == "fast":
            if self.meta.output == "labels":  # ids at the input size: uint8, int32 or float
                labels = y.reshape(H, W)[: box.height, : box.width].astype(np.uint8)
            else:
                small = y.argmax(-1).astype(np.uint8)
                labels = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)[: box.height, : box.width]
            if labels.shape != (h, w):
                labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
            return labels
        shrunk = (box.height, box.width) != (h, w)
        if self.upsample == "auto" and shrunk:  # labels where the model looked, then nearest
            return cv2.resize(self._exact(y, box, (box.height, box.width)), (w, h), interpolation=cv2.INTER_NEAREST)
        return self._exact(y, box, (h, w))

    def _exact(self, y: np.ndarray, box: Letterbox, size) -> np.ndarray:
        """argmax of the logits bilinearly upsampled to ``size`` (the frame, or the box the frame
        was resized to)."""
        if (box.height, box.width) == tuple(size) and self.stride == 4:
            return bilinear_argmax_x4(y)[: size[0], : size[1]]  # logits map 1:4 onto it
        return bilinear_argmax(y, self._taps(box, size))

    def _taps(self, box: Letterbox, frame_hw) -> tuple["AxisTaps", "AxisTaps"]:
        key = (box, tuple(frame_hw))
        taps = self._tap_cache.get(key)  # once: post-processing threads may clear the cache
        if taps is None:
            if len(self._tap_cache) >= 16:  # frames of many sizes (a folder): keep memory bounded
                self._tap_cache.clear()
            taps = self._tap_cache[key] = frame_taps(box, frame_hw, self.output_size, self.stride)
        return taps


UPSAMPLE_MODES = ("auto", "exact", "fast")

