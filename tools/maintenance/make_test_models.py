#!/usr/bin/env python
"""Train a tiny DeepLabv3+ on generated data and export fp32 + int8 TFLite models plus a short
video, the same frames as PNGs, and labelled frames, for the runtime tests that run without TensorFlow
(`make test` runs them in .venv-runtime, which has only the runtime install).

    .venv/bin/python tools/maintenance/make_test_models.py OUT_DIR
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(out: Path) -> None:
    import cv2

    from edgeseg.config import TrainConfig
    from edgeseg.data import synthetic
    from edgeseg.export.exporter import ExportOptions, export_run
    from edgeseg.train import train

    out.mkdir(parents=True, exist_ok=True)
    data = synthetic.generate(out / "data", {"train": 16, "val": 4}, size=(64, 64))
    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)
    cfg = TrainConfig().override(
        data__root=str(data), data__crop_size=[64, 64], data__batch_size=4, model__alpha=0.35,
        model__aspp_filters=32, model__decoder_filters=32, optim__epochs=3, optim__steps_per_epoch=40,
        optim__learning_rate=5e-3, data__scale_range=[0.75, 1.25])  # trained enough to draw several classes
    train(cfg, run, verbose=0)
    # a barely trained 64x64 model has many near-tied pixels: its parity is reported below, not
    # logged as an export failure (the runtime tests set their own thresholds)
    logging.getLogger("edgeseg").setLevel(logging.CRITICAL)
    report = export_run(run, ExportOptions(formats=("fp32", "int8", "onnx_fp32", "onnx_int8"), out_dir=out,
                                           calib_size=8, manifest_dir=out, force=True))
    agreements = {name: p.get("pixel_agreement_vs_tflite", p.get("pixel_agreement_vs_fp32"))
                  for name, p in report.get("parity", {}).items()}
    print("test-model parity: " + ", ".join(f"{n} {100 * a:.2f}%" for n, a in agreements.items() if a is not None))
    for name, info in report["files"].items():
        shutil.copy(info["path"], out / f"tiny_{name.replace('onnx_', '')}{Path(info['path']).suffix}")
    frames = sorted((data / "val" / "images").glob("*.jpg"))
    writer = cv2.VideoWriter(str(out / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    (out / "frames").mkdir(exist_ok=True)
    for f in frames:
        image = cv2.imread(str(f))
        writer.write(image)
        cv2.imwrite(str(out / "frames" / f"{f.stem}.png"), image)  # lossless: the same pixels everywhere
    writer.release()
    print(f"test models in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/test-models"))
