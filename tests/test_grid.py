"""Grid expansion, cell keys and prefix grouping."""

from robustad.engine.grid import Cell, expand, group_by_model_prefix


def grid(**overrides):
    settings = dict(
        datasets={"demo": ["weave", "disc"]}, shots=["1"], seeds=[0, 1], backbones=["b"], weights="",
        resolutions=[64], detectors=["anomalydino"], surrogates=["linear", "score"], attacks=["fgsm", "pgd"],
        eps=["2/255", "8/255"], calibrators=["platt", "none"], calib_fraction=0.3, options={},
    )
    settings.update(overrides)
    return expand(**settings)


def test_cross_product_size_and_unique_keys():
    cells = grid()
    assert len(cells) == 2 * 2 * (2 * 2 * 2) * 2
    assert len({c.key for c in cells}) == len(cells)


def test_attack_none_collapses_surrogate_and_eps():
    cells = grid(attacks=["none"])
    assert len(cells) == 2 * 2 * 2
    assert {(c.surrogate, c.eps) for c in cells} == {("none", "")}


def test_cells_sharing_a_model_prefix_are_one_group_in_order():
    cells = grid()
    groups = group_by_model_prefix(cells)
    assert len(groups) == 4  # 2 categories x 2 seeds
    assert sum(len(g) for g in groups) == len(cells)
    for group in groups:
        assert len({c.model_prefix for c in group}) == 1


def test_calibrator_options_do_not_split_the_model_prefix():
    cells = grid(options={("calibrator", "platt"): {"max_iter": 5}, ("backbone", "b"): {"depth": 2}})
    groups = group_by_model_prefix(cells)
    assert len(groups) == 4
    platt = next(c for c in cells if c.calibrator == "platt")
    none = next(c for c in cells if c.calibrator == "none" and c.model_prefix == platt.model_prefix)
    assert platt.key != none.key and '"calibrator.platt": {"max_iter": 5}' in platt.options


def test_key_is_stable_across_runs():
    cell = Cell("demo", "weave", "1", 0, "b", "", 64, "anomalydino", "score", "pgd", "2/255", "platt", 0.3)
    assert cell.key == Cell(**{f: getattr(cell, f) for f in cell.__dataclass_fields__}).key
    assert len(cell.key) == 16 and cell.key != Cell("demo", "weave", "1", 1, "b", "", 64, "anomalydino",
                                                    "score", "pgd", "2/255", "platt", 0.3).key


def test_torchattacks_options_apply_to_every_named_class():
    cells = grid(attacks=["torchattacks:MIFGSM"], options={("attack", "torchattacks"): {"decay": 0.5}})
    assert all('"attack.torchattacks": {"decay": 0.5}' in c.options for c in cells)
