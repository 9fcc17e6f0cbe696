#!/usr/bin/env python
"""How much a model's predictions move when the pixels change the way cameras and decoders
change them, through the device runtime: pixel agreement between the prediction on each val
frame and on the same frame

- re-encoded as JPEG at quality 75,
- with Gaussian noise of sigma 2 grey levels,
- decoded by TensorFlow's default fast IDCT instead of OpenCV's accurate one (the frames are
  JPEG files),
- one grey level brighter.

    .venv/bin/python tools/bench/bench_robustness.py MODEL_fp32.tflite [MODEL2.tflite ...] \\
        --data ../shared/data/camvid [--split val] [--json out.json]

Several models are measured in the same run, one row each (e.g. before and after a recipe change).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def perturbations(path: Path, frame: np.ndarray, rng) -> dict:
    import cv2

    from edgeseg._tf import tf

    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])
    reencoded = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    noisy = np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
    fast_idct = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3).numpy()
    brighter = np.clip(frame.astype(np.int16) + 1, 0, 255).astype(np.uint8)
    return {"jpeg_q75": reencoded, "noise_sigma2": noisy, "tf_fast_idct": fast_idct, "plus_one_grey": brighter}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid"))
    ap.add_argument("--format", default=None)
    ap.add_argument("--split", default="val")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from edgeseg.core.images import read_image
    from edgeseg.data import load_split, resolve_format
    from edgeseg.runtime.model.segmenter import Segmenter

    split = load_split(args.data, resolve_format(args.data, args.format), args.split)
    rows = []
    for model in args.models:
        seg = Segmenter(model, threads=args.threads, upsample="exact")
        rng = np.random.default_rng(0)
        agreement: dict[str, list] = {}
        for image_path, _ in split.items:
            frame = read_image(image_path)
            reference = seg.predict(frame)
            for name, changed in perturbations(image_path, frame, rng).items():
                agreement.setdefault(name, []).append(float(np.mean(seg.predict(changed) == reference)))
        row = {"model": str(model), "frames": len(split.items)}
        row.update({name: {"mean": float(np.mean(v)), "min": float(np.min(v))} for name, v in agreement.items()})
        rows.append(row)
        print(f"measured {model}", file=sys.stderr, flush=True)
    names = [k for k in rows[0] if k not in ("model", "frames")]
    print(f"\nprediction agreement with the unchanged frame, {args.split} ({rows[0]['frames']} frames), mean (worst frame)\n")
    print(f"| model | {' | '.join(names)} |\n|---|" + "---:|" * len(names))
    for row in rows:
        cells = " | ".join(f"{100 * row[n]['mean']:.2f}% ({100 * row[n]['min']:.1f}%)" for n in names)
        print(f"| {Path(row['model']).name} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
