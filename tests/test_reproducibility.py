"""A row depends on the experiment only: not on the batch size, the executor or the order of images
(docs/protocol.md section 9)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import robustad
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


RUNS = {1: (("b1", 1, "local"), ("b8", 8, "local"), ("ray", 8, "ray")),
        4: (("b1", 1, "local"), ("b3", 3, "local"), ("b8", 8, "local"), ("ray", 8, "ray"))}


@pytest.mark.integration
@pytest.mark.parametrize("chunk", sorted(RUNS))
def test_rows_are_identical_at_any_batch_size_and_on_ray(mvtec_root, tmp_path, chunk):
    """Bottle, efficientnet_lite0 (128 px, to keep the suite short), 1-shot seed 0, white-box PGD-10 and the
    noise control at 8/255, Platt: at chunk 1 (one image per model call) and at chunk 4 (batch sizes that are not
    multiples of it included), every batch size and a Ray task give the same rows; the chunk is in the key."""
    request = bottle_request(dataset="mvtec", data_root=mvtec_root, resolution="128", surrogate="score",
                             attack="noise,pgd", eps="8/255", calib="platt", chunk=chunk)
    registry = get_registry()
    cells = build_cells(request, registry)
    assert {cell.chunk for cell in cells} == {chunk}
    assert all(cell.key != replace(cell, chunk=chunk + 1).key for cell in cells)  # the chunk is in the key
    rows = {}
    for name, batch_size, executor in RUNS[chunk]:
        settings = RunSettings(data_root=mvtec_root, batch_size=batch_size, threads=1, pixel_metrics=False,
                               resamples=200, executor=executor)
        out = tmp_path / f"{name}.csv"
        run = run_ray if executor == "ray" else run_local
        result = run(cells, settings, out, registry, SilentReporter(), lambda cell, row: None)
        assert not result.failures, result.failures
        rows[name] = {row["cell_hash"]: row for row in read_rows(out)}
    first, *others = (name for name, _, _ in RUNS[chunk])
    assert len(rows[first]) == 2 and all(rows[first].keys() == rows[other].keys() for other in others)
    for key, row in rows[first].items():
        assert row["chunk"] == str(chunk)
        assert row["adv_auroc"] and float(row["adv_auroc"]) < float(row["clean_auroc"])
        for other in others:
            different = {c for c in COLUMNS if c not in VOLATILE and rows[other][key][c] != row[c]}
            assert not different, (other, {c: (row[c], rows[other][key][c]) for c in sorted(different)})


def test_frozen_clean_masks_follow_their_images_into_any_batch(tmp_path):
    """White-box PGD with the clean images' foreground masks held fixed (``score:frozen``, masking on) on the demo
    set: each image's logit gets its own mask, so batches of 1 and 4 at chunk 1, and 2 and 5 at chunk 2, give
    rows that succeed and agree within each chunk (before chunks, a batch above 1 handed one image the whole
    batch's masks, and the detector refused them)."""
    grid = dict(dataset="demo", category="weave", resolution="64", attack="pgd:3", surrogate="score:frozen",
                eps="8/255", calib="platt", resamples=0, threads=1, pixel_metrics=False, noise_control=False,
                options={"detector.anomalydino.masking": "on"})
    rows = {}
    for chunk, batch_size in ((1, 1), (1, 4), (2, 2), (2, 5)):
        result = robustad.bench(**grid, chunk=chunk, batch_size=batch_size, out=tmp_path / f"{chunk}-{batch_size}.csv")
        assert not result.failures, result.failures
        [row] = read_rows(tmp_path / f"{chunk}-{batch_size}.csv")
        rows[chunk, batch_size] = row
    assert float(rows[1, 1]["adv_auroc"]) < float(rows[1, 1]["clean_auroc"])
    for (chunk, batch_size), row in rows.items():
        first = rows[chunk, chunk]
        different = {c for c in COLUMNS if c not in VOLATILE and row[c] != first[c]}
        assert not different, ((chunk, batch_size), {c: (first[c], row[c]) for c in sorted(different)})
