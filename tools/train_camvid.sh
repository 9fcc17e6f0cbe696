#!/usr/bin/env bash
# The CamVid recipe: MobileNetV2 (alpha 1.0) DeepLabv3+ with separable ASPP/decoder, from scratch
# (no pretrained weights), 6000 steps of batch 8, ~55 minutes on 2 CPU cores.
#
# Checkpoints are selected on a recording sequence held out of the training split (0006R0, a
# different drive), never on val; val is scored once, at the end, with the shipped weights.
# Photometric augmentation (brightness/contrast/saturation, noise, blur, JPEG re-encoding), crops
# centred on rare classes half of the time, and an exponential moving average of the weights.
#
#   usage: tools/train_camvid.sh [CAMVID_DIR] [RUN_DIR] [extra edgeseg train options...]
#   the model to ship (train + val, the last averaged weights):
#          tools/train_camvid.sh ../shared/data/camvid runs/camvid-trainval --train-splits train,val --ship last
#   the earlier recipe, for comparison:
#          tools/train_camvid.sh ../shared/data/camvid runs/camvid-before --no-photometric --rare-crop-prob 0 --no-ema
set -euo pipefail
DATA=${1:-../shared/data/camvid}
RUN=${2:-runs/camvid-mbv2-sep}
shift $(( $# > 2 ? 2 : $# ))
EDGESEG=${EDGESEG:-.venv/bin/edgeseg}
HOLDOUT=(--holdout '0006R0_*')
EMA=(--ema 0.999)
EXTRA=()
for arg in "$@"; do  # the train+val model has nothing held out; --no-ema drops the average
  case "$arg" in
    --no-ema) EMA=() ;;
    --train-splits) HOLDOUT=(); EXTRA+=("$arg") ;;
    *) EXTRA+=("$arg") ;;
  esac
done
exec "$EDGESEG" train --data "$DATA" --format camvid --run-dir "$RUN" \
  --backbone mobilenetv2 --alpha 1.0 --head separable --backbone-weights none \
  --bn-momentum 0.99 --crop-size 256x256 --scale-range 0.75,1.5 --eval-size 368x480 --batch-size 8 \
  --optimizer adamw --lr 2e-3 --weight-decay 1e-2 --warmup-steps 200 \
  --loss hybrid --dice-weight 0.5 --class-weights median_freq --max-class-weight 5 \
  --epochs 60 --steps-per-epoch 100 --val-every 4 \
  --photometric --rare-crop-prob 0.5 "${EMA[@]}" "${HOLDOUT[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
