#!/usr/bin/env bash
# The runs behind the README's detector comparison (protocol 2: the clean image kept, the margin loss on a logit
# scaled by the calib scores' spread). Real MVTec AD bottle images, 1-shot, 59 eval images, eps 2/255 and 8/255,
# every calibrator (they share the attacked images, so they cost nothing more), per-image scores saved beside the leaderboard (scores/) for the paired DeLong tests.
# Parts (default all):
#   cnn      AnomalyDINO, PatchCore and SubspaceAD on efficientnet_lite0 at 224 px (PatchCore on its stages),
#            seeds 0-2: the noise control, white-box (score surrogate) FGSM, PGD-10 and Square (20 queries), and
#            transfer FGSM (linear surrogate). Two processes, one torch thread each, one leaderboard (its lock
#            serialises the writes).
#   winclip  WinCLIP zero-shot (--shots 0) and 1-shot on its own CLIP ViT-B-16-plus-240 at 240 px with SEEDED
#            RANDOM weights (no CLIP weights can be downloaded here): these rows test the pipeline, not the model.
#            Seed 0, eps 8/255, 20 eval images (--limit 20, drawn by the split rule; a 240 px ViT-B/16+ costs about
#            0.7 s a forward pass on one core here), the noise control, white-box FGSM and PGD-10.
#   radius   seed 0, eps 8/255: each CNN detector's white-box PGD-10 with --radius (the per-image robustness radius,
#            searched up to 8/255; about 2-3x a PGD run).
# A reduced grid for a 2-core machine: Square at 20 queries (100 queries cost about 8 CPU-minutes a cell here), no
# gray-box PGD/Square through the linear head. Rows already in the leaderboard are skipped.
# Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad bash results/detectors/run.sh [cnn|winclip|radius ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/detectors/leaderboard.csv
PARTS=(cnn winclip radius)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${PARTS[@]}")
for part in "${parts[@]}"; do
    [[ " ${PARTS[*]} " == *" $part "* ]] || { echo "usage: $0 [part...]; parts: ${PARTS[*]}" >&2; exit 2; }
done
git rev-parse --short HEAD >> results/detectors/commit.txt
COMMON=(--dataset mvtec --data-root "$DATA" --category bottle --threads 1
        --calib platt,isotonic,temperature,none --no-pixel-metrics --save-scores results/detectors/scores --out "$OUT")
CNN=("${COMMON[@]}" --backbone efficientnet_lite0 --resolution 224 --shots 1 --seeds 0,1,2 --eps 2/255,8/255)

cnn_detector() {
    .venv/bin/robustad bench "${CNN[@]}" --detector "$1" --surrogate score --attack fgsm,pgd,square \
        --opt attack.square.queries=20
    .venv/bin/robustad bench "${CNN[@]}" --detector "$1" --surrogate linear --attack fgsm
}
cnn() {
    { cnn_detector patchcore; cnn_detector subspacead; } &
    local first=$!
    cnn_detector anomalydino
    wait "$first"
}
winclip() {
    .venv/bin/robustad bench "${COMMON[@]}" --backbone clip_vitb16plus_240 --weights random --resolution 240 \
        --detector winclip --seeds 0 --shots 0,1 --limit 20 --eps 8/255 --surrogate score --attack fgsm,pgd
}
radius() {
    for detector in anomalydino patchcore subspacead; do
        .venv/bin/robustad bench "${COMMON[@]}" --backbone efficientnet_lite0 --resolution 224 --shots 1 --seeds 0 \
            --eps 8/255 --detector "$detector" --surrogate score --attack pgd --no-noise-control --radius
    done
}
for part in "${parts[@]}"; do
    "$part"
done
