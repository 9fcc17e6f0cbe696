#!/usr/bin/env bash
# Reproduce the CamVid recipe: MobileNetV2 (alpha 1.0) DeepLabv3+ with separable ASPP/decoder,
# from scratch (no pretrained weights), ~50 minutes on 2 CPU cores.
#   usage: tools/train_camvid.sh [CAMVID_DIR] [RUN_DIR] [extra edgeseg train options...]
set -euo pipefail
DATA=${1:-../shared/data/camvid}
RUN=${2:-runs/camvid-mbv2-sep}
shift $(( $# > 2 ? 2 : $# ))
EDGESEG=${EDGESEG:-.venv/bin/edgeseg}
exec "$EDGESEG" train --data "$DATA" --format camvid --run-dir "$RUN" \
  --backbone mobilenetv2 --alpha 1.0 --head separable --backbone-weights none \
  --bn-momentum 0.99 --crop-size 256x256 --scale-range 0.75,1.5 --eval-size 368x480 --batch-size 8 \
  --optimizer adamw --lr 2e-3 --weight-decay 1e-2 --warmup-steps 200 \
  --loss hybrid --dice-weight 0.5 --class-weights median_freq --max-class-weight 5 \
  --epochs 60 --steps-per-epoch 100 --val-every 4 "$@"
