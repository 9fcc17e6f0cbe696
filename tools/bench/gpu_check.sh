#!/usr/bin/env bash
# The GPU check, one command on a machine with an NVIDIA GPU and internet (< 10 minutes on one
# data-centre GPU): a venv with TensorFlow + CUDA, onnxruntime-gpu and TensorRT where pip has them,
# a CamVid model exported to ONNX at 368x480 and 1024x2048, then tools/bench/gpu_check.py.
#   usage: tools/bench/gpu_check.sh RUN_DIR [CAMVID_DIR]
set -euo pipefail
RUN=${1:?usage: tools/bench/gpu_check.sh RUN_DIR [CAMVID_DIR]}
DATA=${2:-../shared/data/camvid}
VENV=${GPU_VENV:-.venv-gpu}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[train,onnx]' 'tensorflow[and-cuda]==2.21.*' onnxruntime-gpu
  "$VENV/bin/pip" uninstall -q -y onnxruntime || true       # the CPU build would shadow the GPU one
  "$VENV/bin/pip" install -q tensorrt-cu12 || echo "tensorrt-cu12 not available: TensorRT rows will say so"
fi
OUT="$RUN/gpu_check"
mkdir -p "$OUT"
"$VENV/bin/edgeseg" export "$RUN" --files onnx --out "$OUT/eval" --force
"$VENV/bin/python" - "$RUN" "$OUT/large.onnx" <<'PY'
import sys
from pathlib import Path
from edgeseg.export.onnx import keras_to_onnx
from edgeseg.models import load_run_model
model, _ = load_run_model(Path(sys.argv[1]), (1024, 2048), final_upsample=False)
Path(sys.argv[2]).write_bytes(keras_to_onnx(model))
PY
"$VENV/bin/python" tools/bench/gpu_check.py --onnx "$OUT"/eval/*_fp32.onnx --onnx-large "$OUT/large.onnx" \
  --data "$DATA" --json "$OUT/gpu_check.json"
