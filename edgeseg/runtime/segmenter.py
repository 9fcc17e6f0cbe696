"""Frame in, label map out: letterbox, (de)quantize, run, upsample logits, argmax."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core.geometry import RESIZE_MODES, Letterbox, fit, letterbox
from edgeseg.core.metadata import MetadataError, ModelMetadata
from edgeseg.runtime.backend import open_backend
from edgeseg.runtime.metadata import load_metadata


@dataclass
class Pending:
    """A frame's raw model output, waiting for post-processing (possibly in another thread)."""

    output: np.ndarray
    box: Letterbox
    frame_hw: tuple[int, int]
    times: dict  # milliseconds per stage


class Segmenter:
    """Runs an exported model on RGB frames.

    Args:
        model_path: a .tflite or .onnx file from ``edgeseg export``.
        threads: interpreter threads.
        metadata: overrides the embedded metadata (needed for models exported elsewhere).
        delegates: loaded LiteRT delegates (.tflite).
        providers: ONNX Runtime execution providers in order of preference (.onnx).
        upsample: ``auto`` (default): the argmax of the bilinearly upsampled logits (as in
            training) at the resolution the model saw the frame at, then nearest-neighbour to
            the frame's own size: the same as ``exact`` for frames no larger than the input, and
            cheap for camera frames larger than it. ``exact``: bilinear logits at the frame's full
            resolution. ``fast``: the argmax at the output stride, labels resized nearest.
    """

    def __init__(self, model_path, threads: int | None = None, metadata: ModelMetadata | None = None,
                 delegates=(), upsample: str = "auto", providers=None):
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.path = Path(model_path)
        self._opened_with = (threads, metadata, providers)
        meta = metadata or load_metadata(self.path)
        if meta is None:
            raise MetadataError(f"{self.path} has no edgeseg metadata; pass the input size and classes explicitly")
        self.meta = meta
        self.backend = open_backend(self.path, threads, delegates, providers)
        self.input, self.output = self.backend.input, self.backend.output
        self.input_size = tuple(int(v) for v in self.input.shape[1:3])
        self.output_size = tuple(int(v) for v in self.output.shape[1:3])
        self._check_metadata()
        self.stride = self.input_size[0] // self.output_size[0]
        self._tap_cache: dict = {}
        self._lut = self._pad = None

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
                                f"model maps a {H}x{W} input to a {h}x{w} output")

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

        if self._lut is None:
            self._lut = self._quantize_input(np.arange(256, dtype=np.float32))[0].view(np.uint8)
            self._pad = self._quantize_input(np.float32(self.meta.pad_value))[0]
        resized, box = fit(frame, self.input_size, self.meta.resize)
        x = np.full((1, *self.input_size, 3), self._pad, dtype)
        x[0, : box.height, : box.width] = cv2.LUT(resized, self._lut).view(dtype)
        return x, box

    def infer(self, frame: np.ndarray) -> Pending:
        """Letterbox, quantize and run one RGB frame; post-process the result with ``finish``."""
        import time

        t0 = time.perf_counter()
        x, box = self._prepare(frame)
        t1 = time.perf_counter()
        y = self.backend.run(x)[0]
        t2 = time.perf_counter()
        return Pending(y, box, frame.shape[:2], {"preprocess": 1000 * (t1 - t0), "inference": 1000 * (t2 - t1)})

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

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Class ids (uint8) at the frame's own resolution."""
        return self.finish(self.infer(frame))

    def segment(self, frame: np.ndarray) -> tuple[np.ndarray, dict]:
        """Class ids at the frame's resolution, and milliseconds spent per stage."""
        p = self.infer(frame)
        return self.finish(p), p.times

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
        if key not in self._tap_cache:
            if len(self._tap_cache) >= 16:  # frames of many sizes (a folder): keep memory bounded
                self._tap_cache.clear()
            self._tap_cache[key] = frame_taps(box, frame_hw, self.output_size, self.stride)
        return self._tap_cache[key]


@dataclass(frozen=True)
class AxisTaps:
    """Bilinear taps along one axis (half-pixel centres, edges clamped, as tf.image.resize):
    output index -> source indices ``i0``, ``i1`` and the weight ``w`` of ``i1``."""

    i0: np.ndarray
    i1: np.ndarray
    w: np.ndarray

    @classmethod
    def make(cls, n_out: int, n_src: int, ratio: float) -> "AxisTaps":
        s = np.clip((np.arange(n_out) + 0.5) * ratio - 0.5, 0, n_src - 1)
        i0 = np.floor(s).astype(np.intp)
        return cls(i0, np.minimum(i0 + 1, n_src - 1), (s - i0).astype(np.float32))


def frame_taps(box: Letterbox, frame_hw, output_size, stride: int) -> tuple[AxisTaps, AxisTaps]:
    """Taps from a frame's pixels to the model's output: frame pixel -> input pixel (undo the
    letterbox scale) -> logits at the output stride."""
    (h, w), (oh, ow) = frame_hw, output_size
    return AxisTaps.make(h, oh, box.height / h / stride), AxisTaps.make(w, ow, box.width / w / stride)


def bilinear_argmax(logits: np.ndarray, taps: tuple[AxisTaps, AxisTaps]) -> np.ndarray:
    """argmax over classes of the bilinearly upsampled ``logits`` (h x w x C), without upsampling
    them: an upsampled logit vector is a convex combination of its 2x2 source vectors, so where
    those four share their argmax c, c is also the argmax of the combination (ties included, with
    argmax taking the first maximum). Only pixels between differing source labels (object
    boundaries, a few percent of the frame) are interpolated. Any affine per-tensor dequantization
    with a positive scale leaves the argmax alone, so integer logits are used as they are.
    """
    ty, tx = taps
    small = logits.argmax(-1).astype(np.uint8)
    # same[i, j]: the 2x2 block starting at (i, j) (edge-clamped) holds a single label
    pad = np.pad(small, ((0, 1), (0, 1)), mode="edge")
    same = (pad[:-1, :-1] == pad[1:, :-1]) & (pad[:-1, :-1] == pad[:-1, 1:]) & (pad[:-1, :-1] == pad[1:, 1:])
    labels = small.take(ty.i0, axis=0).take(tx.i0, axis=1)
    ys, xs = np.nonzero(~same.take(ty.i0, axis=0).take(tx.i0, axis=1))
    if len(ys):
        h, w, c = logits.shape
        r0, r1, c0, c1 = ty.i0[ys] * w, ty.i1[ys] * w, tx.i0[xs], tx.i1[xs]
        wy, wx = ty.w[ys], tx.w[xs]
        corners = np.concatenate([r0 + c0, r0 + c1, r1 + c0, r1 + c1])
        weights = np.concatenate([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
        flat = logits.reshape(-1, c).astype(np.float32, copy=False)
        mixed = (flat[corners] * weights[:, None]).reshape(4, -1, c).sum(0)
        labels[ys, xs] = mixed.argmax(-1)
    return labels


def _x4_weights() -> np.ndarray:
    """(16, 4): for each of the 4x4 output pixels of a source cell, the bilinear weights of its
    four corners (top-left, top-right, bottom-left, bottom-right); half-pixel centres."""
    w = (np.arange(4) + 0.5) / 4
    wy, wx = np.repeat(w, 4), np.tile(w, 4)
    return np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], axis=1).astype(np.float32)


X4_WEIGHTS = _x4_weights()


def bilinear_argmax_x4(logits: np.ndarray) -> np.ndarray:
    """:func:`bilinear_argmax` for an exact x4 upsample (h x w x C -> 4h x 4w), by cells.

    With the logits edge-padded by one, output pixel y lies between padded rows (y+2)//4 and
    (y+2)//4 + 1 at a fixed offset, so the output splits into 4x4 tiles that each interpolate
    one 2x2 cell with the same 16x4 weights. Tiles whose four corners agree are filled with
    their label; the others (object boundaries) take one small matrix product.
    """
    h, w, c = logits.shape
    small = np.pad(logits.argmax(-1).astype(np.uint8), 1, mode="edge")
    same = (small[:-1, :-1] == small[1:, :-1]) & (small[:-1, :-1] == small[:-1, 1:]) & (small[:-1, :-1] == small[1:, 1:])
    tiles = np.empty((h + 1, 4, w + 1, 4), np.uint8)
    tiles[...] = small[:-1, None, :-1, None]
    a, b = np.nonzero(~same)
    if len(a):
        padded = np.pad(logits, ((1, 1), (1, 1), (0, 0)), mode="edge").astype(np.float32, copy=False)
        corners = np.stack([padded[a, b], padded[a, b + 1], padded[a + 1, b], padded[a + 1, b + 1]])
        corners = corners.reshape(4, 1, -1)
        # elementwise, not a matrix product: numpy's BLAS would start threads that keep
        # spinning and slow the interpreter's own threads down by half
        mixed = sum(X4_WEIGHTS[:, k, None] * corners[k] for k in range(4)).reshape(16, len(a), c)
        tiles[a, :, b, :] = mixed.argmax(-1).T.reshape(len(a), 4, 4)
    return tiles.reshape(4 * (h + 1), 4 * (w + 1))[2:2 + 4 * h, 2:2 + 4 * w]


UPSAMPLE_MODES = ("auto", "exact", "fast")

