#!/usr/bin/env bash
# Train the VDR-style baseline head (frozen MiniLM + small trainable projection) on Flickr8k caption
# pairs, on CPU, for a few minutes. The model directory is a generated artifact: keep it outside
# the package (default work-cache/vdr-minilm, git-ignored) and load it with create_encoder("vdr:<dir>").
#
# usage: scripts/train_vdr.sh [OUT_DIR] [extra args for python -m sparse_engine.encoders.vdr]
#   e.g. scripts/train_vdr.sh work-cache/vdr-minilm --minutes 5 --images 3000
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-work-cache/vdr-minilm}"
shift || true
captions="${FLICKR8K_CAPTIONS:-$here/../../shared/data/flickr8k/captions.csv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The machine is shared: two threads at most unless the caller says otherwise.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec python -m sparse_engine.encoders.vdr "$out" --captions "$captions" \
  --images 2000 --val-images 256 --batch-size 64 --steps 1000 --minutes 3 --lr 5e-4 --top-k 256 --seed 0 \
  --device cpu "$@"
