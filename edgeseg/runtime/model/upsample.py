"""The upsampling maths of the runtime: the argmax of bilinearly upsampled logits without
upsampling them (half-pixel centres, edges clamped, as tf.image.resize), for any size and for
the 4x case the model's stride gives.

Both work the same way. An upsampled logit vector is a convex combination of the 2x2 source
vectors around it, so where those four share their argmax c, c is the answer (ties included,
argmax taking the first maximum); only pixels between differing source labels (object
boundaries) are interpolated. There, a class whose largest corner value is below the best
smallest corner value of another class cannot win either, so only the few candidate classes of
each pixel are interpolated (two or three of CamVid's eleven, typically). The interpolation is
the same float32 arithmetic as interpolating every class (four products, summed in corner
order), so the labels are bit for bit those of the ``*_all_classes`` functions at the end, the
references the tests and ``tools/bench_accel.py`` hold the fast paths to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.core.geometry import Letterbox

# The pruning compares exact corner values, but the interpolation rounds: a class is dropped
# only when it loses by more than any rounding of four float32 products and three sums could
# make up (a few ulps of the largest logit; 2^-16 of it is far beyond that).
_PRUNE_MARGIN = 2.0 ** -16


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


def _same_2x2(labels: np.ndarray) -> np.ndarray:
    """Whether the 2x2 block starting at each (i, j) of ``labels`` holds a single label."""
    return ((labels[:-1, :-1] == labels[1:, :-1]) & (labels[:-1, :-1] == labels[:-1, 1:])
            & (labels[:-1, :-1] == labels[1:, 1:]))


def _candidates(corners: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """``corners``: (4, n, C), the four source vectors of n places. The (place, class) pairs
    that can hold the argmax of some convex combination of them, sorted by place then class:
    class c is out where its largest corner is below (by more than ``margin``) the largest
    smallest-corner of any class, which every combination reaches."""
    hi = corners.max(0)
    floor = corners.min(0).max(1)
    return np.nonzero(hi >= (floor - margin)[:, None] if margin else hi >= floor[:, None])


def _first_argmax(mixed: np.ndarray, cls: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``mixed``: (k, P) interpolated values of P candidate pairs grouped by place (``starts``:
    each place's first pair; a place's pairs in class order); per place and row, the class of the
    largest value, the lowest class among equals (as argmax)."""
    best = np.maximum.reduceat(mixed, starts, axis=1)
    place = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, mixed.shape[1])))
    ids = np.where(mixed == best[:, place], cls.astype(np.uint8), np.uint8(255))
    return np.minimum.reduceat(ids, starts, axis=1)


def _margin(logits: np.ndarray) -> float:
    return 0.0 if logits.dtype.kind in "iu" else _PRUNE_MARGIN * float(np.abs(logits).max())


def bilinear_argmax(logits: np.ndarray, taps: tuple[AxisTaps, AxisTaps]) -> np.ndarray:
    """argmax over classes of the bilinearly upsampled ``logits`` (h x w x C, C <= 255) at the
    pixels ``taps`` give, without upsampling them (see the module's docstring). Any affine
    per-tensor dequantization with a positive scale leaves the argmax alone, so integer logits
    are used as they are."""
    ty, tx = taps
    small = logits.argmax(-1).astype(np.uint8)
    same = _same_2x2(np.pad(small, ((0, 1), (0, 1)), mode="edge"))
    labels = small.take(ty.i0, axis=0).take(tx.i0, axis=1)
    ys, xs = np.nonzero(~same.take(ty.i0, axis=0).take(tx.i0, axis=1))
    if len(ys):
        h, w, c = logits.shape
        r0, r1, c0, c1 = ty.i0[ys] * w, ty.i1[ys] * w, tx.i0[xs], tx.i1[xs]
        wy, wx = ty.w[ys], tx.w[xs]
        flat = logits.reshape(-1, c)
        corners = np.stack([flat[r0 + c0], flat[r0 + c1], flat[r1 + c0], flat[r1 + c1]])
        weights = np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
        pix, cls = _candidates(corners, _margin(logits))
        v = corners[:, pix, cls].astype(np.float32, copy=False)
        wt = weights[:, pix]
        mixed = v[0] * wt[0] + v[1] * wt[1] + v[2] * wt[2] + v[3] * wt[3]
        starts = np.flatnonzero(np.concatenate(([True], pix[1:] != pix[:-1])))
        labels[ys, xs] = _first_argmax(mixed[None], cls, starts)[0]
    return labels


def _x4_weights() -> np.ndarray:
    """(16, 4): for each of the 4x4 output pixels of a source cell, the bilinear weights of its
    four corners (top-left, top-right, bottom-left, bottom-right); half-pixel centres."""
    w = (np.arange(4) + 0.5) / 4
    wy, wx = np.repeat(w, 4), np.tile(w, 4)
    return np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], axis=1).astype(np.float32)


X4_WEIGHTS = _x4_weights()


def _x4_cells(logits: np.ndarray):
    """The 4x4 output tiles of an exact x4 upsample, filled with the label of their cell's top
    left corner, and the cells (rows ``a``, columns ``b`` of the edge-padded grid) whose corners
    disagree, with their (4, n, C) corner vectors."""
    h, w, _ = logits.shape
    small = np.pad(logits.argmax(-1).astype(np.uint8), 1, mode="edge")
    tiles = np.empty((h + 1, 4, w + 1, 4), np.uint8)
    tiles[...] = small[:-1, None, :-1, None]
    a, b = np.nonzero(~_same_2x2(small))
    corners = None
    if len(a):
        padded = np.pad(logits, ((1, 1), (1, 1), (0, 0)), mode="edge")
        corners = np.stack([padded[a, b], padded[a, b + 1], padded[a + 1, b], padded[a + 1, b + 1]])
    return tiles, a, b, corners


def _x4_crop(tiles: np.ndarray, h: int, w: int) -> np.ndarray:
    return tiles.reshape(4 * (h + 1), 4 * (w + 1))[2:2 + 4 * h, 2:2 + 4 * w]


def bilinear_argmax_x4(logits: np.ndarray) -> np.ndarray:
    """:func:`bilinear_argmax` for an exact x4 upsample (h x w x C -> 4h x 4w), by cells.

    With the logits edge-padded by one, output pixel y lies between padded rows (y+2)//4 and
    (y+2)//4 + 1 at a fixed offset, so the output splits into 4x4 tiles that each interpolate
    one 2x2 cell with the same 16x4 weights. Tiles whose four corners agree are filled with
    their label; in the others (object boundaries) the candidate classes are interpolated.
    """
    h, w, _ = logits.shape
    tiles, a, b, corners = _x4_cells(logits)
    if corners is not None:
        cell, cls = _candidates(corners, _margin(logits))
        v = corners[:, cell, cls].astype(np.float32, copy=False)
        k = X4_WEIGHTS
        # elementwise, not a matrix product: numpy's BLAS would start threads that keep
        # spinning and slow the interpreter's own threads down by half
        mixed = k[:, 0, None] * v[0] + k[:, 1, None] * v[1] + k[:, 2, None] * v[2] + k[:, 3, None] * v[3]
        starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
        tiles[a, :, b, :] = _first_argmax(mixed, cls, starts).T.reshape(len(a), 4, 4)
    return _x4_crop(tiles, h, w)


def bilinear_argmax_all_classes(logits: np.ndarray, taps: tuple[AxisTaps, AxisTaps]) -> np.ndarray:
    """:func:`bilinear_argmax` interpolating every class at the boundary pixels (the runtime's
    code before the candidate pruning): the reference the pruning is tested against."""
    ty, tx = taps
    small = logits.argmax(-1).astype(np.uint8)
    same = _same_2x2(np.pad(small, ((0, 1), (0, 1)), mode="edge"))
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


def bilinear_argmax_x4_all_classes(logits: np.ndarray) -> np.ndarray:
    """:func:`bilinear_argmax_x4` interpolating every class at the boundary cells (the runtime's
    code before the candidate pruning): the reference the pruning is tested against and
    ``tools/bench_accel.py`` measures beside it."""
    h, w, c = logits.shape
    tiles, a, b, corners = _x4_cells(logits)
    if corners is not None:
        corners = corners.astype(np.float32, copy=False).reshape(4, 1, -1)
        mixed = sum(X4_WEIGHTS[:, k, None] * corners[k] for k in range(4)).reshape(16, len(a), c)
        tiles[a, :, b, :] = mixed.argmax(-1).T.reshape(len(a), 4, 4)
    return _x4_crop(tiles, h, w)
