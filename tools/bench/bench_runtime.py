#!/usr/bin/env python
"""Runtime benchmark on real frames, in one run:

- pure inference FPS of a model (``invoke()`` only) on frames of a video made from CamVid val;
- end-to-end FPS of the `edgeseg run` loop on that video (decode + letterbox + inference +
  upsample/argmax + overlay, headless) and its ratio to the pure-inference FPS, for the
  pipelined loop (default), the sequential one, and ``--upsample fast``;
- the same at camera frame sizes larger than the model (640x480, 1280x720, 1920x1080), with
  ``--upsample auto`` (labels at the size the model saw, nearest to the frame): frames already
  decoded, as a camera delivers them, headless and with the overlay drawn; from an mp4 (the
  decoder's cost included); and with ``--upsample exact``;
- the cost of ``--collect`` (frames worth labelling kept in a folder): the run loop with the
  default policy (each frame scored, the most uncertain of each 300 kept) and with every frame
  written (``every:1``, the worst case), as a ratio to the same loop without it;
- import time and peak resident memory of the TF-free runtime versus ``import tensorflow``
  (each in a fresh interpreter).

    .venv/bin/python tools/bench/bench_runtime.py MODEL.tflite [--data ../shared/data/camvid] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

IMPORT_PROBE = """
import time
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
# VmHWM, not ru_maxrss: ru_maxrss survives exec and counts the forking parent's pages
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(dt, int(hwm.split()[1]) / 1024)
"""


def import_cost(stmt: str, python: str = sys.executable, repeats: int = 3) -> dict:
    times, rss = [], []
    for _ in range(repeats):
        out = subprocess.run([python, "-c", IMPORT_PROBE.format(stmt=stmt)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1]}
        t, r = out.stdout.split()[-2:]
        times.append(float(t))
        rss.append(float(r))
    return {"seconds": float(np.median(times)), "peak_rss_mb": float(np.median(rss))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/camvid")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=101)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each variant (best kept)")
    ap.add_argument("--frame-sizes", default="640x480,1280x720,1920x1080",
                    help="camera frame sizes WxH to measure too ('' to skip)")
    ap.add_argument("--large-frames", type=int, default=60, help="frames per large-frame clip")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import cv2

    from edgeseg.runtime.run.collect_options import CollectPolicy, CollectTarget
    from edgeseg.runtime.run.loop import RunOptions, run_stream
    from edgeseg.runtime.model.segmenter import Segmenter
    from edgeseg.runtime.sources.frame import Frame
    from edgeseg.runtime.sources.files import video_frames

    images = sorted((args.data / "val" / "images").glob("*.jpg"))[: args.frames]
    tmp = Path(tempfile.mkdtemp())
    video = tmp / "camvid_val.mp4"
    first = cv2.imread(str(images[0]))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, first.shape[1::-1])
    for p in images:
        writer.write(cv2.imread(str(p)))
    writer.release()

    seg = Segmenter(args.model, threads=args.threads)
    frames = [f.image for f in video_frames(str(video))]
    for f in frames[:3]:
        seg.predict(f)

    def pure(segmenter=seg, clip=frames) -> float:
        invoke_ms = []
        for f in clip:
            x, _ = segmenter._prepare(f)
            t = time.perf_counter()
            segmenter.backend.run(x)
            invoke_ms.append(1000 * (time.perf_counter() - t))
        return 1000 / float(np.mean(invoke_ms))

    def run(segmenter, pipeline=True, clip=video, collect=None):
        target = None
        if collect is not None:
            target = CollectTarget(Path(tempfile.mkdtemp(dir=tmp)) / "collect", collect)
        return run_stream(segmenter, video_frames(str(clip)),
                          RunOptions(draw=True, status_every=1e9, echo=lambda *_: None, pipeline=pipeline,
                                     collect=target))

    fast = Segmenter(args.model, threads=args.threads, upsample="fast")
    # interleaved rounds, the best of each: machine noise only ever slows a run down
    runs = {"exact": [], "sequential": [], "fast": [], "collect": [], "collect_every": []}
    pure_runs = []
    for _ in range(args.rounds):
        pure_runs.append(pure())
        runs["exact"].append(run(seg))
        runs["collect"].append(run(seg, collect=CollectPolicy()))
        runs["collect_every"].append(run(seg, collect=CollectPolicy(when="every", every=1, gap=0, dedup=0, max_frames=10**6)))
        runs["sequential"].append(run(seg, pipeline=False))
        runs["fast"].append(run(fast))
    best = {k: max(v, key=lambda r: r["fps"]) for k, v in runs.items()}
    summary, fast_summary = best["exact"], best["fast"]
    pure_fps = max(pure_runs)
    e2e_fps = summary["fps"]
    agree = float(np.mean([np.mean(seg.predict(f) == fast.predict(f)) for f in frames[:10]]))

    large = {}
    if args.frame_sizes:
        exact = Segmenter(args.model, threads=args.threads, upsample="exact")
        for size in args.frame_sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            clip = tmp / f"camvid_val_{w}x{h}.mp4"
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
            for p in images[: args.large_frames]:
                writer.write(cv2.resize(cv2.imread(str(p)), (w, h), interpolation=cv2.INTER_LINEAR))
            writer.release()
            clip_frames = [f.image for f in video_frames(str(clip))]

            def raw(clip=clip_frames):  # frames as a camera delivers them: already decoded
                for i, image in enumerate(clip):
                    yield Frame(image, f"f{i}", i, time.perf_counter())

            def frames_run(segmenter, draw=True):
                return run_stream(segmenter, raw(), RunOptions(draw=draw, status_every=1e9,
                                                               echo=lambda *_: None))["fps"]

            result = {"pure": [], "headless": [], "overlay": [], "mp4": [], "exact": []}
            for _ in range(args.rounds):
                result["pure"].append(pure(seg, clip_frames))
                result["headless"].append(frames_run(seg, draw=False))
                result["overlay"].append(frames_run(seg))
                result["mp4"].append(run(seg, clip=clip)["fps"])
                result["exact"].append(frames_run(exact))
            top = {k: max(v) for k, v in result.items()}
            large[size] = {f"{k}_fps": v for k, v in top.items()}
            large[size].update({f"{k}_ratio": v / top["pure"] for k, v in top.items() if k != "pure"})
            print(f"measured {size}", file=sys.stderr, flush=True)

    runtime = import_cost("import edgeseg.runtime.run.loop, edgeseg.runtime.model.segmenter, cv2, numpy")
    tf = import_cost("import tensorflow")
    print(f"\n{args.model.name}: {len(frames)} CamVid val frames {first.shape[0]}x{first.shape[1]}, "
          f"input {seg.input_size[0]}x{seg.input_size[1]}, {args.threads} threads\n")
    print(f"{'measure':<44} {'value':>10}")
    print(f"{'pure inference FPS (invoke only)':<44} {pure_fps:>10.1f}")
    print(f"{'end-to-end FPS (run loop on the mp4, overlay)':<44} {e2e_fps:>10.1f}")
    print(f"{'end-to-end / pure inference':<44} {e2e_fps / pure_fps:>10.2f}")
    for stage, v in summary["stages"].items():
        print(f"{'  ' + stage + ' p50 ms':<44} {v['p50_ms']:>10.1f}")
    seq = best["sequential"]["fps"]
    print(f"{'end-to-end FPS, sequential loop (no threads)':<44} {seq:>10.1f}")
    print(f"{'  sequential / pure inference':<44} {seq / pure_fps:>10.2f}")
    print(f"{'end-to-end FPS, --upsample fast':<44} {fast_summary['fps']:>10.1f}")
    print(f"{'  fast / pure inference':<44} {fast_summary['fps'] / pure_fps:>10.2f}")
    print(f"{'  postprocess p50 ms (fast)':<44} {fast_summary['stages']['postprocess']['p50_ms']:>10.1f}")
    print(f"{'  pixels equal to exact upsampling':<44} {100 * agree:>9.1f}%")
    for key, what in (("collect", "--collect (default: top 1 of 300)"), ("collect_every", "--collect every:1 (every frame written)")):
        r = best[key]
        print(f"{'end-to-end FPS, ' + what:<44} {r['fps']:>10.1f}")
        print(f"{'  with / without --collect':<44} {r['fps'] / e2e_fps:>10.2f}  ({r['collect']['saved']} frames kept)")
    print(f"{'import runtime: seconds / peak RSS MB':<44} {runtime.get('seconds', float('nan')):>6.2f} / {runtime.get('peak_rss_mb', float('nan')):.0f}")
    print(f"{'import tensorflow: seconds / peak RSS MB':<44} {tf.get('seconds', float('nan')):>6.2f} / {tf.get('peak_rss_mb', float('nan')):.0f}")
    if large:
        print(f"\nframes larger than the model ({args.large_frames} CamVid val frames resized; FPS, and in "
              "brackets the ratio to pure inference)\n")
        print("| frame | pure inference | run, headless (no overlay) | run, overlay drawn | "
              "run, overlay, from an mp4 (decoding included) | run, overlay, --upsample exact |")
        print("|---|---:|---:|---:|---:|---:|")
        for size, r in large.items():
            cells = " | ".join(f"{r[k + '_fps']:.1f} ({r[k + '_ratio']:.2f})" for k in ("headless", "overlay", "mp4", "exact"))
            print(f"| {size} | {r['pure_fps']:.1f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "pure_fps": pure_fps, "e2e_fps": e2e_fps, "frame_sizes": large,
                                         "ratio": e2e_fps / pure_fps, "stages": summary["stages"],
                                         "sequential_fps": seq, "fast_fps": fast_summary["fps"], "fast_ratio": fast_summary["fps"] / pure_fps,
                                         "fast_pixel_agreement": agree,
                                         "collect_fps": best["collect"]["fps"], "collect_ratio": best["collect"]["fps"] / e2e_fps,
                                         "collect_every_fps": best["collect_every"]["fps"],
                                         "collect_every_ratio": best["collect_every"]["fps"] / e2e_fps,
                                         "import_runtime": runtime, "import_tensorflow": tf}, indent=2))


if __name__ == "__main__":
    main()
