"""The upsampling maths of the runtime: the argmax of bilinearly upsampled logits without
upsampling them (half-pixel centres, edges clamped, as tf.image.resize), for any size and for
the 4x case the model's stride gives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.core.geometry import Letterbox


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
X4_WEIGHTS_64 = np.round(64 * X4_WEIGHTS).astype(np.int16)  # exact: every weight is k/64


def bilinear_argmax_x4(logits: np.ndarray) -> np.ndarray:
    """:func:`bilinear_argmax` for an exact x4 upsample (h x w x C -> 4h x 4w), by cells.

    With the logits edge-padded by one, output pixel y lies between padded rows (y+2)//4 and
    (y+2)//4 + 1 at a fixed offset, so the output splits into 4x4 tiles that each interpolate
    one 2x2 cell with the same 16x4 weights. Tiles whose four corners agree are filled with
    their label; the others (object boundaries) take one small matrix product.

    The weights are multiples of 1/64, so for 8-bit logits (int8 and uint8 models) float32
    interpolation is exact, and the same sums are taken in int16 with the weights times 64:
    the same order of every pair of classes, ties included, in half the bytes. Float logits are
    interpolated as :func:`bilinear_argmax_x4_reference` does, operation for operation, so the
    labels are bit for bit the reference's for any logits (tests/test_runtime.py holds them to
    it).
    """
    import cv2

    h, w, c = logits.shape
    small = np.pad(logits.argmax(-1).astype(np.uint8), 1, mode="edge")
    same = (small[:-1, :-1] == small[1:, :-1]) & (small[:-1, :-1] == small[:-1, 1:]) & (small[:-1, :-1] == small[1:, 1:])
    # every tile filled with its cell's top-left label: OpenCV's nearest x4 (SIMD, one pass)
    labels = cv2.resize(small[:-1, :-1], (4 * (w + 1), 4 * (h + 1)), interpolation=cv2.INTER_NEAREST)
    a, b = np.nonzero(~same)
    if len(a):
        padded = np.pad(logits, ((1, 1), (1, 1), (0, 0)), mode="edge")
        if logits.dtype.itemsize == 1 and logits.dtype.kind in "iu":
            padded, weights = padded.astype(np.int16), X4_WEIGHTS_64
        else:
            padded, weights = padded.astype(np.float32, copy=False), X4_WEIGHTS
        corners = np.stack([padded[a, b], padded[a, b + 1], padded[a + 1, b], padded[a + 1, b + 1]])
        corners = corners.reshape(4, 1, -1)
        # elementwise, not a matrix product: numpy's BLAS would start threads that keep
        # spinning and slow the interpreter's own threads down by half
        mixed = sum(weights[:, k, None] * corners[k] for k in range(4)).reshape(16, len(a), c)
        labels.reshape(h + 1, 4, w + 1, 4)[a, :, b, :] = mixed.argmax(-1).T.reshape(len(a), 4, 4)
    return labels[2:2 + 4 * h, 2:2 + 4 * w]


def bilinear_argmax_x4_reference(logits: np.ndarray) -> np.ndarray:
    """:func:`bilinear_argmax_x4` as it was before the 8-bit path and OpenCV's fill: the masks
    `edgeseg evaluate` scored, which the runtime's must stay equal to; tests/test_runtime.py and
    tools/bench/bench_accel.py compare against it."""
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
        mixed = sum(X4_WEIGHTS[:, k, None] * corners[k] for k in range(4)).reshape(16, len(a), c)
        tiles[a, :, b, :] = mixed.argmax(-1).T.reshape(len(a), 4, 4)
    return tiles.reshape(4 * (h + 1), 4 * (w + 1))[2:2 + 4 * h, 2:2 + 4 * w]
