"""Grid expansion, cell keys and prefix grouping."""

import json

from robustad.engine.grid import Threat, expand, group_by_model_prefix, group_by_threat_prefix
from robustad.records import Cell

DEFAULTS = {("attack", "pgd"): {"steps": 10}, ("calibrator", "platt"): {}, ("backbone", "b"): {"depth": 1}}


def resolve(kind, spec):
    return dict(DEFAULTS.get((kind, spec), {}))


def grid(**overrides):
    settings = dict(
        datasets={"demo": {"weave": ("d1", ""), "disc": ("d2", "")}}, shots=["1"], seeds=[0, 1], backbones=["b"],
        resolutions=[64], detectors=["anomalydino"], surrogates=["linear", "score"],
        attacks={"fgsm": Threat(), "pgd": Threat()}, eps=["2/255", "8/255"], calibrators=["platt", "none"],
        resolve=resolve,
    )
    fixed = {"weights": "", "calib_fraction": 0.3, "precision": "fp32", "round_8bit": False}
    fixed.update({key: overrides.pop(key) for key in list(overrides) if key in fixed})
    settings.update(overrides)
    return expand(**settings, fixed=fixed)


def test_cross_product_size_and_unique_keys():
    cells = grid()
    assert len(cells) == 2 * 2 * (2 * 2 * 2) * 2
    assert len({c.key for c in cells}) == len(cells)


def test_attack_none_collapses_surrogate_and_eps():
    cells = grid(attacks={"none": Threat()})
    assert len(cells) == 2 * 2 * 2
    assert {(c.surrogate, c.eps, c.round_8bit) for c in cells} == {("none", "", False)}


def test_an_attack_without_surrogate_gets_one_cell_per_eps():
    cells = grid(attacks={"noise": Threat(needs_surrogate=False)}, calibrators=["platt"])
    assert {(c.surrogate, c.eps) for c in cells} == {("none", "2/255"), ("none", "8/255")}


def test_a_combined_attack_records_its_members_options():
    cells = grid(attacks={"worstcase": Threat(members=("noise", "pgd"))}, calibrators=["platt"])
    options = json.loads(cells[0].options)
    assert {"attack.worstcase", "attack.noise", "attack.pgd"} <= set(options)
    assert options["attack.pgd"] == {"steps": 10}


def test_cells_sharing_a_model_prefix_are_one_group_in_order():
    cells = grid()
    groups = group_by_model_prefix(cells)
    assert len(groups) == 4  # 2 categories x 2 seeds
    assert sum(len(g) for g in groups) == len(cells)
    for group in groups:
        assert len({c.model_prefix for c in group}) == 1
        threats = group_by_threat_prefix(group)
        assert len(threats) == 2 * 2  # surrogate x eps: fgsm and pgd attacked together
        assert all({c.attack for c in t} == {"fgsm", "pgd"} for t in threats)


def test_calibrator_options_do_not_split_the_model_prefix():
    DEFAULTS[("calibrator", "platt")] = {"max_iter": 5}
    try:
        cells = grid()
    finally:
        DEFAULTS[("calibrator", "platt")] = {}
    assert len(group_by_model_prefix(cells)) == 4
    platt = next(c for c in cells if c.calibrator == "platt")
    none = next(c for c in cells if c.calibrator == "none" and c.attack_prefix == platt.attack_prefix)
    assert platt.key != none.key and '"calibrator.platt": {"max_iter": 5}' in platt.options


def test_key_is_stable_and_covers_every_field():
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    assert cell.key == Cell(**{f: getattr(cell, f) for f in cell.__dataclass_fields__}).key
    assert len(cell.key) == 16
    for field, other in (("seed", 1), ("data_id", "other-data"), ("round_8bit", True), ("precision", "bf16")):
        assert Cell(**{**cell.__dict__, field: other}).key != cell.key, field


def test_data_digest_and_rounding_split_prefixes():
    a, b = grid(datasets={"demo": {"weave": ("d1", "")}}), grid(datasets={"demo": {"weave": ("d9", "")}})
    assert {c.key for c in a}.isdisjoint(c.key for c in b)
    rounded = grid(round_8bit=True)
    assert all(c.round_8bit for c in rounded)
    assert {c.threat_prefix for c in rounded}.isdisjoint(c.threat_prefix for c in grid())
