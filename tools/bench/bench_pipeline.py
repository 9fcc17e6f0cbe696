#!/usr/bin/env python
"""Input-pipeline throughput on real data, side by side in one run:

- ``tf.data``: edgeseg's training pipeline (parallel decode, cache, augment, batch, prefetch);
- ``python``: a plain sequential loader (OpenCV decode + the same augmentation in numpy);
- ``train step``: images/s that one float training step of the model consumes.

The pipeline keeps training fed when its images/s exceed the step's. Usage:

    .venv/bin/python tools/bench/bench_pipeline.py --data ../shared/data/camvid [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def python_loader(split, crop, scale_range, n_images, rng):
    """Sequential decode + DeepLab augmentation, one frame at a time."""
    import cv2

    from edgeseg.core.images import read_image, read_label

    ch, cw = crop
    done = 0
    while done < n_images:
        for image_path, label_path in split.items:
            image = read_image(image_path)
            label, _ = read_label(label_path, split.info.label_map)
            s = rng.uniform(*scale_range)
            size = (int(round(image.shape[1] * s)), int(round(image.shape[0] * s)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
            label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
            ph, pw = max(ch - image.shape[0], 0), max(cw - image.shape[1], 0)
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=127.5)
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=255)
            y = rng.integers(0, image.shape[0] - ch + 1)
            x = rng.integers(0, image.shape[1] - cw + 1)
            image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
            if rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
            done += 1
            if done >= n_images:
                break


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/camvid"))
    ap.add_argument("--format", default="camvid")
    ap.add_argument("--crop", default="256x256")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--images", type=int, default=400, help="images timed per loader")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--head", default="separable")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from edgeseg._tf import keras, tf
    from edgeseg.core.geometry import parse_size
    from edgeseg.data.augment import Augment
    from edgeseg.data.pipeline import build_train_dataset, load_source
    from edgeseg.losses import SegmentationLoss
    from edgeseg.config import ModelConfig
    from edgeseg.models import build_deeplabv3plus

    crop = parse_size(args.crop, "--crop")
    split = load_source(args.data, args.format, "train")
    aug = Augment(crop, scale_range=(0.5, 2.0))
    rows = []

    ds = build_train_dataset(split, args.batch_size, aug, cache=True)
    it = iter(ds)
    for _ in range(-(-len(split.items) // args.batch_size) + 2):  # first pass fills the cache
        next(it)
    n_batches = max(1, args.images // args.batch_size)
    t = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    rows.append(("tf.data (cached, parallel)", n_batches * args.batch_size / (time.perf_counter() - t)))

    ds_nc = build_train_dataset(split, args.batch_size, aug, cache=False)
    it = iter(ds_nc)
    next(it)
    t = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    rows.append(("tf.data (no cache: decode every frame)", n_batches * args.batch_size / (time.perf_counter() - t)))

    rng = np.random.default_rng(0)
    n_py = max(args.images // 4, 20)
    t = time.perf_counter()
    python_loader(split, crop, (0.5, 2.0), n_py, rng)
    rows.append(("sequential Python loader", n_py / (time.perf_counter() - t)))

    model = build_deeplabv3plus(ModelConfig(alpha=args.alpha, head=args.head), split.info.num_classes, crop)
    model.compile(keras.optimizers.AdamW(1e-3), SegmentationLoss(split.info.num_classes, dice_weight=0.5))
    x = tf.random.uniform((args.batch_size, *crop, 3), 0, 255)
    y = tf.random.uniform((args.batch_size, *crop), 0, split.info.num_classes, tf.int32)
    batch = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(batch, steps_per_epoch=2, epochs=1, verbose=0)
    steps = 6
    t = time.perf_counter()
    model.fit(batch, steps_per_epoch=steps, epochs=1, verbose=0)
    step_rate = steps * args.batch_size / (time.perf_counter() - t)
    rows.append((f"train step (MobileNetV2 a{args.alpha} {args.head}, batch {args.batch_size})", step_rate))

    pipeline = rows[0][1]
    print(f"\ninput pipeline on {args.data} ({len(split.items)} frames), crops {crop[0]}x{crop[1]}\n")
    print(f"{'loader':<52} {'images/s':>10} {'vs python':>10}")
    for name, rate in rows:
        print(f"{name:<52} {rate:>10.1f} {rate / rows[2][1]:>9.1f}x")
    print(f"\npipeline / train-step throughput: {pipeline / step_rate:.1f}x "
          f"({'keeps' if pipeline > step_rate else 'does NOT keep'} the step fed)")
    print(f"uncached pipeline / train step: {rows[1][1] / step_rate:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": [{"loader": n, "images_per_s": r} for n, r in rows],
            "pipeline_over_step": pipeline / step_rate,
        }, indent=2))


if __name__ == "__main__":
    main()
