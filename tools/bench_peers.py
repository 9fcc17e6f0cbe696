#!/usr/bin/env python
"""Peer latency: segmentation_models_pytorch DeepLabV3Plus with a MobileNetV2 encoder (random
weights) under PyTorch and under ONNX Runtime, fp32 and static int8, at one input size and
thread count. Runs in its own environment (torch and TensorFlow are kept apart):

    make bench-env   # .venv-bench with torch, segmentation-models-pytorch, onnxruntime
    .venv-bench/bin/python tools/bench_peers.py --size 368x480 --threads 2 [--json out.json]

``tools/bench_quant.py --peers`` calls this script in the same run as its own timings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from timing import timeit  # tools/timing.py


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="368x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
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

    print(f"smp DeepLabV3Plus (MobileNetV2 encoder, random weights), {h}x{w}, {args.threads} threads")
    for name, r in rows.items():
        print(f"  {name:<28} median {r['median_ms']:7.1f} ms   p90 {r['p90_ms']:7.1f} ms")
    if args.json:
        args.json.write_text(json.dumps({"size": [h, w], "threads": args.threads, "rows": rows,
                                         "torch": torch.__version__, "onnxruntime": ort.__version__}, indent=2))


if __name__ == "__main__":
    main()
