#!/usr/bin/env bash
# Retrain the shipped default encoder src/sparse_engine/models/sr-minilm (fp16 weights) with its recipe
# (SPINE and realizations repeat exactly; SR weights differ slightly run to run: see README).
# Trains on the Flickr8k captions only (never on COCO val2017, the exclusion benchmark).
# CPU, 2 cores: about 2 min once the MiniLM caption embeddings are cached (SPINE ~35 s, SR ~9
# s/epoch), plus ~6 min to embed the 40,455 captions the first time; uses CUDA when present.
set -euo pipefail
cd "$(dirname "$0")/.."
CAPTIONS="${CAPTIONS:-../shared/data/flickr8k/captions.csv}"
OUT="${OUT:-src/sparse_engine/models/sr-minilm}"
export HF_HUB_OFFLINE=1
sparse-engine train --base minilm --captions "$CAPTIONS" --out "$OUT" \
  --dims 1000 --top-k 64 --epochs 10 --lambda-contrast 1.0 --lambda-align 1.0 --lambda-word 1.0 --lambda-distill 1.0 \
  --caption-spine-weight 0.0 --tau 0.05 --seed 0 --spine-epochs 200 --spine-rho 0.02 \
  --spine-dims-per-word 6 --extend-vocab 50000 --min-count 2 "$@"
