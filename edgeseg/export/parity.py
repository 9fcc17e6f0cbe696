"""Parity of exported files with what was trained, on real frames:

- Keras vs fp32 TFLite on the same input tensor (max absolute logit difference: the conversion);
- Keras through the training pipeline (TensorFlow's decoder, the evaluation letterbox, the
  in-graph bilinear upsample) vs the fp32 file through the device runtime (OpenCV's decoder, the
  runtime's letterbox and upsampling): pixel agreement on every frame, which must be >= 99.9%:
  the device must see what training saw;
- the float copies (fp16, fp32 ONNX) vs fp32: pixel agreement (>= 98%);
- a labels head (upsample and argmax in the graph) vs the logits file it ends, both through the
  runtime: pixel agreement (>= 99.9%); only near-ties can differ, where the graph's bilinear
  arithmetic rounds otherwise than the runtime's;
- the quantized files (int8, QAT, dynamic range) vs fp32, and int8 ONNX vs the int8 TFLite model it was made from: class flips
  where the reference's choice is clear. Quantization moves logits by a few output steps, so the
  class flips where the reference's two best classes are that close; an undertrained model has
  many such pixels (the int8 pixel agreement of correct files varied from 92.8% to 100% across
  seeds of the 64x64 test model, ONNX vs TFLite from 98.3% to 100%), a broken file flips pixels
  the reference scored clearly. Pixel agreement is reported beside it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from edgeseg._tf import tf
from edgeseg.core.errors import DataError
from edgeseg.core.geometry import letterbox
from edgeseg.core.images import read_image
from edgeseg.data import load_split
from edgeseg.data.pipeline import decode_image_file
from edgeseg.export.formats import EXPORT_FORMATS
from edgeseg.export.metadata import embed_metadata
from edgeseg.export.tflite import convert
from edgeseg.runtime.model.segmenter import Segmenter

log = logging.getLogger("edgeseg")

FP32_TOLERANCE = 1e-3  # max |keras - tflite| relative to the logit range
PIPELINE_MIN_AGREEMENT = 0.999  # per frame, Keras via tf.data vs fp32 TFLite via the runtime
FLOAT_COPY_MIN_AGREEMENT = 0.98  # fp16 and fp32 ONNX files vs the fp32 reference
LABELS_MIN_AGREEMENT = 0.999  # a labels head vs its logits file through the runtime
# A flip is clear where the reference's margin between its class and the other file's exceeds
# TIE_STEPS output steps of the quantized file (8 steps: about 3% of the logit range). Measured on
# 8 CamVid val frames (runs/camvid-after): int8 TFLite vs fp32 0.7% of output pixels flipped, none
# clear; QAT int8 (fine-tuned, so a different model) 1.3% flipped, 0.03% clear; int8 ONNX vs
# TFLite logits within 7 steps, every flip within 3 steps.
TIE_STEPS = 8
INT8_MAX_CLEAR_FLIPS = 0.02  # int8, QAT and dynamic range vs fp32, fraction of output pixels
ONNX_MAX_CLEAR_FLIPS = 0.001  # int8 ONNX vs the int8 TFLite model it was made from


def keras_labels(model, image_path, input_size) -> np.ndarray:
    """What training's evaluation predicts for a frame, at the size the frame was letterboxed to."""
    x, box = letterbox(decode_image_file(image_path), input_size)
    logits = tf.image.resize(model(x[None], training=False), input_size, method="bilinear")
    return tf.argmax(logits[0, : box.height, : box.width], -1).numpy().astype(np.uint8)


def at_size(labels: np.ndarray, shape) -> np.ndarray:
    """``labels`` (the runtime's, at the frame's size) at ``shape`` (the letterbox's size)."""
    import cv2

    return labels if labels.shape == tuple(shape) else \
        cv2.resize(labels, tuple(shape)[::-1], interpolation=cv2.INTER_NEAREST)


def parity_checks(model, written: dict, image_paths, reference: Path | None = None) -> dict:
    """``model``: the Keras export model (stride-4 logits); ``written``: format -> file. Every
    file is judged against the fp32 TFLite file by its row's ``parity`` role: the written one, or
    ``reference`` (a temporary fp32 conversion when fp32 was not asked for), which is then checked
    against Keras under the name ``fp32_reference``."""
    from edgeseg.export.formats import EXPORT_FORMATS

    if not image_paths:
        return {"skipped": "no frames to compare on"}
    if "fp32" not in written and reference is None:
        raise ValueError("parity needs the fp32 file or a temporary fp32 reference")
    frames = [read_image(Path(p)) for p in image_paths]
    ref_name = "fp32" if "fp32" in written else "fp32_reference"
    others = sorted((n for n in written if n != "fp32"),  # bases first, labels heads after their logits files
                    key=lambda n: (EXPORT_FORMATS[n].labels_of is not None, EXPORT_FORMATS[n].file == "onnx"))
    files = {ref_name: written.get("fp32", reference), **{n: written[n] for n in others}}
    out: dict = {}
    logits, steps, predictions, pendings = {}, {}, {}, {}
    for name, path in files.items():
        row = EXPORT_FORMATS["fp32" if name == ref_name else name]
        seg = Segmenter(path, threads=2, upsample="exact")
        pending = pendings[name] = [seg.infer(f) for f in frames]
        predictions[name] = [seg.finish(p) for p in pending]
        result = out.setdefault(name, {"ok": True})
        if row.labels_of:
            twin = row.labels_of if row.labels_of in written else ref_name
            # a labels head computes --upsample auto's masks (ids at the input size, nearest to a
            # larger frame): its twin's logits are post-processed the same way to compare
            auto = Segmenter(files[twin], threads=2, upsample="auto")
            result.update(_labels_parity(name, twin, predictions[name], [auto.finish(p) for p in pendings[twin]],
                                         predictions[ref_name]))
            continue
        logits[name] = [seg.dequantize(p.output) for p in pending]
        steps[name] = seg.output.quantization[0] if seg.output.quantization else None
        if ref_name == "fp32_reference" and name == ref_name:
            result["temporary"] = True  # converted for the check, not written
        if row.float32:
            result.update(_against_keras(model, seg, image_paths, frames, logits[name], predictions[name]))
        if row.parity == "reference":
            continue
        agree = _agreement(predictions[name], predictions[ref_name])
        result["pixel_agreement_vs_fp32"] = agree
        if row.parity == "float":
            if agree < FLOAT_COPY_MIN_AGREEMENT:
                result["ok"] = False
                log.error("PARITY FAILED: %s agrees with fp32 on only %.1f%% of pixels", name, 100 * agree)
            continue
        flips = _flips(logits[ref_name], logits[name], steps[name], (name, "fp32"), INT8_MAX_CLEAR_FLIPS)
        result.update(flips, ok=result["ok"] and flips["ok"])
        base = row.base if row.file == "onnx" else None
        if base in written:
            result["pixel_agreement_vs_tflite"] = _agreement(predictions[name], predictions[base])
            same = _flips(logits[base], logits[name], steps[name] or steps[base], (name, base), ONNX_MAX_CLEAR_FLIPS)
            result.update({f"{k}_vs_tflite": v for k, v in same.items() if k != "ok"}, ok=result["ok"] and same["ok"])
    return out


def _labels_parity(name: str, twin: str, masks: list, twin_masks: list, fp32_masks: list) -> dict:
    """A labels-head file's masks against its logits ``twin``'s post-processed as the head does
    (``--upsample auto``; the twin: the file it ends, or the fp32 reference when that was not
    written) and against fp32's."""
    agree = _agreement(masks, twin_masks)
    worst = min(float(np.mean(a == b)) for a, b in zip(masks, twin_masks))
    ok = agree >= LABELS_MIN_AGREEMENT
    if not ok:
        log.error("PARITY FAILED: %s agrees with %s (logits head) on only %.3f%% of pixels", name, twin, 100 * agree)
    return {"logits_file": twin, "pixel_agreement_vs_logits": agree, "pixel_agreement_vs_logits_min": worst,
            "pixel_agreement_vs_fp32": _agreement(masks, fp32_masks), "ok": ok}


def _flips(reference: list, other: list, step: float | None, names: tuple[str, str], max_clear: float) -> dict:
    """Two files' logits per frame (output stride, dequantized) in units of ``step``, the quantized
    file's output step (None for a float output: 1/255 of the reference's logit range): the
    largest difference, and the fraction of output pixels where ``other`` picks a class that
    ``reference`` scores more than ``TIE_STEPS`` below its own (at most ``max_clear``).
    ``names``: (other, reference), for the message."""
    step = step or max(float(np.ptp(a)) for a in reference) / 255 or 1.0
    worst, clear = 0.0, []
    for a, b in zip(reference, other):
        worst = max(worst, float(np.abs(a - b).max()) / step)
        ours, theirs = a.argmax(-1)[..., None], b.argmax(-1)[..., None]
        margin = (np.take_along_axis(a, ours, -1) - np.take_along_axis(a, theirs, -1))[..., 0] / step
        clear.append(float(np.mean(margin > TIE_STEPS)))
    flips = float(np.mean(clear))
    if flips > max_clear:
        log.error("PARITY FAILED: %s picks another class than %s on %.2f%% of output pixels where %s's choice "
                  "is clear (margin > %d steps)", names[0], names[1], 100 * flips, names[1], TIE_STEPS)
    return {"max_logit_diff_steps": worst, "clear_flips": flips, "ok": flips <= max_clear}


def _agreement(a, b) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))


def _against_keras(model, seg: Segmenter, image_paths, frames, logits, labels) -> dict:
    """Logits on the same input tensor, and predictions through both pipelines (``logits``,
    ``labels``: the file's, per frame, through the runtime)."""
    worst, span, agreement = 0.0, 1e-6, []
    for path, frame, exported, runtime in zip(image_paths, frames, logits, labels):
        x, _ = letterbox(frame, seg.input_size)
        keras_logits = model(x[None], training=False).numpy()[0]
        worst = max(worst, float(np.abs(keras_logits - exported).max()))
        span = max(span, float(np.abs(keras_logits).max()))
        trained = keras_labels(model, path, seg.input_size)
        agreement.append(float(np.mean(at_size(runtime, trained.shape) == trained)))
    ok_logits = worst <= FP32_TOLERANCE * max(span, 1.0)
    ok_pipeline = min(agreement) >= PIPELINE_MIN_AGREEMENT
    if not ok_logits:
        log.error("PARITY FAILED: %s differs from Keras by %.4g", seg.path.name, worst)
    if not ok_pipeline:
        log.error("PARITY FAILED: the runtime agrees with training's pipeline on only %.2f%% of one frame's pixels",
                  100 * min(agreement))
    return {"max_abs_diff_vs_keras": worst, "pipeline_agreement_min": min(agreement),
            "pipeline_agreement_mean": float(np.mean(agreement)), "ok": ok_logits and ok_pipeline}


def parity_items_of(root, fmt, split: str, count: int, report: dict) -> list:
    """The frames parity is checked on: the run's val split (recorded in ``report``)."""
    try:
        items = load_split(root, fmt, split).items[:count]
        report["parity_frames"] = {"split": split, "frames": len(items)}
        return items
    except DataError as e:
        report["parity_frames"] = {"split": None, "frames": 0, "why": str(e)}
        log.warning("parity checks cannot use the %s split: %s", split, e)
        return []


def check_parity(model, written: dict, images: list, metadata) -> dict:
    """Every file against a float reference, asked for or not: the fp32 file, else a temporary
    fp32 conversion."""
    with tempfile.TemporaryDirectory(prefix="edgeseg-parity-") as tmp:
        reference = None
        if "fp32" not in written:
            reference = Path(tmp) / "fp32_reference.tflite"
            reference.write_bytes(embed_metadata(convert(model, EXPORT_FORMATS["fp32"], None, "float"), metadata("fp32")))
        return parity_checks(model, written, images, reference)
