#!/usr/bin/env python
"""Print a Markdown table of what `edgeseg` answers to bad input: each command line, the
one-line message and the exit code. Uses the models from tools/maintenance/make_test_models.py and a scratch
folder holding a user's file; fails if that file is touched.

    .venv/bin/python tools/maintenance/cli_error_table.py [build/test-models]
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(models: Path) -> int:
    edgeseg = str(Path(sys.executable).with_name("edgeseg"))
    model, run, data = models / "tiny_int8.tflite", models / "run", models / "data"
    if not model.is_file():
        sys.exit(f"no test models in {models}: run tools/maintenance/make_test_models.py")
    with tempfile.TemporaryDirectory() as tmp:
        mine = Path(tmp) / "mine"
        mine.mkdir()
        (mine / "notes.txt").write_text("precious\n")
        digest = hashlib.sha256((mine / "notes.txt").read_bytes()).hexdigest()
        frames = data / "val" / "images"
        cut = Path(tmp) / "cut.tflite"
        cut.write_bytes(model.read_bytes()[:3000])
        cases = [
            ["run", cut, "--source", frames],
            ["evaluate", cut, "--data", data],
            ["benchmark", cut],
            ["run", model, "--source", frames, "--compare", Path(tmp) / "missing_fp32.tflite"],
            ["run", model, "--source", frames, "--delegate", "gpu", "--strict"],
            ["run", model, "--source", frames, "--providers", "cuda"],
            ["train", "--run-dir", run, "--resume", "--seed", "0"],
            ["train", "--qat", "--from", run, "--no-photometric"],
            ["train", "--data", mine],
            ["train", "--data", mine, "--format", "synthetic"],
            ["train", "--run-dir", mine],
            ["train", "--epochs", "0"],
            ["train", "--alpha", "-1"],
            ["train", "--crop-size", "100x100"],
            ["train", "--backbone", "vgg16"],
            ["train", "--run-dir", run, "--resume"],
            ["train", "--run-dir", run, "--resume", "--epochs", "50"],
            ["train", "--qat-lr-factor", "0.01"],
            ["train", "--qat", "--from", run, "--epochs", "3"],
            ["data", "synth", mine],
            ["data", "check", mine],
            ["data", "tfrecords", data, "--out", mine],
            ["export", mine],
            ["export", run, "--precisions", "fp32", "--io", "uint8"],
            ["export", run, "--precisions", "fp32", "--keep-float", "x"],
            ["export", run, "--precisions", "fp32", "--qat-lr-factor", "0.01"],
            ["export", run, "--precisions", "fp32,onnx"],
            ["export", run, "--int8", "--calib-size", "0"],
            ["evaluate", mine],
            ["evaluate", model, "--overlays", Path(tmp) / "o.png"],
            ["run", model],
            ["run", model, "--camera", "9", "--give-up-after", "1"],  # waited for, as a camera that comes up late
            ["run", model, "--source", "rtsp://"],
            ["run", mine, "--source", frames],
            ["run", model, "--source", mine],
            ["run", model, "--source", frames, "--threads", "0"],
            ["run", model, "--source", frames, "--compare-every", "0"],
            ["run", model, "--source", frames, "--compare-every", "5"],
            ["run", model, "--source", frames, "--upsample", "slow"],
            ["run", model, "--source", frames, "--serve", "70000"],
            ["run", model, "--source", frames, "--serve", "::1:8080"],
            ["run", model, "--source", frames, "--save", Path(tmp) / "nodir" / "o.mp4"],
            ["run", model, "--source", frames, "--save", Path(tmp) / "o.xyz"],
            ["run", model, "--source", frames, "--give-up-after", "5"],
            ["run", model, "--camera", "0", "--loop"],
            ["run", model, "--source", frames, "--delegate", "/path/libnope.so", "--strict"],
            ["run", mine / "notes.txt", "--source", frames],
            ["run", model, "--source", frames, "--input-size", "64x64"],
            ["benchmark", model, "--threads", "0,2"],
        ]
        print("| command | message | exit |\n|---|---|---:|")
        for args in cases:
            result = subprocess.run([edgeseg, *map(str, args)], capture_output=True, text=True, timeout=300)
            lines = [l for l in (result.stderr or result.stdout).splitlines() if l.strip()]
            shown = " ".join(str(a).replace(tmp, "/tmp/x").replace(str(models), "M") for a in args)
            message = lines[-1].replace(tmp, "/tmp/x").replace(str(models), "M") if lines else "(nothing)"
            extra = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
            print(f"| `edgeseg {shown}` | {message.replace('|', '/')}{extra} | {result.returncode} |")
        assert hashlib.sha256((mine / "notes.txt").read_bytes()).hexdigest() == digest
        assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"], "the user's folder changed"
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "test-models"))
