"""What `edgeseg evaluate` shows and writes: the comparison of scored models (mIoU, drops, size,
latency) as a terminal table, Markdown and JSON rows, a per-class IoU bar chart, and the
image | ground truth | prediction grid. numpy and OpenCV only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.core.files import write_image_atomic
from edgeseg.core.metrics import Score
from edgeseg.core.labels import colorize

FLOAT_FILES = ("fp32", "onnx_fp32")  # exported float models: what quantization is measured against
CHART_COLORS = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193)]


def reference(scores: list[Score]) -> Score:
    """What drops are measured against: the first Keras run, else the fp32 file, else the first."""
    return next((s for s in scores if s.kind == "keras"), None) or \
        next((s for s in scores if s.kind in FLOAT_FILES), scores[0])


def comparison_rows(scores: list[Score]) -> list[dict]:
    """One JSON-ready row per model. ``drop_points``: mIoU points below the reference; with a
    Keras run and an fp32 file both present, ``drop_vs_fp32`` separates quantization (fp32 ->
    int8) from export fidelity (Keras -> fp32, which should be ~0)."""
    ref = reference(scores)
    fp32 = next((s for s in scores if s.kind in FLOAT_FILES), None)
    ref_miou = ref.summary["miou"]
    rows = []
    for s in scores:
        summary = s.summary
        row = {"model": s.name, "kind": s.kind, "miou": summary["miou"], "drop_points": 100 * (ref_miou - summary["miou"]),
               "pixel_accuracy": summary["pixel_accuracy"], "mb": None if s.bytes is None else s.bytes / 1e6,
               "latency_ms": s.latency_ms, "per_class_iou": summary["per_class_iou"], "path": s.path, "frames": s.frames}
        if fp32 is not None and ref is not fp32 and s.kind not in ("keras", *FLOAT_FILES):
            row["drop_vs_fp32"] = 100 * (fp32.summary["miou"] - summary["miou"])
        rows.append(row)
    return rows


def _cells(r: dict) -> tuple[str, str, str]:
    mb = "-" if r["mb"] is None else f"{r['mb']:.2f}"
    ms = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}"
    vs_fp32 = f"{r['drop_vs_fp32']:.2f}" if "drop_vs_fp32" in r else "-"
    return mb, ms, vs_fp32


def _iou(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def text_table(rows: list[dict], reference_name: str, split: str) -> str:
    lines = [f"{split}: {rows[0]['frames']} frames; drop in points vs {reference_name} (and vs the fp32 file)",
             f"{'model':<34} {'kind':<9} {'mIoU':>7} {'drop':>7} {'vs fp32':>8} {'pix acc':>8} {'MB':>6} {'pred ms':>8}"]
    for r in rows:
        mb, ms, vs_fp32 = _cells(r)
        lines.append(f"{r['model'][:34]:<34} {r['kind']:<9} {r['miou']:>7.4f} {r['drop_points']:>7.2f} {vs_fp32:>8} "
                     f"{r['pixel_accuracy']:>8.4f} {mb:>6} {ms:>8}")
    lines += ["", "per-class IoU", f"{'class':<16} " + " ".join(f"{r['kind'][:7]:>7}" for r in rows)]
    for c in rows[0]["per_class_iou"]:
        lines.append(f"{c:<16} " + " ".join(f"{_iou(r['per_class_iou'][c]):>7}" for r in rows))
    return "\n".join(lines)


def markdown_table(rows: list[dict], reference_name: str, split: str) -> str:
    out = [f"mIoU on `{split}` ({rows[0]['frames']} frames); drop in points vs {reference_name}.\n",
           "| model | kind | mIoU | drop | drop vs fp32 | pixel acc | MB | median ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mb, ms, vs_fp32 = _cells(r)
        out.append(f"| {r['model']} | {r['kind']} | {r['miou']:.4f} | {r['drop_points']:.2f} | {vs_fp32} | "
                   f"{r['pixel_accuracy']:.4f} | {mb} | {ms} |")
    out += ["", "| class | " + " | ".join(r["kind"] for r in rows) + " |", "|---|" + "---:|" * len(rows)]
    for c in rows[0]["per_class_iou"]:
        out.append(f"| {c} | " + " | ".join(_iou(r["per_class_iou"][c]) for r in rows) + " |")
    return "\n".join(out) + "\n"


def iou_bar_chart(per_model: dict, class_names, path: Path, width: int = 900) -> Path:
    """A per-class IoU bar chart (one colour per model), drawn with OpenCV, written as PNG."""
    import cv2

    names = list(per_model)
    row_h, bar_h, left = 14 * len(names) + 10, 12, 170
    height = 40 + row_h * len(class_names) + 20 * len(names)
    img = np.full((height, width, 3), 255, np.uint8)
    scale = width - left - 60
    for i, cls in enumerate(class_names):
        y = 30 + i * row_h
        cv2.putText(img, cls[:20], (8, y + bar_h), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, name in enumerate(names):
            iou = per_model[name].get(cls) or 0.0
            yy = y + j * 14
            color = CHART_COLORS[j % len(CHART_COLORS)]
            cv2.rectangle(img, (left, yy), (left + int(iou * scale), yy + bar_h - 2), color, -1)
            cv2.putText(img, f"{iou:.3f}", (left + int(iou * scale) + 4, yy + bar_h - 3),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    for j, name in enumerate(names):
        y = height - 20 * (len(names) - j)
        cv2.rectangle(img, (left, y), (left + 14, y + 12), CHART_COLORS[j % len(CHART_COLORS)], -1)
        cv2.putText(img, name, (left + 20, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "per-class IoU", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    write_image_atomic(path, img)
    return path


def overlay_grid(samples, colors, alpha: float = 0.5) -> np.ndarray:
    """Rows of image | ground truth | prediction (blended over the image)."""
    rows = []
    for image, label, pred in samples:
        image = np.clip(image, 0, 255).astype(np.uint8)
        gt = colorize(label, colors)
        pr = (alpha * colorize(pred, colors) + (1 - alpha) * image).astype(np.uint8)
        gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([image, gap, gt, gap, pr], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def write_overlay_grid(samples, colors, path: Path) -> Path:
    write_image_atomic(path, overlay_grid(samples, colors))
    return path
