#!/usr/bin/env bash
# The convergence study behind the attack budgets (issue 38): real MVTec AD bottle images, efficientnet_lite0 at
# 224 px, 1-shot, seeds 0-2, white-box (score surrogate), eps 8/255, each built-in detector (anomalydino, patchcore,
# subspacead) undefended and behind smoothing and gaussian (their default draws; reported on fresh draws). Each part
# sweeps one budget with the others at their defaults: PGD steps and Auto-PGD steps (10..200), PGD restarts (1..5),
# EOT draws per step (1..32, randomized defenses only) and Square queries (20..5000).
# results/convergence/tables.py prints the README section (mean adversarial AUROC per budget and where each curve
# plateaus) and draws one plot per sweep. Far too expensive for a 2-core machine (days); run it on a GPU box.
# The committed leaderboard is a reduced study (AnomalyDINO, 128 px, 20 eval images), made on 2 cores with:
#   C=(env RESOLUTION=128 DETECTORS=anomalydino)
#   "${C[@]}" SEEDS=0 DEFENSES=none EXTRA="--limit 20" QUERIES="20 100 500 1000" PGD_STEPS="10 20 50" \
#       APGD_STEPS="10 20 50" RESTARTS="1 2 3" bash results/convergence/run.sh square_queries pgd_steps apgd_steps restarts
#   for defense in smoothing gaussian; do for seeds in 0 1; do "${C[@]}" SEEDS=$seeds DEFENSES=$defense EOTS="1 4 16" \
#       EXTRA="--limit 20 --opt defense.$defense.samples=4" bash results/convergence/run.sh eot; done; done
# Every list can be narrowed from the environment (SEEDS, DETECTORS, DEFENSES, RESOLUTION, PGD_STEPS, APGD_STEPS,
# RESTARTS, EOTS, QUERIES; OUT; EXTRA: more bench arguments, e.g. --opt defense.smoothing.samples=4), e.g. for a
# smoke run on a small copy of bottle. Rows already in the leaderboard
# are skipped; results/convergence/commit.txt gets a line per run.
# Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad bash results/convergence/run.sh [part...]
# parts: pgd_steps apgd_steps restarts eot square_queries (default all)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT="${OUT:-results/convergence/leaderboard.csv}"
PARTS=(pgd_steps apgd_steps restarts eot square_queries)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${PARTS[@]}")
for part in "${parts[@]}"; do
    [[ " ${PARTS[*]} " == *" $part "* ]] || { echo "usage: $0 [part...]; parts: ${PARTS[*]}" >&2; exit 2; }
done
DETECTORS="${DETECTORS:-anomalydino,patchcore,subspacead}"
DEFENSES="${DEFENSES:-none,smoothing,gaussian}"
RANDOMIZED="$(echo "$DEFENSES" | tr ',' '\n' | grep -E '^(smoothing|gaussian)$' | paste -sd, - || true)"
PGD_STEPS="${PGD_STEPS:-10 20 50 100 200}"
APGD_STEPS="${APGD_STEPS:-10 20 50 100 200}"
RESTARTS="${RESTARTS:-1 2 3 5}"
EOTS="${EOTS:-1 2 4 8 16 32}"
QUERIES="${QUERIES:-20 100 500 1000 5000}"
git rev-parse --short HEAD >> "$(dirname "$OUT")/commit.txt"
COMMON=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0
        --resolution "${RESOLUTION:-224}" --shots 1 --seeds "${SEEDS:-0,1,2}" --threads 1 --surrogate score
        --calib platt --eps 8/255 --detector "$DETECTORS" --out "$OUT")
read -r -a extra <<< "${EXTRA:-}"
COMMON+=("${extra[@]}")
specs() {  # "pgd" "10 20" -> pgd:10,pgd:20
    local name=$1; shift
    for value in $1; do printf '%s:%s,' "$name" "$value"; done | sed 's/,$//'
}

pgd_steps() {
    .venv/bin/robustad bench "${COMMON[@]}" --defense "$DEFENSES" --attack "$(specs pgd "$PGD_STEPS")"
}
apgd_steps() {
    .venv/bin/robustad bench "${COMMON[@]}" --defense "$DEFENSES" --attack "$(specs apgd "$APGD_STEPS")"
}
restarts() {
    for restarts in $RESTARTS; do
        .venv/bin/robustad bench "${COMMON[@]}" --defense "$DEFENSES" --attack pgd:10 \
            --opt "attack.pgd.restarts=$restarts"
    done
}
eot() {
    [ -n "$RANDOMIZED" ] || { echo "eot: no randomized defense in DEFENSES=$DEFENSES; skipped" >&2; return; }
    for draws in $EOTS; do
        .venv/bin/robustad bench "${COMMON[@]}" --defense "$RANDOMIZED" --attack pgd:10 --eot "$draws"
    done
}
square_queries() {
    .venv/bin/robustad bench "${COMMON[@]}" --defense "$DEFENSES" --attack "$(specs square "$QUERIES")"
}
for part in "${parts[@]}"; do
    "$part"
done
