"""Attack flags: the built-in statistics against scipy and brute force, each flag's calib threshold against an
independent order statistic, the rows' flag columns against the saved per-image values, and keys of default cells."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from robustad_plugins.flags import Consistency, Entropy, Squeeze, median_filter
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from robustad import metrics
from robustad.contracts import FlagView
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.plugins import PluginRegistry, get_registry
from tests.test_runner import CountingPlugin


def demo_request(**changes: object) -> Request:
    fields = dict(dataset="demo", data_root=None, category="disc", shots="1", seeds="0", backbone="counting",
                  weights="", resolution="32", detector="anomalydino", surrogate="score", attack="fgsm",
                  eps="8/255", calib="platt", calib_fraction=0.3, options=[])
    return Request(noise_control=False, **{**fields, **changes})


@pytest.fixture
def registry() -> PluginRegistry:
    registry = get_registry()
    if not registry.pm.has_plugin("counting"):
        registry.add(CountingPlugin(), "counting")
    return registry


def test_registered_through_the_entry_point():
    registry = PluginRegistry()
    registry.load_entry_points({"flags"})
    assert sorted(registry.components("flag")) == ["consistency", "entropy", "squeeze"]


def test_entropy_is_the_binary_entropy_in_nats():
    p = np.array([0.0, 1e-9, 0.1, 0.5, 0.9, 1.0])
    expected = -np.array([0.0 if q in (0, 1) else q * math.log(q) + (1 - q) * math.log(1 - q) for q in p])
    values = Entropy().statistic(FlagView(scores=torch.zeros(6), probs=torch.as_tensor(p)))
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_median_filter_of_odd_size_matches_scipy():
    images = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = ndimage.median_filter(images.numpy(), size=(1, 1, 3, 3), mode="mirror")
    np.testing.assert_allclose(median_filter(images, 3).numpy(), expected, rtol=0, atol=0)


def test_median_filter_of_size_two_is_the_lower_median_of_each_window():
    image = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    padded = np.pad(image[0, 0].numpy(), ((0, 1), (0, 1)), mode="reflect")
    expected = np.array([[sorted(padded[i:i + 2, j:j + 2].ravel())[1] for j in range(5)] for i in range(4)])
    np.testing.assert_allclose(median_filter(image, 2)[0, 0].numpy(), expected, rtol=0, atol=0)


def test_bit_squeezing_is_the_score_change_and_passes_the_gradient_straight_through():
    images = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weights = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def score(x):
        return (x * weights).sum(dim=(1, 2, 3))

    squeezed = np.round(images.numpy() * 7) / 7
    expected = np.abs(score(images).numpy() - (squeezed * weights.numpy()).sum(axis=(1, 2, 3)))
    flag = Squeeze(squeezer="bits", bits=3)
    x = images.clone().requires_grad_(True)
    values = flag.statistic(FlagView(scores=score(x), images=x, score=score))
    np.testing.assert_allclose(values.detach().numpy(), expected, rtol=1e-12)
    (gradient,) = torch.autograd.grad(values.sum(), x)
    assert float(gradient.abs().max()) == 0.0  # straight through: d s(x)/dx - d s(x)/dx for a linear score


def test_consistency_is_the_spread_of_a_linear_score_under_noise():
    """For s(x) = mean(x) away from the clip, s(x + sigma n) - s(x) = sigma mean(n): a spread of sigma/sqrt(P)."""
    images = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)

    def score(x):
        return x.mean(dim=(1, 2, 3))

    flag = Consistency(draws=400, sigma=0.01)
    values = flag.statistic(FlagView(scores=score(images), images=images, score=score, seeds=[5, 6])).numpy()
    np.testing.assert_allclose(values, 0.01 / math.sqrt(3 * 64), rtol=0.1)
    again = flag.statistic(FlagView(scores=score(images), images=images, score=score, seeds=[5, 7])).numpy()
    assert values[0] == again[0] and values[1] != again[1]  # draws follow the image's seed, not the batch


@pytest.mark.parametrize("n", [5, 24, 57, 200])
@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.1, 0.3])
def test_a_threshold_flags_at_most_fpr_of_calib(n, fpr):
    values = np.round(np.random.default_rng(n).normal(size=n), 1)  # rounded: ties
    threshold = metrics.statistic_threshold(values, fpr)
    assert threshold == sorted(values)[math.ceil((1 - fpr) * (n - 1))]  # numpy's "higher" order statistic
    assert np.mean(values > threshold) <= fpr


@pytest.mark.parametrize("fpr", [0.05, 0.2])
def test_row_flag_columns_match_the_saved_flag_values(registry, tmp_path, fpr):
    request = demo_request(flag="entropy,squeeze:bits,consistency", flag_fpr=fpr)
    result = run_local(build_cells(request, registry),
                       RunSettings(pixel_metrics=False, resamples=0, save_scores=tmp_path / "scores"),
                       tmp_path / "board.csv", registry, SilentReporter(), lambda cell, row: None)
    assert not result.failures
    rows = {row["flag"]: row for row in result.written}
    assert sorted(rows) == ["consistency", "entropy", "squeeze:bits"]
    for flag, row in rows.items():
        saved = pd.read_csv(tmp_path / "scores" / f"{row['cell_hash']}.csv")
        calib, evaluated = saved[saved.split == "calib"], saved[saved.split == "eval"]
        values = calib.clean_flag.to_numpy()
        n = values.size
        assert row["flag_fpr"] == fpr
        assert row["flag_threshold"] == sorted(values)[math.ceil((1 - fpr) * (n - 1))], flag
        assert np.mean(values > row["flag_threshold"]) <= fpr
        adv, clean = evaluated.adv_flag.to_numpy(), evaluated.clean_flag.to_numpy()
        flagged = adv > row["flag_threshold"]
        labels = evaluated.label.to_numpy()
        wrong = (evaluated.adv_prob.to_numpy() >= 0.5) != (labels == 1)
        assert row["flag_tpr"] == pytest.approx(flagged.mean())
        assert row["evasion_rate"] == pytest.approx(np.mean(wrong & ~flagged))
        assert row["flag_auroc"] == pytest.approx(roc_auc_score(np.repeat([0, 1], adv.size),
                                                                np.concatenate([clean, adv])))
    entropy = rows["entropy"]  # today's columns, from the probabilities alone
    saved = pd.read_csv(tmp_path / "scores" / f"{entropy['cell_hash']}.csv")
    calib, evaluated = saved[saved.split == "calib"], saved[saved.split == "eval"]
    assert entropy["flag_threshold"] == pytest.approx(metrics.flag_threshold(calib.clean_prob, 1 - fpr), abs=1e-15)
    assert entropy["flag_auroc"] == pytest.approx(metrics.flag_auroc(evaluated.clean_prob, evaluated.adv_prob))
    if fpr == 0.05:
        assert entropy["flag_tpr"] == metrics.flag_tpr(evaluated.adv_prob, metrics.flag_threshold(calib.clean_prob))
        assert entropy["evasion_rate"] == metrics.evasion_rate(evaluated.label, evaluated.adv_prob,
                                                               metrics.flag_threshold(calib.clean_prob))


def test_default_cells_keep_the_keys_they_had_before_flags(registry):
    [cell] = build_cells(demo_request(attack="pgd"), registry)
    options = json.loads(cell.options)
    assert not any(key.startswith("flag.") for key in options)
    assert "flag_aware" not in options["attack.pgd"] and "flag_posterior" not in options["attack.pgd"]
    [squeeze] = build_cells(demo_request(attack="pgd", flag="squeeze"), registry)
    [aware] = build_cells(demo_request(attack="pgd", options=["attack.pgd.flag_aware=squeeze"]), registry)
    assert len({cell.key, squeeze.key, aware.key}) == 3
    assert json.loads(aware.options)["flag.squeeze"] == {"squeezer": "median", "size": 2, "bits": 5}


@pytest.mark.parametrize("changes, message", [
    ({"flag": "nosuch"}, "unknown flag 'nosuch'"),
    ({"flag_fpr": 0.0}, "--flag-fpr 0.0: expected a number in (0, 1)"),
    ({"flag_fpr": 1.0}, "--flag-fpr 1.0: expected a number in (0, 1)"),
    ({"flag": "squeeze:blur"}, "option squeezer='blur': expected one of median, bits"),
    ({"attack": "pgd", "options": ["attack.pgd.flag_aware=nosuch"]}, "unknown flag 'nosuch'"),
    ({"options": ["flag.squeeze.bits=4"]}, "--opt names flag 'squeeze', which this run does not use"),
    ({"attack": "pgd", "options": ["attack.pgd.flag_aware=entropy", "attack.pgd.flag_posterior=nosuch"]},
     "unknown calibrator 'nosuch'"),
])
def test_bad_flag_settings_are_one_line_before_any_work(registry, changes, message):
    with pytest.raises(RobustadError) as error:
        build_cells(demo_request(**changes), registry)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_documented_flag_registers_and_is_the_score_change_under_a_box_blur():
    import re
    from pathlib import Path

    from robustad.components import Component

    guide = (Path(__file__).parents[1] / "docs" / "writing-a-plugin.md").read_text()
    [source] = [b for b in re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL) if "register_flags" in b]
    namespace: dict = {"__name__": "robustad_blur", "hookimpl": __import__("robustad").hookimpl}
    exec(compile(source, "writing-a-plugin.md", "exec"), namespace)  # noqa: S102 - our own documentation
    flag = Component.from_class("flag", namespace["Blur"], "blur", "robustad-blur").create()
    images = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    weights = torch.rand(3, 6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def score(x):
        return (x * weights).sum(dim=(1, 2, 3))

    blurred = ndimage.uniform_filter(images.numpy(), size=(1, 1, 3, 3), mode="nearest")
    expected = np.abs(score(images).numpy() - (blurred * weights.numpy()).sum(axis=(1, 2, 3)))
    values = flag.statistic(FlagView(scores=score(images), images=images, score=score))
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-10)


def test_a_flag_row_does_not_depend_on_the_other_flags_of_the_run(registry, tmp_path):
    """Each flag is evaluated with its own options, whichever cell of the attack group comes first."""
    def squeeze_row(flags: str, out: str) -> dict:
        result = run_local(build_cells(demo_request(flag=flags), registry),
                           RunSettings(pixel_metrics=False, resamples=0, save_scores=tmp_path / out),
                           tmp_path / f"{out}.csv", registry, SilentReporter(), lambda cell, row: None)
        [row] = [row for row in result.written if row["flag"] == "squeeze:bits"]
        return row

    alone, beside = squeeze_row("squeeze:bits", "alone"), squeeze_row("entropy,squeeze:bits", "beside")
    assert alone["cell_hash"] == beside["cell_hash"]
    for column in ("flag_threshold", "flag_auroc", "flag_tpr", "evasion_rate"):
        assert alone[column] == beside[column], column
    saved = [pd.read_csv(tmp_path / out / f"{alone['cell_hash']}.csv") for out in ("alone", "beside")]
    np.testing.assert_array_equal(saved[0].adv_flag.to_numpy(), saved[1].adv_flag.to_numpy())


def test_rows_from_before_flags_read_as_the_entropy_flag_at_five_percent(tmp_path):
    from robustad.results.frame import load_rows
    from tests.boards import row, write_board

    old, new = row(seed=0), row(seed=1, flag="squeeze", flag_fpr=0.1)
    rows = load_rows(write_board(tmp_path / "board.csv", [old, new]), [])
    assert rows.set_index("seed")[["flag", "flag_fpr"]].to_dict("index") == {
        "0": {"flag": "entropy", "flag_fpr": "0.05"}, "1": {"flag": "squeeze", "flag_fpr": "0.1"}}


@pytest.mark.parametrize("args, names", [
    (["--flag-fpr", "1.5"], ["--flag-fpr 1.5", "expected a number in (0, 1)"]),
    (["--flag", "entropy,nosuch"], ["unknown flag 'nosuch'"]),
])
def test_bad_flag_options_on_the_command_line_are_one_line_and_exit_2(monkeypatch, capsys, tmp_path, args, names):
    from tests.boards import run_robustad
    from tests.test_one_line_errors import one_error_line

    code, _, err = run_robustad(monkeypatch, capsys, "bench", "--attack", "none", "--calib", "platt",
                                "--resolution", "32", "--out", tmp_path / "board.csv", *args)
    one_error_line(code, err, *names)
