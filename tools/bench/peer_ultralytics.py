#!/usr/bin/env python
"""The Ultralytics peer on the yardstick: ``yolo26n-sem`` trained from its yaml (no pretrained
weights, as ours) on the same CamVid frames, scored with edgeseg's metric on the held-out drive.

    make bench-env   # .venv-bench: torch, ultralytics (never in edgeseg's dependencies)
    .venv-bench/bin/python tools/bench/peer_ultralytics.py --data ../shared/data/camvid --out runs/peer-yolo26n \\
        --holdout '0006R0_*' --steps 6000 [--json runs/peer-yolo26n/peer.json]

Same budget as ``tools/train_camvid.sh``: STEPS x batch 8 training images seen (rounded to whole
epochs of the frames left after --holdout), at --imgsz 256 (our --crop-size), Ultralytics' own
recipe otherwise (optimizer, schedule, mosaic, HSV, flips, scale jitter, class weights; it
accumulates gradients to a nominal batch of 64, so it makes an eighth as many optimizer updates
as batches). Its semantic loader scales each frame's short side to --imgsz (256/360 = 0.71 of
CamVid's size) before that jitter, where ours crops 256x256 out of frames at 0.75-1.5x.
The frames are symlinked into OUT/data in Ultralytics' layout (images/, masks/; void 11 -> ignore).
The held-out frames are then segmented at each --score-size (the long side; the predictor
letterboxes and scales the map back to 360x480): first 352, the scale it trained at (short side
~256), then 480, the frames' own; both are scored against the labels with edgeseg.core.metrics,
like `edgeseg evaluate`, and the first is the row's score. The JSON row is what
tools/bench/lever_table.py takes as a ``.json`` argument; ``sec_per_step`` is the training call's wall
time (its dataset scan and final validation included) per batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edgeseg.core import metrics  # noqa: E402  (numpy only: no TensorFlow here)
from edgeseg.core.errors import DataError  # noqa: E402
from edgeseg.core.images import read_label  # noqa: E402
from edgeseg.data import load_split  # noqa: E402  (the frames and what --holdout names, as in edgeseg train)
from edgeseg.data.camvid import VOID_ID  # noqa: E402  (the label files' void id: Ultralytics is told to ignore it)
from lever_table import rare_mean  # noqa: E402  (tools/: the issue's rare-class mean)


def prepare(train, val, root: Path) -> Path:
    """OUT/data/{images,masks}/{train,val}: symlinks to the frames' files (nothing copied)."""
    for split, items in (("train", train.items), ("val", val.items)):
        for kind in ("images", "masks"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        for image, label in items:
            for src, dst in ((image, root / "images" / split / image.name),
                             (label, root / "masks" / split / f"{image.stem}{label.suffix}")):
                if not dst.exists():
                    dst.symlink_to(Path(src).resolve())
    yaml = root / "camvid.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(train.info.class_names))
    yaml.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nmasks_dir: masks\n"
                    f"names:\n{names}\nlabel_mapping:\n  {VOID_ID}: ignore_label\n")
    return yaml


def score(weights: Path, split, imgsz: int) -> dict:
    """``split``'s frames segmented by the peer at long side ``imgsz``, scored like `edgeseg evaluate`."""
    from ultralytics import YOLO

    model = YOLO(str(weights), task="semantic")  # a fresh predictor per size
    names = split.info.class_names
    cm = np.zeros((len(names), len(names)), np.int64)
    for image, label_path in split.items:
        result = model.predict(str(image), imgsz=imgsz, device="cpu", verbose=False)[0]
        pred = result.semantic_mask.data.cpu().numpy()  # (H, W) class ids at the frame's size
        cm += metrics.confusion_matrix(read_label(label_path, split.info.label_map)[0], pred, len(names))
    return metrics.summarize(cm, names)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--holdout", default="0006R0_*")
    ap.add_argument("--steps", type=int, default=6000, help="steps of --batch images (ours: 6000 of 8)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=256, help="training crop (ours: 256x256)")
    ap.add_argument("--score-size", default="352,480", help="long sides to segment the held-out frames at; the first is the row's score")
    ap.add_argument("--model", default="yolo26n-sem.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if not (args.data / "train" / "images").is_dir():
        sys.exit(f"{args.data}: not a CamVid folder (no train/images)")
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out}: exists and is not empty; pick another --out")

    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    try:
        train, held = load_split(args.data, "camvid", "train").partition(args.holdout)
        val = load_split(args.data, "camvid", "val")
    except DataError as e:
        sys.exit(f"{args.data}: {e}")
    yaml = prepare(train, val, args.out / "data")
    n = len(train.items)
    epochs = max(1, round(args.steps * args.batch / n))
    steps = epochs * math.ceil(n / args.batch)
    print(f"{args.model}: {n} frames, {epochs} epochs = {steps} steps of {args.batch} "
          f"(~{epochs * n} images; ours: {args.steps * args.batch}); {len(held.items)} held-out frames")
    model = YOLO(args.model, task="semantic")
    start = time.perf_counter()
    model.train(data=str(yaml), epochs=epochs, imgsz=args.imgsz, batch=args.batch, device="cpu",
                workers=args.threads, pretrained=False, val=False, plots=False, amp=False, seed=args.seed,
                project=str(args.out.resolve()), name="train", exist_ok=False, verbose=False)
    wall = time.perf_counter() - start
    last = args.out / "train" / "weights" / "last.pt"  # its EMA weights at the end, as ours ship last
    sizes = [int(s) for s in args.score_size.split(",")]
    held_scores = {s: score(last, held, s) for s in sizes}
    val_score = score(last, val, sizes[0])
    for s, h in held_scores.items():
        print(f"held-out ({args.holdout}) at long side {s}: mIoU {h['miou']:.4f}, "
              f"rare-class mean {rare_mean(h['per_class_iou']):.4f}")
    print(f"val at long side {sizes[0]}: mIoU {val_score['miou']:.4f}; {wall / steps:.2f} s/batch, {wall / 60:.1f} min")
    head = held_scores[sizes[0]]
    row = {"run": str(args.out), "label": f"Ultralytics {Path(args.model).stem} (its recipe, from scratch)",
           "holdout": args.holdout, "steps": steps, "seed": args.seed, "heldout_miou": head["miou"],
           "heldout_rare_mean": rare_mean(head["per_class_iou"]), "heldout_per_class": head["per_class_iou"],
           "val_miou": val_score["miou"], "sec_per_step": wall / steps, "score_sizes": {
               str(s): {"miou": h["miou"], "rare_mean": rare_mean(h["per_class_iou"]),
                        "per_class_iou": h["per_class_iou"]} for s, h in held_scores.items()},
           "images_seen": epochs * n, "imgsz": args.imgsz, "batch": args.batch}
    out = args.json or args.out / "peer.json"
    out.write_text(json.dumps(row, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
