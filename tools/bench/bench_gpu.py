#!/usr/bin/env python3
"""Which of our files LiteRT's GPU accelerator runs well: masks on the GPU against the CPU's, on
real frames, for each exported .tflite, with the GPU computing in fp16 (its default) and in fp32
(``enforce_f32``). Runs in tests/boards/prove_gpu.py's Debian trixie root on Mesa's software Vulkan
(llvmpipe), so the numbers say what the accelerator computes, not how fast: speed is measured on
the board (`edgeseg benchmark --delegate gpu`).

    .venv-runtime/bin/python tools/bench/bench_gpu.py runs/NAME/export --frames ../shared/data/camvid/val/images \\
        [--count 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "boards"))

from prove_gpu import Root, device_install, rootfs  # noqa: E402

INSIDE = """
import json, sys
from pathlib import Path
import cv2, numpy as np
from edgeseg.runtime.model.backend import GpuAccelerator
from edgeseg.runtime.model.litert_gpu import LiteRTGpuBackend
from edgeseg.runtime.model.segmenter import Segmenter
frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(Path(sys.argv[1]).glob("*"))]
rows = []
for model in sys.argv[2:]:
    cpu = Segmenter(model, threads=2)
    reference = [cpu.infer(f) for f in frames]
    ref_labels = [cpu.finish(p) for p in reference]
    ref_logits = [cpu.dequantize(p.output) for p in reference]
    for mode in ("fp16", "fp32"):
        gpu = Segmenter(model, threads=2, delegates=[GpuAccelerator(strict=True)])
        if mode == "fp32":
            gpu.backend = LiteRTGpuBackend(model, 2, enforce_f32=True)
        pending = [gpu.infer(f) for f in frames]
        same = [float(np.mean(gpu.finish(p) == r)) for p, r in zip(pending, ref_labels)]
        diff = max(float(np.abs(gpu.dequantize(p.output) - r).max()) for p, r in zip(pending, ref_logits))
        span = max(float(np.ptp(r)) for r in ref_logits)
        rows.append({"model": Path(model).name, "precision": cpu.meta.precision, "gpu_compute": mode,
                     "backend": gpu.backend.description, "fully_accelerated": gpu.backend.fully_accelerated,
                     "frames": len(frames), "pixel_agreement_mean": float(np.mean(same)),
                     "pixel_agreement_min": float(np.min(same)), "max_logit_diff": diff, "logit_range": span})
print("ROWS" + json.dumps(rows))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="an export folder (its .tflite files are measured)")
    parser.add_argument("--frames", type=Path, required=True, help="folder of frames (e.g. CamVid val images)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = sorted(args.export.glob("*.tflite"))
    frames = sorted(p for p in args.frames.iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.count]
    if not models or not frames:
        sys.exit(f"no .tflite files in {args.export} or no frames in {args.frames}")
    root_path = rootfs()
    with tempfile.TemporaryDirectory() as tmp:
        root = Root(root_path, device_install(root_path, Path(tmp)))
    work = root_path / "tmp/edgeseg-bench-gpu"
    shutil.rmtree(work, ignore_errors=True)
    (work / "frames").mkdir(parents=True)
    try:
        for f in frames:  # copied into the root for the run and removed after it
            shutil.copy(f, work / "frames" / f.name)
        for m in models:
            shutil.copy(m, work / m.name)
        (work / "bench.py").write_text(INSIDE)
        inside = "/tmp/edgeseg-bench-gpu"
        import subprocess

        argv = ["unshare", "--mount", "--fork", "sh", "-c",
                f'mount -t proc proc "{root_path}/proc" && exec chroot "{root_path}" env -i PYTHONPATH={root.site} '
                f'PATH=/usr/bin:/bin HOME=/root XDG_RUNTIME_DIR=/tmp python3 {inside}/bench.py {inside}/frames '
                + " ".join(f"{inside}/{m.name}" for m in models)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("ROWS")), None)
        if done.returncode != 0 or line is None:
            sys.exit(f"the benchmark failed in the root:\n{done.stderr[-3000:]}")
        rows = json.loads(line[4:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"GPU vs CPU masks on {len(frames)} frames of {args.frames} (LiteRT GPU accelerator, Mesa llvmpipe Vulkan)")
    print(f"{'model':<28} {'file':<9} {'GPU math':<9} {'whole graph':<12} {'pixels = CPU':>13} {'worst frame':>12} "
          f"{'max |logit diff|':>17}")
    for r in rows:
        print(f"{r['model'][:28]:<28} {r['precision']:<9} {r['gpu_compute']:<9} {str(r['fully_accelerated']):<12} "
              f"{100 * r['pixel_agreement_mean']:>12.2f}% {100 * r['pixel_agreement_min']:>11.2f}% "
              f"{r['max_logit_diff']:>9.3f} of {r['logit_range']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
