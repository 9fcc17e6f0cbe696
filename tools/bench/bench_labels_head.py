#!/usr/bin/env python
"""Which formulation of a labels head (the upsample + argmax in the exported graph, uint8 class ids
out: edgeseg/export/labels_head.py) each backend this machine reaches runs whole, how fast, and
whether its masks are the logits path's, in one run:

- every formulation as fp32 and fp16 TFLite files and an fp32 ONNX file, beside the logits files;
- LiteRT XNNPACK (CPU) and ONNX Runtime (CPU): median ms an invoke, interleaved with the logits
  file's, whose runtime post-processing (the masks `edgeseg evaluate` scores) is timed beside it;
- masks on CamVid val frames through the runtime against the fp32 logits file's;
- with ``--gpu``: LiteRT's GPU accelerator on Mesa's software Vulkan (llvmpipe, in
  tools/test_gpu.py's Debian root): whether the whole graph runs on the GPU, and the masks against
  the CPU's, with fp16 and fp32 GPU math. A software GPU's timing means nothing, so none is given.

    .venv/bin/python tools/bench/bench_labels_head.py runs/NAME [--frames ../shared/data/camvid/val/images] \\
        [--count 20] [--gpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "boards"))  # prove_gpu: the llvmpipe root

HEAD_OPS = ("RESIZE_BILINEAR", "ARG_MAX", "CAST", "REDUCE_MAX", "REDUCE_MIN", "GREATER_EQUAL", "SELECT_V2", "SUB", "MUL")

GPU_PROBE = r"""
import json, sys
from pathlib import Path
import cv2, numpy as np
from edgeseg.runtime.model.litert_gpu import LiteRTGpuBackend
from edgeseg.runtime.model.segmenter import Segmenter
frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(Path(sys.argv[1]).glob("*"))]
for model in sys.argv[2:]:
    row = {"file": Path(model).name}
    try:
        cpu = Segmenter(model, threads=2)
        want = [cpu.predict(f) for f in frames]
        for math in ("fp16", "fp32"):
            gpu = Segmenter(model, threads=2, backend=LiteRTGpuBackend(model, 2, enforce_f32=math == "fp32"))
            row["whole_graph_on_gpu"] = gpu.backend.fully_accelerated
            row["adapter"] = gpu.backend.adapter
            row[f"masks_vs_cpu_{math}"] = float(np.mean([np.mean(gpu.predict(f) == w) for f, w in zip(frames, want)]))
            gpu.backend.close()
    except Exception as e:  # noqa: BLE001 - reported in the table
        row["error"] = str(e).splitlines()[0][:200]
    print("ROW" + json.dumps(row), flush=True)
"""


def build(run: Path, out: Path, formulations) -> dict:
    """name -> path: the logits files and each formulation's labels files."""
    from edgeseg.export.formats import EXPORT_FORMATS
    from edgeseg.export.labels_head import labels_head
    from edgeseg.export.metadata import embed_metadata
    from edgeseg.export.onnx import embed_onnx_metadata, keras_to_onnx
    from edgeseg.export.tflite import convert
    from edgeseg.core.metadata import ModelMetadata
    from edgeseg.models import load_run_model
    from edgeseg.rundir import RunDir

    rd = RunDir(run).require()
    model, config = load_run_model(run, final_upsample=False)
    ds = json.loads(rd.dataset.read_text())
    size = list(config.data.eval_size)
    base = ModelMetadata(class_names=ds["class_names"], colors=ds["colors"], input_size=size, source_run=str(run))
    files = {}
    out.mkdir(parents=True, exist_ok=True)
    for precision in ("fp32", "fp16"):
        path = out / f"logits_{precision}.tflite"
        path.write_bytes(embed_metadata(convert(model, EXPORT_FORMATS[precision]), replace(base, precision=precision)))
        files[f"logits {precision}"] = path
    path = out / "logits_fp32.onnx"
    path.write_bytes(embed_onnx_metadata(keras_to_onnx(model), replace(base, precision="onnx_fp32")))
    files["logits onnx"] = path
    with_head = replace(base, output="labels", output_stride=1)
    for f in formulations:
        head = lambda logits, size, f=f: labels_head(logits, size, f)  # noqa: E731
        meta = replace(with_head, extra={"labels_head": f})
        for precision in ("fp32", "fp16"):
            path = out / f"{f}_{precision}.tflite"
            data = convert(model, EXPORT_FORMATS[f"{precision}_labels"], head=head)
            path.write_bytes(embed_metadata(data, replace(meta, precision=f"{precision}_labels")))
            files[f"{f} {precision}"] = path
        path = out / f"{f}_fp32.onnx"
        path.write_bytes(embed_onnx_metadata(keras_to_onnx(model, head), replace(meta, precision="onnx_fp32_labels")))
        files[f"{f} onnx"] = path
        print(f"built {f}", file=sys.stderr, flush=True)
    return files


def head_ops(path: Path) -> str:
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path)).graph
        tail = [n.op_type for n in graph.node][-4:]
        return " ".join(t for t in tail if t in ("Resize", "ArgMax", "Cast", "ReduceMax", "ReduceMin", "GreaterOrEqual",
                                                  "Where", "Sub", "Mul"))
    from edgeseg.export.delegates import graph_ops

    ops = graph_ops(path.read_bytes())
    return " ".join(f"{k}" + (f" x{ops[k]}" if ops[k] > 1 else "") for k in HEAD_OPS if k in ops and k != "MUL")


def gpu_rows(files: dict, frames: Path, count: int) -> dict:
    """file name -> what the GPU accelerator on llvmpipe made of it."""
    from prove_gpu import Root, device_install, rootfs

    root_path = rootfs()
    work = root_path / "tmp/edgeseg-labels-head"
    shutil.rmtree(work, ignore_errors=True)
    (work / "frames").mkdir(parents=True)
    for p in sorted(frames.glob("*"))[:count]:
        shutil.copy(p, work / "frames" / p.name)
    inside = []
    for path in files.values():
        if path.suffix == ".tflite":
            shutil.copy(path, work / path.name)
            inside.append(f"/tmp/edgeseg-labels-head/{path.name}")
    (work / "probe.py").write_text(GPU_PROBE)
    with tempfile.TemporaryDirectory() as tmp:
        root = Root(root_path, device_install(root_path, Path(tmp)))
    variables = {"PYTHONPATH": root.site, "HOME": "/root", "PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": "/tmp"}
    inner = " ".join(["exec", "env", "-i", *(f"{k}={v}" for k, v in variables.items()), "/usr/bin/python3",
                      "/tmp/edgeseg-labels-head/probe.py", "/tmp/edgeseg-labels-head/frames", *inside])
    argv = ["unshare", "--mount", "--fork", "sh", "-c",
            f'mount -t proc proc "{root_path}/proc" && exec chroot "{root_path}" sh -c \'{inner}\'']
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    rows = {}
    for line in done.stdout.splitlines():
        if line.startswith("ROW"):
            row = json.loads(line[3:])
            rows[row["file"]] = row
    if not rows:
        print(done.stderr[-3000:], file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    from edgeseg.export.formats import LABELS_HEADS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, help="where the files go (default RUN/labels-heads)")
    ap.add_argument("--frames", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/camvid/val/images")
    ap.add_argument("--count", type=int, default=20, help="frames for the masks")
    ap.add_argument("--runs", type=int, default=30, help="timed invokes per file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--formulations", default=",".join(LABELS_HEADS))
    ap.add_argument("--gpu", action="store_true", help="also on LiteRT's GPU accelerator on llvmpipe (tools/test_gpu.py's root)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import cv2

    from edgeseg.runtime.model.benchmark import ready_interpreter, time_invokes
    from edgeseg.runtime.model.segmenter import Segmenter

    files = build(args.run, args.out or args.run / "labels-heads", args.formulations.split(","))
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(args.frames.glob("*"))[: args.count]]
    reference = Segmenter(files["logits fp32"], threads=args.threads)
    want = [reference.predict(f) for f in frames]
    post = []
    for f in frames:  # the logits path's own post-processing, to set beside a labels head's invoke
        pending = reference.infer(f)
        t = time.perf_counter()
        reference.finish(pending)
        post.append(1000 * (time.perf_counter() - t))
    rows = []
    for kind in ("tflite", "onnx"):
        chosen = {name: path for name, path in files.items() if path.suffix == f".{kind}"}
        ready = {name: ready_interpreter(path, args.threads) for name, path in chosen.items()}
        timed = time_invokes(ready, args.runs)
        for name, path in chosen.items():
            seg = Segmenter(path, threads=args.threads)
            got = [seg.predict(f) for f in frames]
            rows.append({"file": path.name, "name": name, "backend": seg.backend.description,
                         "head_ops": "-" if name.startswith("logits") else head_ops(path),
                         "output_dtype": np.dtype(seg.output.dtype).name, "invoke_ms": timed[name]["median_ms"],
                         "masks_vs_fp32_logits": float(np.mean([np.mean(a == b) for a, b in zip(got, want)]))})
    gpu = gpu_rows(files, args.frames, args.count) if args.gpu else {}
    print(f"\n{args.run.name}: {len(frames)} frames of {args.frames}; {args.threads} threads; "
          f"runtime post-processing of the logits (x4 upsample + argmax): {np.median(post):.2f} ms median\n")
    print("| file | head ops | out | backend | invoke ms | masks = fp32 logits path | GPU accelerator (llvmpipe): whole graph | GPU masks = CPU (fp16 / fp32 math) |")
    print("|---|---|---|---|---:|---:|---|---|")
    for r in rows:
        g = gpu.get(r["file"], {})
        r["gpu"] = g
        whole = "-" if not g else ("error: " + g["error"] if "error" in g else ("yes" if g["whole_graph_on_gpu"] else "no: some ops on the CPU"))
        masks = "-" if not g or "error" in g else f"{100 * g['masks_vs_cpu_fp16']:.3f}% / {100 * g['masks_vs_cpu_fp32']:.3f}%"
        print(f"| {r['file']} | {r['head_ops']} | {r['output_dtype']} | {r['backend']} | {r['invoke_ms']:.2f} | "
              f"{100 * r['masks_vs_fp32_logits']:.3f}% | {whole} | {masks} |")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "post_ms": float(np.median(post)), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
