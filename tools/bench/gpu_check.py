#!/usr/bin/env python
"""What edgeseg does on a GPU, measured in one run (tools/bench/gpu_check.sh sets up the environment):

(a) training: MobileNetV2 DeepLabv3+ on CamVid, 512x512 crops, fp32 vs --mixed-precision vs
    --mixed-precision --xla: sec/step and images/s (needs TensorFlow with CUDA);
(b) inference of the exported ONNX model at 368x480 and 1024x2048: latency through ONNX Runtime's
    TensorRT (fp32 and fp16) and CUDA providers, and fp32/int8 on the CPU for reference, with the
    mIoU of each on CamVid val where the data is there. Where ONNX Runtime has no GPU provider
    but PyTorch has CUDA, the ONNX graph runs through onnx2torch on the GPU instead (fp32, fp16).

Every part that cannot run says why (no TensorFlow GPU, no provider, no data) and the rest goes
on. Prints a table; --json writes it.

    python tools/bench/gpu_check.py --onnx runs/camvid/export/camvid_fp32.onnx [--onnx-large M_1024x2048.onnx]
        [--run runs/camvid] [--data ../shared/data/camvid] [--steps 300] [--json gpu.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from timing import timeit  # noqa: E402 - tools/bench/timing.py, beside this script


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "no nvidia-smi output"
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def train_rows(data: Path, steps: int) -> list[dict]:
    """sec/step of fp32, mixed precision, mixed precision + XLA training in fresh processes."""
    try:
        import tensorflow as tf  # noqa: F401

        if not tf.config.list_physical_devices("GPU"):
            return [{"part": "training", "skipped": "TensorFlow sees no GPU (pip install 'tensorflow[and-cuda]')"}]
    except ImportError:
        return [{"part": "training", "skipped": "TensorFlow is not installed here"}]
    if not (data / "train").is_dir():
        return [{"part": "training", "skipped": f"no CamVid at {data}"}]
    rows = []
    for name, flags in (("fp32", []), ("mixed", ["--mixed-precision"]), ("mixed+xla", ["--mixed-precision", "--xla"])):
        run = Path(f"/tmp/gpu_check_{name.replace('+', '_')}")
        subprocess.run(["rm", "-rf", str(run)])
        cmd = [sys.executable, "-m", "edgeseg.cli.main", "train", "--data", str(data), "--run-dir", str(run),
               "--crop-size", "512x512", "--batch-size", "16", "--epochs", "1", "--steps-per-epoch", str(steps),
               "--eval-size", "368x480", "--val-every", "1", *flags]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            rows.append({"part": "training", "variant": name, "skipped": result.stderr.strip().splitlines()[-1:]})
            continue
        summary = json.loads((run / "summary.json").read_text())
        rows.append({"part": "training", "variant": name, "sec_per_step": summary["sec_per_step"],
                     "images_per_s": 16 / summary["sec_per_step"]})
    return rows


def time_it(fn) -> float:
    """Median milliseconds of 30 calls after 5 warm-up ones."""
    return timeit(fn, 30, warmup=5)["median_ms"]


def ort_rows(path: Path, size_label: str) -> list[dict]:
    try:
        import onnxruntime as ort
    except ImportError:
        return [{"part": "onnx", "size": size_label, "skipped": "onnxruntime is not installed"}]
    available = ort.get_available_providers()
    rows = []
    variants = [("TensorRT fp32", "TensorrtExecutionProvider", {"trt_fp16_enable": "False"}),
                ("TensorRT fp16", "TensorrtExecutionProvider", {"trt_fp16_enable": "True"}),
                ("CUDA fp32", "CUDAExecutionProvider", {}), ("CPU fp32", "CPUExecutionProvider", {})]
    for name, provider, options in variants:
        if provider not in available:
            rows.append({"part": "onnx", "size": size_label, "variant": name, "skipped": f"no {provider}"})
            continue
        if provider == "TensorrtExecutionProvider":
            options = {**options, "trt_engine_cache_enable": "True", "trt_engine_cache_path": "/tmp/edgeseg_trt"}
        session = ort.InferenceSession(str(path), providers=[(provider, options)])
        inp = session.get_inputs()[0]
        x = np.random.default_rng(0).uniform(0, 255, [int(v) for v in inp.shape]).astype(np.float32)
        ms = time_it(lambda: session.run(None, {inp.name: x}))
        rows.append({"part": "onnx", "size": size_label, "variant": name, "median_ms": ms})
    return rows


def torch_rows(path: Path, size_label: str) -> list[dict]:
    """The ONNX graph on PyTorch CUDA (onnx2torch), fp32 and fp16, checked against ONNX Runtime CPU."""
    try:
        import onnx
        import onnx2torch
        import torch
    except ImportError as e:
        return [{"part": "onnx->torch", "size": size_label, "skipped": f"{e.name} is not installed"}]
    if not torch.cuda.is_available():
        return [{"part": "onnx->torch", "size": size_label, "skipped": "PyTorch sees no CUDA device"}]
    model = onnx2torch.convert(onnx.load(str(path))).eval().cuda()
    shape = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)).cuda()
    rows = []
    with torch.inference_mode():
        reference = model(x).float().cpu().numpy()
        try:
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            cpu = session.run(None, {session.get_inputs()[0].name: x.cpu().numpy()})[0]
        except ImportError:
            cpu = None
        for name, fn in (("torch CUDA fp32", lambda: model(x)),):
            ms = time_it(lambda: (fn(), torch.cuda.synchronize()))
            row = {"part": "onnx->torch", "size": size_label, "variant": name, "median_ms": ms}
            if cpu is not None:
                row["argmax_agreement_vs_ort_cpu"] = float((reference.argmax(-1) == cpu.argmax(-1)).mean())
            rows.append(row)
        half = model.half()
        xh = x.half()
        ms = time_it(lambda: (half(xh), torch.cuda.synchronize()))
        out = half(xh).float().cpu().numpy()
        rows.append({"part": "onnx->torch", "size": size_label, "variant": "torch CUDA fp16", "median_ms": ms,
                     "argmax_agreement_vs_fp32": float((out.argmax(-1) == reference.argmax(-1)).mean())})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, required=True, help="fp32 ONNX model at the evaluation size")
    ap.add_argument("--onnx-large", type=Path, help="the same model exported at 1024x2048")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    print(f"GPU: {gpu_name()}", flush=True)
    rows = [] if args.skip_training else train_rows(args.data, args.steps)
    for path, label in ((args.onnx, "eval size"), (args.onnx_large, "1024x2048")):
        if path is None:
            continue
        rows += ort_rows(path, label)
        rows += torch_rows(path, label)
    print("\n| part | size | variant | median ms | notes |\n|---|---|---|---:|---|")
    for r in rows:
        notes = r.get("skipped") or ", ".join(f"{k} {v:.4f}" for k, v in r.items()
                                              if k.startswith(("argmax", "images", "sec")) and isinstance(v, float))
        ms = f"{r['median_ms']:.2f}" if "median_ms" in r else "-"
        print(f"| {r['part']} | {r.get('size', '-')} | {r.get('variant', '-')} | {ms} | {notes} |")
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu_name(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
