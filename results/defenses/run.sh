#!/usr/bin/env bash
# The defense runs behind the README's defense table: real MVTec AD bottle images, efficientnet_lite0 at 224 px,
# 1-shot, white-box (score surrogate) through every built-in defense, adaptive (BPDA identity, EOT 4) and
# non-adaptive (BPDA off, EOT 1). A reduced grid: this 2-core machine cannot run the full suite x 6 defenses x 3
# seeds in a session (about 10 CPU-minutes per defense and seed undefended, 4-8x that behind randomized ones).
# Seeds from $SEEDS (default 0); the parts to run as arguments (default all): deterministic randomized naive
# gradient_free apgd apgd_randomized worstcase_randomized standard. Rows already in the leaderboard are skipped;
# results/defenses/commit.txt gets a line per run.
# Usage: ROBUSTAD_TEST_DATA=/path/to/mvtec_ad [SEEDS=0,1,2] bash results/defenses/run.sh [part...]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${ROBUSTAD_TEST_DATA:?set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/}"
OUT=results/defenses/leaderboard.csv
PARTS=(deterministic randomized naive gradient_free apgd apgd_randomized worstcase_randomized standard)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${PARTS[@]}")
for part in "${parts[@]}"; do
    [[ " ${PARTS[*]} " == *" $part "* ]] || { echo "usage: $0 [part...]; parts: ${PARTS[*]}" >&2; exit 2; }
done
git rev-parse --short HEAD >> results/defenses/commit.txt
COMMON=(--dataset mvtec --data-root "$DATA" --category bottle --backbone efficientnet_lite0 --resolution 224
        --shots 1 --seeds "${SEEDS:-0}" --threads 1 --surrogate score --calib platt --eps 2/255,8/255 --out "$OUT")
NOISY=(--defense gaussian,smoothing --opt defense.gaussian.samples=4 --opt defense.smoothing.samples=4)

deterministic() {  # adaptive: BPDA through jpeg and bitdepth, exact gradients through median and blur
    .venv/bin/robustad bench "${COMMON[@]}" --defense none,jpeg,bitdepth,median,blur \
        --attack fgsm,pgd,square,worstcase --opt attack.worstcase.members=noise+fgsm+pgd+square \
        --opt attack.square.queries=20
}
randomized() {  # adaptive: EOT 4 through the noise
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack fgsm,pgd --eot 4
}
naive() {  # no BPDA through jpeg and bitdepth, one draw per step through the noise
    .venv/bin/robustad bench "${COMMON[@]}" --defense jpeg,bitdepth --attack fgsm,pgd --bpda off
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack fgsm,pgd --eot 1
}
gradient_free() {  # Square (20 queries) sees the defended score itself: is it EOT, or the defense, that holds?
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack square --eot 4 --opt attack.square.queries=20
}
apgd() {  # Auto-PGD (20 steps) where PGD-10 leaves something: none, median and blur are at 0.000 at 2/255 already
    .venv/bin/robustad bench "${COMMON[@]}" --defense jpeg,bitdepth --attack apgd:20
}
apgd_randomized() {  # the same through the noise with EOT 4: about an hour a seed here
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack apgd:20 --eot 4
}
worstcase_randomized() {  # the deterministic part's per-image worst case through the noise (EOT 4): an hour a seed
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack worstcase --eot 4 \
        --opt attack.worstcase.members=noise+fgsm+pgd+square --opt attack.square.queries=20
}
standard() {  # the AutoAttack-grade reference (apgd:100 with ce and margin, square:1000, the clean image; EOT 16)
    .venv/bin/robustad bench "${COMMON[@]}" --defense none,jpeg,bitdepth,median,blur --attack standard
    .venv/bin/robustad bench "${COMMON[@]}" "${NOISY[@]}" --attack standard
}
for part in "${parts[@]}"; do
    "$part"
done
