"""Starting a QAT model where the float model is: activation ranges observed on real frames,
weight ranges from the weights themselves, the input range of RGB pixels."""

from __future__ import annotations

import numpy as np

from edgeseg._tf import keras, tf


def init_quantizer_ranges(qat_model: keras.Model, float_model: keras.Model, frames) -> int:
    """Start every activation quantizer at the range the float model really produces.

    tfmot's moving-average quantizers start at [-6, 6] and move with an EMA decay of 0.999,
    so after a few hundred fine-tuning steps ranges that should reach 50 (logits, pre-add
    features) or 255 (input pixels) are still clipped near 6, and the QAT model starts far
    from the float one (4% pixel agreement on CamVid before this). Observed min/max over
    ``frames`` (float32 NxHxWx3 batches) fix that; QAT then only refines them.
    """
    by_name = {layer.name: layer for layer in float_model.layers}
    targets, outputs = [], []
    for layer in qat_model.layers:
        kind = type(layer).__name__
        if kind == "QuantizeLayer":
            continue
        inner = getattr(layer, "layer", None)
        source = by_name.get(inner.name if inner is not None else layer.name)
        ranges = [v for v in layer.weights if v.name.split("/")[-1].split(":")[0] in
                  ("output_min", "output_max", "post_activation_min", "post_activation_max")]
        if source is None or not ranges:
            continue
        targets.append((layer, ranges))
        outputs.append(source.output)
    probe = keras.Model(float_model.input, outputs)
    lo = [np.inf] * len(outputs)
    hi = [-np.inf] * len(outputs)
    for batch in frames:
        values = probe(batch, training=False)
        values = values if isinstance(values, list) else [values]
        for i, v in enumerate(values):
            lo[i] = min(lo[i], float(tf.reduce_min(v)))
            hi[i] = max(hi[i], float(tf.reduce_max(v)))
    for (layer, ranges), a, b in zip(targets, lo, hi):
        for v in ranges:
            v.assign(min(a, 0.0) if v.name.split("/")[-1].startswith(("output_min", "post_activation_min")) else max(b, 0.0))
    for layer in qat_model.layers:
        # Weight quantizers keep the range of the last training step and start at [-6, 6]:
        # before the first step, inference would round most weights of a trained layer to 0.
        for weight, quantizer, quantizer_vars in getattr(layer, "_weight_vars", []):
            quantizer(weight, training=True, weights=quantizer_vars)
        if type(layer).__name__ == "QuantizeLayer":  # the model input: RGB pixels 0-255
            for v in layer.weights:
                name = v.name.split("/")[-1].split(":")[0]  # quantize_layer[_N]_min / _max
                if name.endswith("_min"):
                    v.assign(0.0)
                elif name.endswith("_max"):
                    v.assign(255.0)
    return len(targets)
