"""Every attack kind (through a worst case), every calibrator and the pixel metrics on the new detectors."""

from __future__ import annotations

import pytest

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import PluginRegistry, get_registry
from tests.test_patchcore import StagesPlugin
from tests.test_subspacead import BlocksPlugin

BACKBONES = {"patchcore": "tiny_stages", "subspacead": "tiny_blocks"}
QUICK = ["attack.apgd.steps=3", "attack.square.queries=5", "attack.pgd.steps=3", "detector.subspacead.augmentations=1"]


@pytest.mark.parametrize("detector", sorted(BACKBONES))
def test_worst_case_of_every_attack_and_every_calibrator_run_on_the_detector(tmp_path, detector):
    registry: PluginRegistry = get_registry()
    for name, plugin in (("tiny_stages", StagesPlugin), ("tiny_blocks", BlocksPlugin)):
        if not registry.pm.has_plugin(name):
            registry.add(plugin(), name)
    options = [option for option in QUICK if not option.startswith("detector.") or detector in option]
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="1", seeds="0",
                      backbone=BACKBONES[detector], weights="", resolution="32", detector=detector,
                      surrogate="score", attack="worstcase", eps="8/255",
                      calib="platt,isotonic,temperature,none", calib_fraction=0.3, options=options)
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=True), tmp_path / "board.csv",
                       registry, SilentReporter(), lambda cell, row: None)
    assert sorted(row["calibrator"] for row in result.written) == ["isotonic", "none", "platt", "temperature"]
    for row in result.written:
        assert row["adv_auroc"] <= row["clean_auroc"] and 0 <= row["adv_ece"] <= 1
        assert 0 <= row["adv_pixel_auroc"] <= 1
