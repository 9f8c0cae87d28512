#!/usr/bin/env bash
# The runs behind the README's flag table: real MVTec AD bottle images, efficientnet_lite0 at 224 px, 1-shot,
# seeds 0-4, white-box (score surrogate) PGD-10 at 2/255 and 8/255, read by every built-in flag (entropy through
# Platt, squeeze, consistency) and by the conformal decision at alpha 0.1 and 0.2; then PGD made aware of each
# flag (flag_aware=<flag>), read by that flag. consistency-aware PGD (8 noise draws per step, about 9x the cost of
# PGD) runs last. Two processes (seeds 0,2,4; seeds 1,3), one torch thread each, append to one leaderboard; rows
# already in it are skipped. results/flags/commit.txt gets a line per invocation.
# Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad bash results/flags/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/flags/leaderboard.csv
git rev-parse --short HEAD >> results/flags/commit.txt
COMMON=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0 --resolution 224
        --shots 1 --threads 1 --surrogate score --attack pgd --eps 2/255,8/255 --out "$OUT")

seeds() {
    .venv/bin/robustad bench "${COMMON[@]}" --seeds "$1" --flag entropy,squeeze,consistency \
        --calib platt,conformal:0.1,conformal:0.2
    for flag in entropy squeeze; do
        .venv/bin/robustad bench "${COMMON[@]}" --seeds "$1" --flag "$flag" --calib platt \
            --opt "attack.pgd.flag_aware=$flag"
    done
}
consistency_aware() {
    .venv/bin/robustad bench "${COMMON[@]}" --seeds "$1" --flag consistency --calib platt \
        --opt attack.pgd.flag_aware=consistency
}
{ seeds 0,2,4; consistency_aware 0,2,4; } &
first=$!
seeds 1,3
consistency_aware 1,3
wait "$first"
