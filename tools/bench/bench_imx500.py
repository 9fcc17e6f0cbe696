#!/usr/bin/env python
"""IMX500 (Raspberry Pi AI Camera) benchmark: real-size DeepLabv3+ models through Sony's toolchain
(``make imx500-env``), one row per run: the limits' verdict, the float and MCT-quantized mIoU on
val and the drop, the memory report's figures, ``packerOut.zip``'s size and the MCT and
converter times.

    .venv/bin/python tools/bench/bench_imx500.py runs/camvid-imx500 [RUN ...] [--calib-size 200] [--json out.json]

With ``--smoke DATA`` it first makes a preset run of each ``--preset`` on DATA trained for
``--smoke-steps`` steps (the architecture is what the sensor's memory depends on, so a few steps
answer "does it convert, how much memory, how long"; the mIoU of such a run means nothing).
Conversion takes minutes per model and ~3 GB of Java heap: not for the default test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def smoke_run(preset: str, data: Path, steps: int, out: Path) -> Path:
    run = out / f"smoke-{preset}"
    if (run / "summary.json").is_file():
        return run
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "train", "--preset", preset, "--data", str(data),
           "--run-dir", str(run), "--epochs", "1", "--steps-per-epoch", str(steps), "--batch-size", "2",
           "--no-photometric"]
    subprocess.run(cmd, check=True, cwd=REPO)
    return run


def export_row(run: Path, calib_size: int) -> dict:
    out = run / "export" / "imx500"
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "export", str(run), "--target", "imx500", "--force",
           "--calib-size", str(calib_size)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("edgeseg: error:")]
        return {"run": str(run), "ok": False, "error": said[-1] if said else done.stderr[-500:],
                "seconds": round(seconds, 1)}
    report = json.loads((out / "export.json").read_text())
    drop = report.get("parity", {}).get("imx500", {})
    memory = report.get("memory", {})
    return {"run": str(run), "ok": True, "verdict": report["verdict"]["status"], "input": report["input_size"],
            "miou_float": drop.get("miou_float"), "miou_int8": drop.get("miou_quantized"),
            "drop_points": drop.get("drop_points"), "val_frames": drop.get("frames"),
            "memory_usage": memory.get("Memory Usage"), "utilization": memory.get("Memory Utilization"),
            "fit_in_chip": memory.get("Fit In Chip"),
            "packer_mb": Path(report["files"]["packer"]).stat().st_size / 1e6,
            "mct_s": report["mct"]["seconds"], "converter_s": report["converter"]["seconds"],
            "seconds": round(seconds, 1)}


def print_rows(rows: list) -> None:
    print(f"{'run':<28} {'input':>8} {'float':>7} {'int8':>7} {'drop':>6} {'memory':>10} {'util':>5} "
          f"{'packer MB':>9} {'MCT s':>6} {'conv s':>7}")
    for r in rows:
        name = Path(r["run"]).name[:28]
        if not r["ok"]:
            print(f"{name:<28} FAILED after {r['seconds']:.0f}s: {r['error']}")
            continue
        f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        print(f"{name:<28} {'x'.join(map(str, r['input'])):>8} {f(r['miou_float'], '.4f'):>7} "
              f"{f(r['miou_int8'], '.4f'):>7} {f(r['drop_points'], '.2f'):>6} {r['memory_usage'] or '-':>10} "
              f"{r['utilization'] or '-':>5} {r['packer_mb']:>9.2f} {r['mct_s']:>6.0f} {r['converter_s']:>7.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--smoke", type=Path, help="dataset for quickly trained preset runs")
    ap.add_argument("--preset", action="append", help="presets for --smoke (default: imx500)")
    ap.add_argument("--smoke-steps", type=int, default=5)
    ap.add_argument("--smoke-dir", type=Path, default=REPO / "runs" / "bench-imx500")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = list(args.runs)
    if args.smoke:
        runs += [smoke_run(p, args.smoke, args.smoke_steps, args.smoke_dir) for p in (args.preset or ["imx500"])]
    if not runs:
        ap.error("give runs, or --smoke DATA")
    rows = [export_row(run, args.calib_size) for run in runs]
    print_rows(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
