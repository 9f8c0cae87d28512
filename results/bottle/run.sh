#!/usr/bin/env bash
# The runs behind the README's "What it measures": real MVTec AD bottle images, efficientnet_lite0 at 224 px,
# 1-shot, on this project's 2-core machine with 2 torch threads. Rows already in the leaderboard are skipped, so
# rerunning only adds what is missing. Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad bash results/bottle/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/bottle/leaderboard.csv
git rev-parse --short HEAD > results/bottle/commit.txt  # the code that made the rows (README names it)
COMMON=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0 --resolution 224
        --shots 1 --threads 2 --out "$OUT")
SUITE=(--attack fgsm,pgd,apgd,square,worstcase --eps 2/255,8/255 --calib platt
       --opt attack.apgd.steps=20 --opt attack.square.queries=50)

# 1. The attack suite, seed 0: white-box with and without 8-bit rounding, and transfer.
.venv/bin/robustad bench "${COMMON[@]}" --seeds 0 --surrogate score "${SUITE[@]}"
.venv/bin/robustad bench "${COMMON[@]}" --seeds 0 --surrogate score "${SUITE[@]}" --round-8bit
.venv/bin/robustad bench "${COMMON[@]}" --seeds 0 --surrogate linear "${SUITE[@]}"
# 2. Seeds 0-2, every calibrator: the seed paper's FGSM and PGD through both surrogates, beside the noise control.
.venv/bin/robustad bench "${COMMON[@]}" --seeds 0,1,2 --surrogate linear,score --attack fgsm,pgd --eps 2/255,8/255 \
    --calib platt,isotonic,temperature,none
