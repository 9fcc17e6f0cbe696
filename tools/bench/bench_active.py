#!/usr/bin/env python
"""Does choosing frames by the collector's score beat choosing them at random? Measured on CamVid.

A base model trained on drives 0001TP + 0016E5 of the train split (``--base``; trained here with
tools/train_camvid.sh at a shorter budget when missing) is "deployed" on drive 0006R0, which it
never saw, split by time: the first ``--pool`` frames are what the camera sees and a person may
label, the rest is the evaluation part. K frames are chosen from the pool

- by ``edgeseg run BASE_int8.tflite --source POOL --collect DIR --collect-top 1 --collect-window
  POOL/K`` (the device command: the most uncertain frame of each stretch; its frames.csv names
  them), and the K most uncertain of the whole pool (``--collect-top K --collect-window POOL``),
- at random (``--seeds``),
- all of the pool (the most a person could label),

and each set is fine-tuned the same way with ``edgeseg train --init BASE --data SET`` using the
frames' real labels (standing in for the person who fixes the drafts). Every model is scored on
the evaluation part (Keras, full frames): mIoU, the rare-class mean (pole, sign, pedestrian,
bicyclist), and val (drive 0016E5, trained on by the base) to show what is forgotten.

    .venv/bin/python tools/bench/bench_active.py --data ../shared/data/camvid --base runs/active-base \\
        --out runs/active [--k 10] [--seeds 0,1,2] [--json runs/active/bench.json]

Only CamVid's train and val splits are read.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lever_table import rare_mean  # noqa: E402 - the same rare-class mean as the lever table

DRIVE = "0006R0"


def edgeseg() -> str:
    return str(Path(sys.executable).with_name("edgeseg"))


def sh(cmd: list[str], log: Path) -> None:
    """Run a command, its output into ``log``; a failure stops the benchmark with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode:
        tail = log.read_text().splitlines()[-5:]
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({log}):\n" + "\n".join(tail))


def drive_frames(data: Path) -> list[tuple[Path, Path]]:
    """The held-out drive's (image, label) pairs of the train split, in time order."""
    from edgeseg.data import load_split

    items = load_split(data, "camvid", "train").items
    return sorted(((i, l) for i, l in items if Path(i).stem.startswith(DRIVE)), key=lambda p: Path(p[0]).stem)


def write_set(items, root: Path, split: str) -> Path:
    """A ``folder`` dataset of these frames with their real labels (train ids)."""
    import cv2

    from edgeseg.core.images import read_label
    from edgeseg.core.labels import write_classes
    from edgeseg.data.camvid import INFO

    if (root / split / "masks").is_dir() and len(list((root / split / "masks").iterdir())) == len(items):
        return root
    for sub in ("images", "masks"):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    write_classes(root / "classes.txt", INFO.class_names, INFO.colors)
    for image, label in items:
        link = root / split / "images" / Path(image).name
        if not link.exists():
            link.symlink_to(Path(image).resolve())
        ids, _ = read_label(Path(label), INFO.label_map)
        cv2.imwrite(str(root / split / "masks" / f"{Path(image).stem}.png"), ids)
    return root


def selected_by_collector(model: Path, pool: Path, out: Path, top: int, window: int, when: str) -> list[str]:
    """The frames `edgeseg run --collect` keeps from the pool: the ``top`` most uncertain of each
    ``window`` frames."""
    folder = out / f"collected-{when}-{top}of{window}"
    if not folder.is_dir():
        cmd = [edgeseg(), "run", str(model), "--source", str(pool / "train" / "images"), "--collect", str(folder),
               "--collect-when", when, "--collect-top", str(top), "--collect-window", str(window),
               "--collect-gap", "0", "--threads", "2"]
        sh(cmd, out / f"{folder.name}.log")
    with (folder / "frames.csv").open(newline="") as f:
        return [row["name"] for row in csv.DictReader(f)]


def finetune(base: Path, data: Path, run: Path, steps: int, seed: int) -> Path:
    if not (run / "summary.json").is_file():
        cmd = [edgeseg(), "train", "--init", str(base), "--data", str(data), "--run-dir", str(run),
               "--epochs", "1", "--steps-per-epoch", str(steps), "--seed", str(seed)]
        sh(cmd, run.with_suffix(".log"))
    return run


def score(run: Path, data: Path, fmt: str, split: str) -> dict:
    from edgeseg.train.scoring import score_run

    result, _, _ = score_run(run, data, fmt, split)
    summary = result.summary
    per, miou = summary["per_class_iou"], summary["miou"]
    return {"miou": miou, "rare_mean": rare_mean(per), "per_class_iou": per}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid"))
    ap.add_argument("--base", type=Path, default=Path("runs/active-base"))
    ap.add_argument("--base-epochs", type=int, default=20, help="when the base is trained here: epochs of 100 steps")
    ap.add_argument("--out", type=Path, default=Path("runs/active"))
    ap.add_argument("--pool", type=int, default=70, help="first frames of the drive that may be labelled")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=300, help="fine-tuning steps")
    ap.add_argument("--when", default="uncertain", help="the collector's score (--collect-when)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    if not (args.base / "summary.json").is_file():
        print(f"training the base model {args.base} ({args.base_epochs * 100} steps)...", flush=True)
        sh([str(REPO / "tools/train_camvid.sh"), str(args.data), str(args.base), "--holdout", f"{DRIVE}_*",
            "--ship", "last", "--epochs", str(args.base_epochs), "--val-every", str(args.base_epochs)], out / "base.log")
    frames = drive_frames(args.data)
    pool, evaluation = frames[: args.pool], frames[args.pool:]
    pool_set = write_set(pool, out / "pool", "train")
    eval_set = write_set(evaluation, out / "eval", "eval")
    print(f"{DRIVE}: pool {len(pool)} frames ({Path(pool[0][0]).stem}..{Path(pool[-1][0]).stem}), "
          f"evaluation {len(evaluation)} ({Path(evaluation[0][0]).stem}..)", flush=True)

    model = out / "export" / f"{args.base.name}_int8.tflite"
    if not model.is_file():
        sh([edgeseg(), "export", str(args.base), "--precisions", "int8", "--out", str(out / "export")],
           out / "export.log")
    by_name = {Path(i).stem: (i, l) for i, l in pool}
    # the device's way: the most uncertain frame of each stretch of pool/K frames; and, for
    # comparison, the K most uncertain of the whole pool (which bunch up in one hard stretch)
    window = len(pool) // args.k
    sets = {f"selected (1 of {window})": selected_by_collector(model, pool_set, out, 1, window, args.when),
            f"selected (top {args.k})": selected_by_collector(model, pool_set, out, args.k, len(pool), args.when)}
    for seed in (int(s) for s in args.seeds.split(",")):
        sets[f"random-{seed}"] = sorted(random.Random(seed).sample(sorted(by_name), args.k))
    sets[f"all-{len(pool)}"] = sorted(by_name)

    rows = {"base": {"frames": 0, "run": str(args.base)}}
    for name, stems in sets.items():
        slug = "".join(c if c.isalnum() or c == "-" else "_" for c in name)
        data = write_set([by_name[s] for s in stems], out / "sets" / slug, "train")
        run = finetune(args.base, data, out / "ft" / slug, args.steps, seed=0)
        rows[name] = {"frames": len(stems), "names": stems, "run": str(run)}
        print(f"fine-tuned {name} ({len(stems)} frames)", flush=True)
    for name, row in rows.items():
        row["eval"] = score(Path(row["run"]), eval_set, "folder", "eval")
        row["val"] = score(Path(row["run"]), args.data, "camvid", "val")["miou"]

    report = {"pool": len(pool), "evaluation": len(evaluation), "k": args.k, "steps": args.steps,
              "when": args.when, "rows": rows, "seconds": round(time.perf_counter() - t0)}
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"json: {args.json}")


def print_table(report: dict) -> None:
    rows = report["rows"]
    rnd = [r for n, r in rows.items() if n.startswith("random-")]
    print(f"\nfine-tuning on frames of drive {DRIVE} ({report['steps']} steps; evaluation: its last "
          f"{report['evaluation']} frames)\n")
    print(f"{'model':<22} {'frames':>6} {'held-out mIoU':>14} {'rare mean':>10} {'val mIoU':>9}")

    def line(name, frames, miou, rare, val):
        print(f"{name:<22} {frames:>6} {miou:>14} {rare:>10} {val:>9}")

    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for name, r in rows.items():
        line(name, r["frames"], fmt(r["eval"]["miou"]), fmt(r["eval"]["rare_mean"]), fmt(r["val"]))
    if rnd:
        m = [r["eval"]["miou"] for r in rnd]
        q = [r["eval"]["rare_mean"] or 0.0 for r in rnd]
        line("random (mean)", rnd[0]["frames"], f"{sum(m) / len(m):.4f}", f"{sum(q) / len(q):.4f}",
             f"{sum(r['val'] for r in rnd) / len(rnd):.4f}")
        line("random (min..max)", "", f"{min(m):.3f}..{max(m):.3f}", f"{min(q):.3f}..{max(q):.3f}", "")


if __name__ == "__main__":
    main()
