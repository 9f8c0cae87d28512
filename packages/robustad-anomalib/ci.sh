#!/usr/bin/env bash
# The robustad-anomalib plugin's tests, in a virtual environment of their own: anomalib 2.7.0 pins what robustad's
# environment cannot share, so it gets robustad and this package installed beside it as a third party would.
# Cost measured on 2 shared CPU cores: building the environment about 5.5 min (anomalib and torch 3.3 min from the
# local package index, robustad's own dependencies 2.3 min), once per machine (kept in .venv-anomalib); the tests
# then take 28 s (10 tests; 5 min under a load average of 15 from other jobs), 59 s for 13 under a load of about 5.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ROBUSTAD_ANOMALIB_VENV:-$root/.venv-anomalib}"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 anomalib==2.7.0 open_clip_torch pytest
    "$venv/bin/python" -m pip install -q -e "$root"
    touch "$venv/.installed"
fi
"$venv/bin/python" -m pip install -q --no-deps -e "$here"
cd "$here"
"$venv/bin/python" -m pytest -q tests
