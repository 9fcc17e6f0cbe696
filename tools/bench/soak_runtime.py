#!/usr/bin/env python
"""Soak test of the device runtime: `edgeseg run` on a looping source for many frames, with
its resident memory and thread count read from /proc at the start and at the end.

    .venv/bin/python tools/bench/soak_runtime.py                      # 20,000 frames of the test clip
    .venv/bin/python tools/bench/soak_runtime.py MODEL.tflite --source clip.mp4 --frames 50000 --json soak.json

Target: RSS growth <= 10 MB and the same number of threads at the end as at the start. The
"start" sample is taken after --warmup seconds (interpreter, OpenCV and thread pools set up).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def proc_status(pid: int) -> dict | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path, default=REPO / "build/test-models/tiny_int8.tflite")
    parser.add_argument("--source", type=Path, default=None, help="default: clip.mp4 beside the model")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the start sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--edgeseg", default=str(Path(sys.executable).with_name("edgeseg")))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    source = args.source or args.model.with_name("clip.mp4")
    if not args.model.is_file() or not source.is_file():
        sys.exit(f"need {args.model} and {source}: run tools/maintenance/make_test_models.py (make test builds them)")

    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        masks = Path(tmp) / "masks"
        cmd = [args.edgeseg, "run", str(args.model), "--source", str(source), "--loop", "--max-frames",
               str(args.frames), "--threads", str(args.threads), "--stats-json", str(stats), "--save-masks", str(masks)]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        start = last = None
        while proc.poll() is None:
            sample = proc_status(proc.pid)
            if sample:
                last = sample
                if start is None and time.monotonic() - t0 >= args.warmup:
                    start = sample
            time.sleep(0.25)
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"edgeseg run failed ({proc.returncode}):\n{err[-3000:]}")
        summary = json.loads(stats.read_text())
    start = start or last
    result = {
        "frames": summary["frames"], "seconds": round(summary["seconds"], 1), "fps": round(summary["fps"], 1),
        "rss_start_mb": round(start["rss_mb"], 1), "rss_end_mb": round(last["rss_mb"], 1),
        "rss_growth_mb": round(last["rss_mb"] - start["rss_mb"], 1),
        "threads_start": start["threads"], "threads_end": last["threads"],
        "model": str(args.model), "source": str(source), "loop": True,
    }
    ok = result["rss_growth_mb"] <= 10 and result["threads_end"] == result["threads_start"]
    print(f"{'frames':>8} {'seconds':>8} {'FPS':>7} {'RSS start':>10} {'RSS end':>8} {'growth':>7} {'threads':>8}")
    print(f"{result['frames']:>8} {result['seconds']:>8} {result['fps']:>7} {result['rss_start_mb']:>8} MB "
          f"{result['rss_end_mb']:>5} MB {result['rss_growth_mb']:>4} MB {result['threads_start']:>3} -> {result['threads_end']}")
    print(f"target (growth <= 10 MB, threads constant): {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({**result, "target_met": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
