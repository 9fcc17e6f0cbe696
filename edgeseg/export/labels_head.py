"""A labels head for exported graphs: the stride-4 logits bilinearly upsampled to the input size
(half-pixel centres, edges clamped: what the runtime and evaluation compute) and reduced to one
class id a pixel inside the graph, so the runtime has nothing left to compute but a crop.

Several formulations of the argmax, because accelerators take different ops (what each did on
each backend: docs/benchmarks.md, "A labels head in the graph"):

- ``argmax``: ARG_MAX with int32 ids, then CAST to uint8;
- ``argmax_int64``: ARG_MAX with int64 ids (TensorFlow's default, and what an export from
  PyTorch gives), then CAST to uint8;
- ``argmax_int32``: ARG_MAX alone, int32 ids;
- ``select``: REDUCE_MAX, GREATER_EQUAL, SELECT_V2 of the class ids, REDUCE_MIN (float ids);
- ``equal``: REDUCE_MAX, GREATER_EQUAL, CAST to float, MUL by (C - id), REDUCE_MAX, SUB (float
  ids): comparisons and reductions a GPU runs, no integer tensor but the last cast's;
- ``equal_uint8``: ``equal``, then CAST to uint8.

Each picks the lowest class among equal maxima, as numpy's argmax does.
"""

from __future__ import annotations

from edgeseg._tf import tf
from edgeseg.export.formats import DEFAULT_LABELS_HEAD, LABELS_HEADS


def _upsampled(logits, size):
    return tf.image.resize(logits, size, method="bilinear")  # RESIZE_BILINEAR, half-pixel centres


def labels_head(logits, size, formulation: str = DEFAULT_LABELS_HEAD):
    """Class ids (N x H x W) of the ``logits`` (N x h x w x C) upsampled to ``size``."""
    if formulation not in LABELS_HEADS:
        raise ValueError(f"labels head must be one of {', '.join(LABELS_HEADS)}, got {formulation!r}")
    x = _upsampled(logits, size)
    c = int(logits.shape[-1])
    if formulation.startswith("argmax"):
        ids = tf.argmax(x, axis=-1, output_type=tf.int64 if formulation == "argmax_int64" else tf.int32)
        return ids if formulation == "argmax_int32" else tf.cast(ids, tf.uint8)
    top = tf.reduce_max(x, axis=-1, keepdims=True)
    is_top = tf.greater_equal(x, top)
    if formulation == "select":
        ids = tf.constant([float(i) for i in range(c)], tf.float32)
        return tf.reduce_min(tf.where(is_top, ids, float(c)), axis=-1)
    rank = tf.constant([float(c - i) for i in range(c)], tf.float32)  # the lowest id ranks highest
    ids = float(c) - tf.reduce_max(tf.cast(is_top, tf.float32) * rank, axis=-1)
    return tf.cast(ids, tf.uint8) if formulation == "equal_uint8" else ids
