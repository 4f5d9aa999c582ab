#!/usr/bin/env bash
# The prepared device check for a GPU lent for a few minutes (README, "Real data and a GPU"): under
# 8 minutes on one H100, with the machine's own Python (python3; PY=... to choose another):
#   bash tools/gpu_check.sh [FOLDER]         versions, the paper TrainStep at B=64/128, a 3-minute
#                                            make gpu-run, the render and folder loaders (15 workers)
#   bash tools/gpu_check.sh --tiny FOLDER    the same on the CPU in well under a minute (make test)
# Writes FOLDER/gpu_check.json and gpu_run.log (FOLDER: the argument, else $OUT, else runs/gpu_check).
# Exit 0 when every step worked, 1 when one failed (its error is in the JSON), 2 (one line) when torch
# is missing or too old or, without --tiny, no GPU is usable.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
exec "$PY" tools/gpu_check.py "$@"
