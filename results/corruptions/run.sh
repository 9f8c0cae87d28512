#!/usr/bin/env bash
# The runs behind the README's corruption table: AnomalyDINO, PatchCore and SubspaceAD on the real MVTec AD bottle
# images, efficientnet_lite0 at 224 px (PatchCore on its stages), 1-shot, every built-in corruption under
# --norm corruption. One process per detector, one torch thread each, severities one after another (in the order
# of $SEVERITIES, default 3 5 1: a run cut short still holds whole severities); they append to one leaderboard (its
# lock serialises the writes), and rows already there are skipped. No pixel metrics: the table reads image AUROC.
# Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad [SEEDS=0] [SEVERITIES="3 5 1"] bash results/corruptions/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/corruptions/leaderboard.csv
CORRUPTIONS=gaussian_noise,shot_noise,impulse_noise,speckle_noise,defocus_blur,motion_blur,zoom_blur,gaussian_blur
CORRUPTIONS+=,brightness,contrast,jpeg_compression,pixelate,elastic_transform
ATTACKS=$(echo "$CORRUPTIONS" | sed 's/\([a-z_]*\)/corruption:\1/g')
git rev-parse --short HEAD >> results/corruptions/commit.txt
GRID=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0 --resolution 224
      --shots 1 --seeds "${SEEDS:-0}" --threads 1 --norm corruption --attack "$ATTACKS" --calib platt
      --no-pixel-metrics --out "$OUT")
severities() {
    for severity in ${SEVERITIES:-3 5 1}; do
        .venv/bin/python -m robustad bench "${GRID[@]}" --eps "$severity" --detector "$1"
    done
}
severities patchcore & first=$!
severities subspacead & second=$!
severities anomalydino
wait "$first" "$second"
