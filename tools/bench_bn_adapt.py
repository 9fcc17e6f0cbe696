#!/usr/bin/env python
"""Does re-estimating BatchNorm statistics on a new drive's unlabelled frames (AdaBN, Li et al.
2016) help a run there? An experiment for issue 21, not a feature: edgeseg has no adapt command.

    .venv/bin/python tools/bench_bn_adapt.py runs/lever-X [--blend 0.25,0.5,1.0] [--json out.json]

The run's held-out frames (``data.holdout``, e.g. drive 0006R0) are split in time order: the
first half gives the statistics (their labels are loaded with the frames but never used), the
second half is scored, before and after, with the run's eval size (frames padded as in
evaluation; the padding rows feed the statistics too). ``--blend b`` sets each BN layer's moving mean and variance
to (1 - b) x the trained ones + b x the new drive's (the cumulative mean of its batch statistics
at the eval size, dropout off, gathered with every layer before already on the new statistics, so
a blend below 1 is an approximation); b = 1 is plain AdaBN.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lever_table import RARE  # noqa: E402  the issue's rare classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--blend", default="0.25,0.5,1.0")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    blends = [float(b) for b in args.blend.split(",")]

    from edgeseg._tf import keras
    from edgeseg.config import TrainConfig
    from edgeseg.core import metrics
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.models import load_run_model
    from edgeseg.rundir import RunDir
    from edgeseg.train.scoring import confusion_over

    run = RunDir(args.run).require()
    d = TrainConfig.load(run.config).data
    if not d.holdout:
        sys.exit(f"{args.run}: trained without --holdout; there is no unseen drive to adapt to")
    _, held = load_source(d.root, d.format, d.train_split).partition(d.holdout)
    items = sorted(held.items)
    stats_half, scored_half = replace(held, items=items[: len(items) // 2]), replace(held, items=items[len(items) // 2:])
    size = tuple(d.eval_size)
    model, _ = load_run_model(args.run, size)
    names = run.read_json(run.dataset)["class_names"]

    def score() -> dict:
        cm = confusion_over(model, build_eval_dataset(scored_half, 4, size, d.base_scale), len(names))
        s = metrics.summarize(cm, names)
        return {"miou": s["miou"], "rare_mean": metrics.class_mean(s["per_class_iou"], RARE)}

    rows = {"trained statistics": score()}
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    trained = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in bns]
    for k, (images, _) in enumerate(build_eval_dataset(stats_half, 8, size, d.base_scale), 1):
        for b in bns:
            b.momentum = (k - 1) / k  # the cumulative mean of the batch statistics
        model(images, training=True)
    new = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in bns]
    for blend in blends:
        for b, (tm, tv), (nm, nv) in zip(bns, trained, new):
            b.moving_mean.assign((1 - blend) * tm + blend * nm)
            b.moving_variance.assign((1 - blend) * tv + blend * nv)
        rows[f"blend {blend:g}"] = score()
    print(f"{args.run}: statistics from {len(stats_half.items)} frames of {d.holdout}, "
          f"scored on the other {len(scored_half.items)}")
    print(f"  {'BN statistics':<20} {'mIoU':>7} {'rare':>7}")
    for name, r in rows.items():
        rare = "-" if r["rare_mean"] is None else f"{r['rare_mean']:.4f}"
        print(f"  {name:<20} {r['miou']:7.4f} {rare:>7}")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "holdout": d.holdout, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
