"""Real images of many sizes and aspect ratios: every stage runs at any batch size and gives the same rows."""

from __future__ import annotations

import pytest
from PIL import Image

from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry
from robustad.results.leaderboard import read_rows
from robustad.results.schema import COLUMNS
from tests.conftest import bottle_request

SIZES = [(96, 96), (128, 96), (96, 136), (80, 144), (112, 104), (152, 88)]  # (width, height): 6 aspect ratios
VOLATILE = {"timestamp"} | {c for c in COLUMNS if c.startswith("t_")}


def mixed_size_bottle(source, target):
    """The bottle category as a ``folder`` dataset whose images come in six sizes (masks resized alike)."""
    def copy(path, destination, size, resample):
        destination.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).resize(size, resample).save(destination)

    for i, path in enumerate(sorted((source / "train" / "good").glob("*.png"))[:2]):
        copy(path, target / "train" / "good" / path.name, SIZES[i], Image.Resampling.BICUBIC)
    goods = sorted((source / "test" / "good").glob("*.png"))[:12]
    defects = sorted((source / "test" / "broken_large").glob("*.png"))[:12]
    for i, path in enumerate(goods):
        copy(path, target / "test" / "good" / path.name, SIZES[i % len(SIZES)], Image.Resampling.BICUBIC)
    for i, path in enumerate(defects):
        size = SIZES[(i + 3) % len(SIZES)]
        copy(path, target / "test" / "broken_large" / path.name, size, Image.Resampling.BICUBIC)
        mask = source / "ground_truth" / "broken_large" / f"{path.stem}_mask.png"
        copy(mask, target / "ground_truth" / "broken_large" / mask.name, size, Image.Resampling.NEAREST)


@pytest.mark.integration
def test_the_full_grid_runs_on_mixed_sizes_with_the_same_rows_at_any_batch_size(mvtec_root, tmp_path):
    root = tmp_path / "data"
    mixed_size_bottle(mvtec_root / "bottle", root / "bottle")
    request = bottle_request(dataset="folder", data_root=root, resolution="64", surrogate="linear,score",
                             attack="fgsm,pgd", eps="8/255", calib="platt")
    registry = get_registry()
    cells = build_cells(request, registry)
    rows = {}
    for batch_size in (8, 1):
        out = tmp_path / f"b{batch_size}.csv"
        result = run_local(cells, RunSettings(data_root=root, batch_size=batch_size, threads=1, resamples=100),
                           out, registry, SilentReporter(), lambda cell, row: None)
        assert not result.failures, result.failures
        rows[batch_size] = {row["cell_hash"]: row for row in read_rows(out)}
    assert len(rows[8]) == len(cells) == 4
    for key, row in rows[8].items():
        assert all(row[c] != "" for c in ("adv_auroc", "adv_ece", "adv_pixel_auroc", "adv_aupro")), row["attack"]
        print(f"{row['attack']} via {row['surrogate']}: clean AUROC {float(row['clean_auroc']):.3f}, "
              f"adversarial {float(row['adv_auroc']):.3f}")
        for column in COLUMNS:
            if column.startswith("clean_") and row[column]:
                assert float(rows[1][key][column]) == pytest.approx(float(row[column]), abs=1e-6), column
        different = {c for c in COLUMNS if c not in VOLATILE and rows[1][key][c] != row[c]}
        assert not different, different
