"""A row depends on the experiment only: not on the batch size, the executor or the order of images
(docs/protocol.md section 9)."""

from __future__ import annotations

import pytest

from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.ray_executor import run_ray
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry
from robustad.results.leaderboard import read_rows
from robustad.results.schema import COLUMNS
from tests.conftest import bottle_request

# Everything but timings, timestamps and where the row was computed must be equal, bit for bit.
VOLATILE = {"timestamp", "device"} | {c for c in COLUMNS if c.startswith("t_")}


@pytest.mark.integration
def test_rows_are_identical_at_any_batch_size_and_on_ray(mvtec_root, tmp_path):
    """Bottle, efficientnet_lite0 (128 px, to keep the suite short), 1-shot seed 0, white-box PGD-10 and the
    noise control at 8/255, Platt: batch size 1, batch size 8 and a Ray task give the same rows."""
    request = bottle_request(datasets="mvtec", data_root=mvtec_root, resolutions="128", surrogates="score",
                             attacks="noise,pgd", eps="8/255", calibrators="platt")
    registry = get_registry()
    cells = build_cells(request, registry)
    rows = {}
    for name, batch_size, executor in (("b1", 1, run_local), ("b8", 8, run_local), ("ray", 8, run_ray)):
        settings = RunSettings(data_root=mvtec_root, batch_size=batch_size, threads=1, pixel_metrics=False,
                               resamples=200, executor="ray" if executor is run_ray else "local")
        out = tmp_path / f"{name}.csv"
        result = executor(cells, settings, out, registry, SilentReporter(), lambda cell, row: None)
        assert not result.failures, result.failures
        rows[name] = {row["cell_hash"]: row for row in read_rows(out)}
    assert len(rows["b1"]) == 2 and rows["b1"].keys() == rows["b8"].keys() == rows["ray"].keys()
    for key, row in rows["b1"].items():
        assert row["adv_auroc"] and float(row["adv_auroc"]) < float(row["clean_auroc"])
        for other in ("b8", "ray"):
            different = {c for c in COLUMNS if c not in VOLATILE and rows[other][key][c] != row[c]}
            assert not different, (other, {c: (row[c], rows[other][key][c]) for c in sorted(different)})
