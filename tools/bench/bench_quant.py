#!/usr/bin/env python
"""Quantization benchmark on a trained run, measured in one process:

mIoU on ``val`` of fp32, fp16, PTQ int8 and QAT int8 TFLite models (evaluated with the TF-free
runtime), the drop of each versus fp32, file sizes, and median ``invoke()`` latency at the
model's input size (368x480 for CamVid) on LiteRT's XNNPACK CPU path with ``--threads``.
Latency rounds are interleaved across models so machine noise hits all of them alike.

    .venv/bin/python tools/bench/bench_quant.py runs/camvid-mbv2-sep [--qat-steps 300] [--json out.json]

With ``--peers --peer-yolo WEIGHTS.pt`` the Ultralytics semantic model that tools/bench/peer_ultralytics.py
trained is exported to int8 TFLite by its own exporter, timed the same way and scored on val by its
own validator. With ``--peers`` it also times segmentation_models_pytorch DeepLabV3Plus (MobileNetV2 encoder,
random weights) under PyTorch and ONNX Runtime (fp32 and static int8) at the same size and
thread count, in the same run, through tools/bench/bench_peers.py in ``.venv-bench`` (``make bench-env``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def invoke_latency(models: dict, threads: int, rounds: int = 15, warmup: int = 3) -> dict:
    """Median / p90 ms of interpreter.invoke() per model, interleaved."""
    from edgeseg.runtime.model.benchmark import ready_interpreter, time_invokes

    return time_invokes({name: ready_interpreter(path, threads, warmup=warmup) for name, path in models.items()}, rounds)


def peer_latency(size, threads: int, python: Path, yolo: Path | None = None) -> dict:
    """Run tools/bench/bench_peers.py in the torch environment; its rows, or why they are missing."""
    import subprocess
    import tempfile

    if not python.exists():
        return {"skipped": f"{python} not found: run `make bench-env` first"}
    out = Path(tempfile.mkdtemp()) / "peers.json"
    cmd = [str(python), str(Path(__file__).with_name("bench_peers.py")), "--size", f"{size[0]}x{size[1]}",
           "--threads", str(threads), "--json", str(out)]
    if yolo:  # the Ultralytics model tools/bench/peer_ultralytics.py trained, with the dataset yaml it wrote
        cmd += ["--yolo", str(yolo), "--yolo-data", str(peer_yaml(yolo))]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return {"skipped": f"bench_peers.py failed: {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(out.read_text())["rows"]


def peer_yaml(weights: Path) -> Path:
    """The dataset yaml tools/bench/peer_ultralytics.py wrote beside OUT/train/weights/last.pt."""
    return weights.parents[2] / "data" / "camvid.yaml"


def main(argv=None):
    from edgeseg.config import QAT_LR_FACTOR, QAT_STEPS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, help="export folder (default RUN/bench_quant)")
    ap.add_argument("--qat-steps", type=int, default=QAT_STEPS)
    ap.add_argument("--qat-lr-factor", type=float, default=QAT_LR_FACTOR)
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decoder-upsample", default="bilinear", choices=["bilinear", "nearest"])
    ap.add_argument("--formats", default="fp32,fp16,int8,qat",
                    help="with --peers, onnx_fp32,onnx_int8,onnx_qat and ONNX Runtime's own int8 are added")
    ap.add_argument("--peers", action="store_true", help="also time the smp/PyTorch/ONNX Runtime peers")
    ap.add_argument("--peers-python", type=Path, default=Path(".venv-bench/bin/python"))
    ap.add_argument("--peer-yolo", type=Path, help="with --peers: OUT/train/weights/last.pt of tools/bench/peer_ultralytics.py; "
                                                    "its int8 TFLite export is timed and scored too")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.peer_yolo and not args.peers:
        ap.error("--peer-yolo needs --peers")
    yolo = args.peer_yolo
    if yolo and not (yolo.is_file() and len(yolo.parents) > 2 and peer_yaml(yolo).is_file()):
        ap.error(f"--peer-yolo {args.peer_yolo}: not OUT/train/weights/last.pt of tools/bench/peer_ultralytics.py")

    from edgeseg.data import load_split
    from edgeseg.export.exporter import ExportOptions, export_run
    from edgeseg.core.metrics import mean_iou, per_class_iou
    from edgeseg.runtime.model.scoring import score_model_file

    formats = tuple(args.formats.split(","))
    if args.peers:
        formats += tuple(f"onnx_{f}" for f in ("fp32", "int8", "qat") if f in formats)
    out = args.out or args.run / f"bench_quant_{args.decoder_upsample}"
    if "qat" in formats:
        from edgeseg.quant.qat import qat_finetune

        info = qat_finetune(args.run, steps=args.qat_steps, lr_factor=args.qat_lr_factor,
                            decoder_interpolation=args.decoder_upsample)
        print(f"QAT fine-tuning: {args.qat_steps} steps in {info['seconds']:.0f}s", file=sys.stderr)
    report = export_run(args.run, ExportOptions(
        formats=formats, out_dir=out, calib_size=args.calib_size, force=True,
        decoder_interpolation=args.decoder_upsample, manifest_dir=out))
    meta = json.loads((args.run / "dataset.json").read_text())
    val = load_split(meta["root"], meta["format"], "val")
    paths = {name: Path(info["path"]) for name, info in report["files"].items()}
    if args.peers and "int8" in formats:  # the other way to make int8 ONNX, on the same calibration frames
        manifest = report["calibration"]["manifest"]
        ort = export_run(args.run, ExportOptions(formats=("onnx_int8",), out_dir=out / "ort", force=True,
                                                 calib_manifest=Path(manifest), onnx_int8="ort",
                                                 decoder_interpolation=args.decoder_upsample))
        paths["onnx_int8_ort"] = Path(ort["files"]["onnx_int8"]["path"])
    results = {}
    for name, path in paths.items():
        r = score_model_file(path, val.items, val.info.label_map, val.info.class_names, threads=args.threads)
        results[name] = {"miou": mean_iou(r.cm), "per_class_iou": per_class_iou(r.cm).tolist(),
                         "bytes": path.stat().st_size}
        print(f"evaluated {name}: mIoU {results[name]['miou']:.4f}", file=sys.stderr, flush=True)
    lat = invoke_latency(paths, args.threads)
    ref = results.get("fp32", next(iter(results.values())))
    h, w = report["input_size"]
    print(f"\n{args.run} on {meta['format']} val ({len(val.items)} frames), input {h}x{w}, "
          f"LiteRT XNNPACK / ONNX Runtime CPU, {args.threads} threads, decoder upsample {args.decoder_upsample}\n")
    print(f"{'model':<14} {'mIoU':>7} {'drop':>7} {'MB':>7} {'size/fp32':>9} {'median ms':>10} {'p90 ms':>8} {'lat/fp32':>9}")
    for name, r in results.items():
        r.update(lat[name])
        r["drop_points"] = 100 * (ref["miou"] - r["miou"])
        r["size_vs_fp32"] = r["bytes"] / ref["bytes"]
        r["latency_vs_fp32"] = r["median_ms"] / lat.get("fp32", lat[name])["median_ms"]
        print(f"{name:<14} {r['miou']:>7.4f} {r['drop_points']:>6.2f}p {r['bytes'] / 1e6:>7.2f} {r['size_vs_fp32']:>9.2f} "
              f"{r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} {r['latency_vs_fp32']:>9.2f}")
    peers = peer_latency((h, w), args.threads, args.peers_python, args.peer_yolo) if args.peers else {}
    if peers:
        trained = "; Ultralytics trained, at its own size" if args.peer_yolo else ""
        print(f"\npeers (smp DeepLabV3Plus-MobileNetV2, random weights{trained}) at {h}x{w}, {args.threads} threads:")
        for name, r in peers.items():
            shown = r if isinstance(r, str) else f"median {r['median_ms']:.1f} ms"
            if isinstance(r, dict) and "val_miou" in r:
                shown += f" at {r['size'][0]}x{r['size'][1]}, val mIoU {r['val_miou']:.4f} (its own validator)"
            print(f"  {name:<28} {shown}")
        timed = [r["median_ms"] for r in peers.values() if isinstance(r, dict)]
        shipped = results.get("qat", results.get("int8"))
        if timed and shipped:
            print(f"  edgeseg shipped int8 / fastest peer: {shipped['median_ms'] / min(timed):.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "results": results, "peers": peers,
                                         "parity": report["parity"], "threads": args.threads,
                                         "decoder_upsample": args.decoder_upsample}, indent=2))


if __name__ == "__main__":
    main()
