#!/usr/bin/env python
"""Peer latency: segmentation_models_pytorch (smp) DeepLabV3Plus with a MobileNetV2 encoder (random
weights) under PyTorch and under ONNX Runtime, fp32 and static int8, at one input size and
thread count. Runs in its own environment (torch and TensorFlow are kept apart):

    make bench-env   # .venv-bench with torch, segmentation-models-pytorch, onnxruntime
    .venv-bench/bin/python tools/bench/bench_peers.py --size 368x480 --threads 2 [--json out.json]

With ``--yolo WEIGHTS.pt --yolo-data DATA.yaml`` (a model tools/bench/peer_ultralytics.py trained, and
the dataset yaml it wrote) it also exports Ultralytics' int8 TFLite model through its own exporter
(``format=tflite, int8=True``, calibrated on the yaml's train frames as ours are; the height is
rounded up to a multiple of 32, e.g. 384x480 for 368x480), times it under LiteRT with XNNPACK at
the same thread count, in interleaved rounds with the ``--tflite`` files (edgeseg's benchmark
loop: zero input, two settling runs per model and round), and scores that file on val through
Ultralytics' own validator (its mIoU).

``--tflite FILE...`` times edgeseg models in the same loop (e.g. the int8 file of the run the peer
is compared with). ``tools/bench/bench_quant.py --peers [--peer-yolo WEIGHTS.pt]`` calls this script in the same run as its
own timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # edgeseg's runtime benchmark loop (no TensorFlow)
from timing import timeit  # noqa: E402  tools/bench/timing.py


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="368x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--yolo", type=Path, help="Ultralytics semantic weights (tools/bench/peer_ultralytics.py)")
    ap.add_argument("--yolo-data", type=Path, help="its dataset yaml (OUT/data/camvid.yaml)")
    ap.add_argument("--tflite", type=Path, nargs="*", default=[],
                    help="edgeseg .tflite files to time in the same process and loop as the Ultralytics one")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.yolo and not (args.yolo.is_file() and args.yolo_data and args.yolo_data.is_file()):
        ap.error("--yolo needs an existing weights file and --yolo-data an existing dataset yaml")
    h, w = (int(v) for v in args.size.lower().split("x"))

    import onnxruntime as ort
    import segmentation_models_pytorch as smp
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = smp.DeepLabV3Plus(encoder_name="mobilenet_v2", encoder_weights=None, classes=args.classes).eval()
    x = torch.rand(1, 3, h, w)
    rows = {}
    with torch.inference_mode():
        rows["PyTorch fp32"] = timeit(lambda: model(x), args.rounds)

    tmp = Path(tempfile.mkdtemp())
    fp32 = tmp / "smp_fp32.onnx"
    torch.onnx.export(model, x, str(fp32), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.data = iter([{"x": rng.random((1, 3, h, w), np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    int8 = tmp / "smp_int8.onnx"
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    feed = {"x": x.numpy()}
    for name, path in (("ONNX Runtime fp32", fp32), ("ONNX Runtime static int8", int8)):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        rows[name] = timeit(lambda: sess.run(None, feed), args.rounds)

    tflite = {f"edgeseg {path.name}": (path, {}) for path in args.tflite}
    if args.yolo:
        path, extra = yolo_int8(args.yolo, args.yolo_data, (h, w))
        tflite[f"Ultralytics {args.yolo.parent.parent.parent.name} int8 TFLite"] = (path, extra)
    rows.update(time_tflite(tflite, args.threads, args.rounds))
    print(f"{h}x{w}, {args.threads} threads; smp = DeepLabV3Plus with a MobileNetV2 encoder, random weights")
    for name, r in rows.items():
        extra = f"   at {r['size'][0]}x{r['size'][1]}" if "size" in r else ""
        extra += f", val mIoU {r['val_miou']:.4f} (its validator)" if "val_miou" in r else ""
        print(f"  {name:<28} median {r['median_ms']:7.1f} ms   p90 {r['p90_ms']:7.1f} ms{extra}")
    if args.json:
        args.json.write_text(json.dumps({"size": [h, w], "threads": args.threads, "rows": rows,
                                         "torch": torch.__version__, "onnxruntime": ort.__version__}, indent=2))


def time_tflite(files: dict, threads: int, rounds: int) -> dict:
    """LiteRT (XNNPACK) invoke times of .tflite files (name -> (path, extra row fields; ``size`` for a
    file whose input is not NHWC)), timed
    in interleaved rounds by edgeseg's own benchmark loop, so that they share the machine alike."""
    from edgeseg.runtime.model.benchmark import ready_interpreter, time_invokes

    ready = {name: ready_interpreter(path, threads) for name, (path, _) in files.items()}
    times = time_invokes(ready, rounds)
    return {name: {**times[name], "size": [int(v) for v in ready[name].backend.input.shape[1:3]],
                   "bytes": path.stat().st_size, **extra} for name, (path, extra) in files.items()}


def yolo_int8(weights: Path, data: Path, size) -> tuple[Path, dict]:
    """Ultralytics' own int8 TFLite export of a trained semantic model, and its val mIoU."""
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    h, w = (-(-size[0] // 32) * 32, -(-size[1] // 32) * 32)  # its exporter wants multiples of 32
    tflite = Path(YOLO(str(weights), task="semantic").export(format="tflite", int8=True, data=str(data), split="train",
                                                             imgsz=[h, w], verbose=False))  # calibrated on train, as ours
    val = YOLO(str(tflite), task="semantic").val(data=str(data), imgsz=[h, w], batch=1, device="cpu",
                                                  plots=False, verbose=False)
    return tflite, {"size": [h, w],  # its file's input is (1, 3, H, W): litert-torch keeps PyTorch's layout
                    "val_miou": float(val.results_dict["metrics/mIoU"]), "file": str(tflite)}


if __name__ == "__main__":
    main()
