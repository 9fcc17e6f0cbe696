"""Parity of exported files with what was trained, on real frames:

- Keras vs fp32 TFLite on the same input tensor (max absolute logit difference: the conversion);
- Keras through the training pipeline (TensorFlow's decoder, the evaluation letterbox, the
  in-graph bilinear upsample) vs the fp32 file through the device runtime (OpenCV's decoder, the
  runtime's letterbox and upsampling): pixel agreement on every frame, which must be >= 99.9%:
  the device must see what training saw;
- every other file vs fp32: pixel agreement of the predictions (quantization);
- int8 ONNX vs the int8 TFLite model of the same quantization, at the model's output: ONNX
  Runtime rounds differently from TFLite, so the logits differ by a few output steps and the
  class flips where TFLite's two best classes are that close (an undertrained model has many such
  pixels: the pixel agreement of a correct file varied from 98.3% to 100% across seeds of the test
  model). What must not happen is a flip where TFLite's choice is clear.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeseg._tf import tf
from edgeseg.core.geometry import letterbox
from edgeseg.core.images import read_image
from edgeseg.data.pipeline import decode_image_file
from edgeseg.runtime.segmenter import Segmenter

log = logging.getLogger("edgeseg")

FP32_TOLERANCE = 1e-3  # max |keras - tflite| relative to the logit range
PIPELINE_MIN_AGREEMENT = 0.999  # per frame, Keras via tf.data vs fp32 TFLite via the runtime
INT8_MIN_AGREEMENT = 0.90  # pixel agreement of int8 vs fp32 predictions
FLOAT_COPY_MIN_AGREEMENT = 0.98  # fp16, dynamic-range and fp32 ONNX files vs the fp32 reference
# int8 ONNX vs the int8 TFLite model it was made from: their logits differed by at most 7 output
# quantization steps on CamVid (3 on the tiny test model), and every flipped pixel had a TFLite
# margin of at most 3 steps. A flip where TFLite's margin exceeds TIE_STEPS is a conversion error.
TIE_STEPS = 8
ONNX_MAX_CLEAR_FLIPS = 0.001  # fraction of output pixels


def keras_labels(model, image_path, input_size) -> np.ndarray:
    """What training's evaluation predicts for a frame, at the size the frame was letterboxed to."""
    x, box = letterbox(decode_image_file(image_path), input_size)
    logits = tf.image.resize(model(x[None], training=False), input_size, method="bilinear")
    return tf.argmax(logits[0, : box.height, : box.width], -1).numpy().astype(np.uint8)


def runtime_labels(seg: Segmenter, frame: np.ndarray, shape) -> np.ndarray:
    """The runtime's labels for ``frame``, at ``shape`` (the letterbox's size)."""
    import cv2

    labels = seg.predict(frame)
    return labels if labels.shape == tuple(shape) else \
        cv2.resize(labels, tuple(shape)[::-1], interpolation=cv2.INTER_NEAREST)


def parity_checks(model, written: dict, image_paths) -> dict:
    """``model``: the Keras export model (stride-4 logits); ``written``: format -> file. The
    float reference is the fp32 TFLite file, else the fp32 ONNX one."""
    if not image_paths:
        return {"skipped": "no frames to compare on"}
    frames = [read_image(Path(p)) for p in image_paths]
    out: dict = {}
    reference_name = next((n for n in ("fp32", "onnx_fp32") if n in written), None)
    predictions = {}
    for name in ([reference_name] if reference_name else []) + [n for n in written if n != reference_name]:
        seg = Segmenter(written[name], threads=2, upsample="exact")
        predictions[name] = [seg.predict(f) for f in frames]
        if name in ("fp32", "onnx_fp32"):
            out[name] = _against_keras(model, seg, image_paths, frames)
        if name != reference_name and reference_name:
            agree = _agreement(predictions[name], predictions[reference_name])
            float_copy = name in ("fp16", "dynamic", "onnx_fp32")
            ok = agree >= (FLOAT_COPY_MIN_AGREEMENT if float_copy else INT8_MIN_AGREEMENT)
            out.setdefault(name, {}).update(pixel_agreement_vs_fp32=agree, ok=ok and out.get(name, {}).get("ok", True))
            if not ok:
                log.error("PARITY FAILED: %s agrees with fp32 on only %.1f%% of pixels", name, 100 * agree)
    for onnx_name, tflite_name in (("onnx_int8", "int8"), ("onnx_qat", "qat")):
        if onnx_name in predictions and tflite_name in predictions:
            out[onnx_name]["pixel_agreement_vs_tflite"] = _agreement(predictions[onnx_name], predictions[tflite_name])
            same = _same_quantization(Segmenter(written[onnx_name], threads=2), Segmenter(written[tflite_name], threads=2),
                                      frames)
            out[onnx_name].update(same)
            if same["clear_flips"] > ONNX_MAX_CLEAR_FLIPS:
                out[onnx_name]["ok"] = False
                log.error("PARITY FAILED: %s picks another class than %s on %.2f%% of output pixels where %s's "
                          "choice is clear (margin > %d steps)", onnx_name, tflite_name, 100 * same["clear_flips"],
                          tflite_name, TIE_STEPS)
    return out


def _same_quantization(onnx: Segmenter, tflite: Segmenter, frames) -> dict:
    """Compare the two files' logits (stride 4, dequantized) in units of TFLite's output step:
    the largest difference, and the fraction of output pixels whose class differs although TFLite's
    margin between its class and ONNX's exceeds ``TIE_STEPS``."""
    outputs = [(tflite.raw_output(f)[0], onnx.raw_output(f)[0]) for f in frames]
    scale = tflite.output.quantization[0] if tflite.output.quantization else 0.0
    if not scale:  # float output: one step of an 8-bit grid over the logits' range
        scale = max(float(np.ptp(a)) for a, _ in outputs) / 255 or 1.0
    worst, clear = 0.0, []
    for a, b in outputs:
        worst = max(worst, float(np.abs(a - b).max()) / scale)
        ours, theirs = a.argmax(-1)[..., None], b.argmax(-1)[..., None]
        margin = (np.take_along_axis(a, ours, -1) - np.take_along_axis(a, theirs, -1))[..., 0] / scale
        clear.append(float(np.mean(margin > TIE_STEPS)))
    return {"max_logit_diff_steps": worst, "clear_flips": float(np.mean(clear))}


def _agreement(a, b) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))


def _against_keras(model, seg: Segmenter, image_paths, frames) -> dict:
    """Logits on the same input tensor, and predictions through both pipelines."""
    worst, span, agreement = 0.0, 1e-6, []
    for path, frame in zip(image_paths, frames):
        x, _ = letterbox(frame, seg.input_size)
        keras_logits = model(x[None], training=False).numpy()[0]
        exported, _ = seg.raw_output(frame)
        worst = max(worst, float(np.abs(keras_logits - exported).max()))
        span = max(span, float(np.abs(keras_logits).max()))
        trained = keras_labels(model, path, seg.input_size)
        agreement.append(float(np.mean(runtime_labels(seg, frame, trained.shape) == trained)))
    ok_logits = worst <= FP32_TOLERANCE * max(span, 1.0)
    ok_pipeline = min(agreement) >= PIPELINE_MIN_AGREEMENT
    if not ok_logits:
        log.error("PARITY FAILED: %s differs from Keras by %.4g", seg.path.name, worst)
    if not ok_pipeline:
        log.error("PARITY FAILED: the runtime agrees with training's pipeline on only %.2f%% of one frame's pixels",
                  100 * min(agreement))
    return {"max_abs_diff_vs_keras": worst, "pipeline_agreement_min": min(agreement),
            "pipeline_agreement_mean": float(np.mean(agreement)), "ok": ok_logits and ok_pipeline}
