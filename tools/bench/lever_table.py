#!/usr/bin/env python
"""The recipe yardstick: runs trained on two CamVid drives and scored on the third (leave one
drive out, ``--holdout '0006R0_*' --ship last``), in one table: held-out mIoU, the rare-class mean
(pole, sign, pedestrian, bicyclist), val (a drive the runs trained on: a progress monitor, not
a score) and seconds per step.

    .venv/bin/python tools/bench/lever_table.py runs/lever-base:baseline runs/lever-cp:"copy-paste 0.5" \\
        [--json docs/levers.json [--with int8=RUN/heldout_int8.json --with latency=bench_peers.json]]

Each argument is RUN[:LABEL], or ROW.json[:LABEL] for a row another tool wrote in the same
form (tools/bench/peer_ultralytics.py: the Ultralytics peer). The held-out score comes from the run's summary.json (``holdout``,
scored with the shipped weights); runs made before it was recorded are scored here on the
frames their ``data.holdout`` names. Only CamVid's train and val splits are read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edgeseg.core.metrics import class_mean  # noqa: E402
# The rare classes: CamVid's thin ones. A run's summary.json averages its own rare classes
# instead (those under 2% of its training pixels, ``data.rare_classes``), which on CamVid adds fence.
RARE = ("pole", "sign_symbol", "pedestrian", "bicyclist")


def rare_mean(per_class: dict) -> float | None:
    return class_mean(per_class, RARE)


def held_out_score(run: Path, summary: dict, config) -> dict:
    if "holdout" in summary:
        return summary["holdout"]
    from edgeseg.core import metrics
    from edgeseg.data.pipeline import build_eval_dataset, load_source
    from edgeseg.models import load_run_model
    from edgeseg.rundir import RunDir
    from edgeseg.train.scoring import confusion_over

    d = config.data
    _, held = load_source(d.root, d.format, d.train_split).partition(d.holdout)
    model, _ = load_run_model(run, tuple(d.eval_size), RunDir(run).weights())
    ds = build_eval_dataset(held, 4, tuple(d.eval_size), d.base_scale)
    return metrics.summarize(confusion_over(model, ds, held.info.num_classes), held.info.class_names)


def row(spec: str) -> dict:
    from edgeseg.config import TrainConfig

    path, _, label = spec.partition(":")
    run = Path(path)
    if run.suffix == ".json":  # a row written elsewhere (tools/bench/peer_ultralytics.py)
        return {**json.loads(run.read_text()), **({"label": label} if label else {})}
    summary = json.loads((run / "summary.json").read_text())
    config = TrainConfig.load(run / "config.yaml")
    if not config.data.holdout:
        sys.exit(f"{run}: trained without --holdout; the yardstick needs a drive held out")
    held = held_out_score(run, summary, config)
    return {"run": str(run), "label": label or run.name, "holdout": config.data.holdout,
            "steps": summary["steps"], "seed": config.seed, "heldout_miou": held["miou"],
            "heldout_rare_mean": rare_mean(held["per_class_iou"]), "heldout_per_class": held["per_class_iou"],
            "val_miou": summary.get("report", {}).get("miou"), "sec_per_step": summary.get("sec_per_step")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN[:LABEL] or ROW.json[:LABEL]")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--with", dest="extra", action="append", default=[], metavar="NAME=FILE.json",
                    help="another measurement kept beside the rows in --json, e.g. int8=RUN/heldout_int8.json "
                         "(`edgeseg evaluate --json`) or latency=bench_peers.json")
    args = ap.parse_args(argv)
    if args.extra and not args.json:
        ap.error("--with keeps measurements in the --json file: give --json too")
    extra = {}
    for spec in args.extra:
        name, _, file = spec.partition("=")
        if not name or name == "rows" or not Path(file).is_file():
            ap.error(f"--with {spec}: give NAME=FILE.json (NAME not 'rows') with an existing file")
        try:
            extra[name] = json.loads(Path(file).read_text())
        except json.JSONDecodeError as e:
            ap.error(f"--with {spec}: {file} is not JSON ({e.msg}, line {e.lineno})")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = [row(spec) for spec in args.runs]
    base = rows[0]
    print("| lever | steps | seed | held-out mIoU | vs first | rare-class mean | val mIoU | s/step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fmt = lambda v, f="{:.4f}": "-" if v is None else f.format(v)  # noqa: E731
        print(f"| {r['label']} | {r['steps']} | {r['seed']} | {fmt(r['heldout_miou'])} | "
              f"{fmt(100 * (r['heldout_miou'] - base['heldout_miou']), '{:+.1f}')} | {fmt(r['heldout_rare_mean'])} | "
              f"{fmt(r['val_miou'])} | {fmt(r['sec_per_step'], '{:.2f}')} |")
    print(f"\nper class on the held-out frames ({base['holdout']}):\n")
    names = list(base["heldout_per_class"])
    print("| lever | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for r in rows:
        print(f"| {r['label']} | " + " | ".join("-" if r["heldout_per_class"][n] is None else f"{r['heldout_per_class'][n]:.3f}"
                                            for n in names) + " |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **extra}, indent=2))


if __name__ == "__main__":
    main()
