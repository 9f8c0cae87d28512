#!/usr/bin/env bash
# The runs behind the README's detector comparison: AnomalyDINO, PatchCore and SubspaceAD side by side on the real
# MVTec AD bottle images, efficientnet_lite0 at 224 px (PatchCore on its stages), 1-shot, seeds 0-2, white-box
# (score surrogate) and transfer (linear surrogate), FGSM, PGD and Square (20 queries) beside the noise control.
# Two processes, one torch thread each, append to the same leaderboard (its lock serialises the writes). Rows
# already in the leaderboard are skipped. Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad bash results/detectors/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/detectors/leaderboard.csv
git rev-parse --short HEAD > results/detectors/commit.txt
GRID=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0 --resolution 224
      --shots 1 --seeds 0,1,2 --threads 1 --surrogate score,linear --attack noise,fgsm,pgd,square
      --opt attack.square.queries=20 --eps 2/255,8/255 --calib platt --out "$OUT")
.venv/bin/robustad bench "${GRID[@]}" --detector patchcore &
first=$!
.venv/bin/robustad bench "${GRID[@]}" --detector subspacead,anomalydino
wait "$first"
