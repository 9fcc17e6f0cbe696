#!/usr/bin/env python
"""Cost of the DeepLabv3+ variants, measured side by side in one run: parameters,
multiply-adds per CamVid frame (360x480, padded to 368x480; counted from the TF graph) and float
training sec/step on 256x256 crops. With ``--run NAME=RUN_DIR`` the CamVid val mIoU of trained
runs is listed next to them.

    .venv/bin/python tools/bench/bench_model.py [--run separable=runs/a --run plain=runs/b] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

VARIANTS = [("mobilenetv2", "plain"), ("mobilenetv2", "separable"), ("resnet50", "plain"), ("resnet50", "separable")]


def train_sec_per_step(model_config, num_classes, size, batch, steps):
    from edgeseg._tf import keras, tf
    from edgeseg.losses import SegmentationLoss
    from edgeseg.models import build_deeplabv3plus

    model = build_deeplabv3plus(model_config, num_classes, size)
    model.compile(keras.optimizers.AdamW(1e-3), SegmentationLoss(num_classes, dice_weight=0.5))
    h, w = size
    x = tf.random.uniform((batch, h, w, 3), 0, 255)
    y = tf.random.uniform((batch, h, w), 0, num_classes, tf.int32)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - t) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-classes", type=int, default=11)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per variant")
    ap.add_argument("--skip-resnet-timing", action="store_true", help="ResNet50 steps take seconds each on a CPU")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="a trained run whose val mIoU to list (NAME: plain or separable)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from edgeseg.config import ModelConfig
    from edgeseg.models import build_deeplabv3plus
    from edgeseg.models.cost import count_macs
    from edgeseg.models.deeplabv3plus import count_params

    runs = {}
    for item in args.run:
        name, _, path = item.partition("=")
        summary = json.loads((Path(path) / "best.json").read_text())
        runs[name] = summary["miou"]

    rows = []
    for backbone, head in VARIANTS:
        cfg = ModelConfig(backbone=backbone, alpha=args.alpha, head=head)
        model = build_deeplabv3plus(cfg, args.num_classes, (368, 480))
        row = {"backbone": backbone, "head": head, "params": count_params(model), "gmacs": count_macs(model) / 1e9}
        skip = backbone == "resnet50" and args.skip_resnet_timing
        row["train_sec_per_step"] = None if skip else train_sec_per_step(
            cfg, args.num_classes, (256, 256), args.batch_size, args.steps)
        if backbone == "mobilenetv2" and head in runs:
            row["camvid_val_miou"] = runs[head]
        rows.append(row)
        print(f"measured {backbone} {head}", file=sys.stderr, flush=True)

    print(f"\nDeepLabv3+ cost: 368x480 input (a 360x480 CamVid frame padded), OS16, {args.num_classes} classes; "
          f"training sec/step at 256x256, batch {args.batch_size}, float32 on this CPU\n")
    print(f"{'backbone':<12} {'head':<10} {'params':>11} {'GMACs/frame':>12} {'vs plain':>9} {'sec/step':>9} {'val mIoU':>9}")
    plain = {r["backbone"]: r["gmacs"] for r in rows if r["head"] == "plain"}
    for r in rows:
        r["macs_vs_plain"] = r["gmacs"] / plain[r["backbone"]]
        step = "-" if r["train_sec_per_step"] is None else f"{r['train_sec_per_step']:.3f}"
        miou = f"{r['camvid_val_miou']:.4f}" if r.get("camvid_val_miou") is not None else "-"
        print(f"{r['backbone']:<12} {r['head']:<10} {r['params']:>11,} {r['gmacs']:>12.2f} "
              f"{r['macs_vs_plain']:>8.2f}x {step:>9} {miou:>9}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
