#!/usr/bin/env bash
# Reproduce bench/results/exclusion_results.{json,md} and its plots in one command.
# Trains, once, into work-cache/ (git-ignored): the VDR-style baseline and the SR ablation models
# (Flickr8k captions only), then runs the benchmark on COCO val2017 captions.
# CPU, 2 cores, MiniLM caption embeddings cached: ~25 min of training, ~20 min of benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CACHE:-work-cache}"
export HF_HUB_OFFLINE=1
[ -f "$CACHE/vdr-minilm/config.json" ] || scripts/train_vdr.sh "$CACHE/vdr-minilm"
ABL="$CACHE/ablation"
mkdir -p "$ABL"
[ -f "$ABL/sr-d1000/config.json" ] || cp -r src/sparse_engine/models/sr-minilm "$ABL/sr-d1000"
# the default recipe trained again on this machine: how far a retrain moves the numbers
[ -f "$ABL/sr-d1000-retrained/config.json" ] || OUT="$ABL/sr-d1000-retrained" scripts/train_default.sh
for dims in 500 1500 2000; do
  [ -f "$ABL/sr-d$dims/config.json" ] || OUT="$ABL/sr-d$dims" scripts/train_default.sh --dims "$dims"
done
[ -f "$ABL/sr-d1000-no-masks/config.json" ] || OUT="$ABL/sr-d1000-no-masks" scripts/train_default.sh --no-caption-masks
# the previous default recipe: no distillation, top-32 masks
[ -f "$ABL/sr-d1000-no-distill/config.json" ] || OUT="$ABL/sr-d1000-no-distill" scripts/train_default.sh \
  --lambda-distill 0 --top-k 32
# with the caption's SPINE vector in each row (unit(SR) + 1.0 * unit(SPINE)), the previous default
[ -f "$ABL/sr-d1000-spine-vector/config.json" ] || OUT="$ABL/sr-d1000-spine-vector" scripts/train_default.sh \
  --caption-spine-weight 1
[ -f "$ABL/sr-d1000-paper-loss/config.json" ] || OUT="$ABL/sr-d1000-paper-loss" scripts/train_default.sh \
  --caption-spine-weight 0 --lambda-word 0 --lambda-align 0 --lambda-distill 0
python bench/exclusion.py --docs captions --out bench/results --vdr "vdr:$CACHE/vdr-minilm" --ablation-models "$ABL" "$@"
