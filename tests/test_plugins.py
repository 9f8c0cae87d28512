"""The plugin manager: entry points, third-party distributions, broken plugins, the CLI listing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from robustad import AttackTarget, hookspecs
from robustad.components import KINDS
from robustad.errors import RobustadError
from robustad.plugins import PluginRegistry, get_registry, reset_registry
from robustad.records import DetectorOutput
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
DISTRIBUTION = "robustad-thirdparty"


@pytest.fixture
def third_party(tmp_path, monkeypatch) -> Path:
    """A throwaway installed distribution: a ``*.dist-info`` with entry points, on ``sys.path``."""
    (tmp_path / "third_party_plugin.py").write_text((FIXTURES / "third_party_plugin.py").read_text())
    (tmp_path / "exploding_plugin.py").write_text("raise ImportError('needs libfoo >= 2')\n")
    (tmp_path / "duplicate_plugin.py").write_text(
        "from robustad.hookspecs import hookimpl\n"
        "from third_party_plugin import HalfCalibrator\n\n"
        "class Half(HalfCalibrator):\n    description = 'a second calibrator called half'\n\n"
        "@hookimpl\ndef register_calibrators(register):\n    register(Half)\n"
    )
    info = tmp_path / "robustad_thirdparty-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[robustad]\nthirdparty = third_party_plugin\nexploding = exploding_plugin\n"
        "duplicate = duplicate_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def third_party_registry() -> PluginRegistry:
    registry = PluginRegistry()
    registry.load_entry_points({"thirdparty", "exploding", "duplicate"})
    return registry


def test_hook_register_datasets(third_party):
    component = third_party_registry().get("dataset", "one_image")
    assert component.distribution == DISTRIBUTION
    data = component.create(copies=3).load(None, "only")
    assert len(data.train) == 3 and [s.label for s in data.test] == [0, 1]


def test_hook_register_backbones(third_party):
    backbone = third_party_registry().get("backbone", "mean_colour").create()
    features = backbone(torch.ones(1, 3, 4, 6) * 0.25)
    assert features.patch_tokens.shape == (1, 2, 3, 3)
    assert torch.allclose(features.global_token, torch.full((1, 3), 0.25))


def test_hook_register_detectors(third_party):
    registry = third_party_registry()
    backbone = registry.get("backbone", "mean_colour").create()
    detector = registry.get("detector", "brightness").create(backbone, 4, "only", gain=2.0)
    output = detector.score(backbone(torch.full((2, 3, 4, 4), 0.5)))
    assert isinstance(output, DetectorOutput)
    np.testing.assert_allclose(output.scores, [1.0, 1.0])


def test_hook_register_surrogates(third_party):
    surrogate = third_party_registry().get("surrogate", "constant").create(scale=0.5)
    assert float(surrogate.logit_model(None)(torch.ones(1, 3, 2, 2))[0]) == 6.0


def test_hook_register_attacks(third_party):
    attack = third_party_registry().get("attack", "shift").create(sign=-1)
    images = torch.full((1, 3, 2, 2), 0.5)
    target = AttackTarget(images=images, labels=torch.zeros(1, dtype=torch.int64), eps=0.125, seeds=[0], model=None,
                          score=lambda x: x.mean(dim=(1, 2, 3)))
    adv = attack.perturb(target)
    assert torch.allclose(adv, torch.full_like(adv, 0.375))


def test_hook_register_calibrators(third_party):
    calibrator = third_party_registry().get("calibrator", "half").create(value=0.25)
    assert calibrator.fit(np.zeros(3), np.zeros(3)).predict(np.zeros(2)).tolist() == [0.25, 0.25]


def test_hook_register_defenses(third_party):
    defense = third_party_registry().get("defense", "invert").create()
    images = torch.full((1, 3, 2, 2), 0.25)
    assert torch.equal(defense.transform(images, None), torch.full_like(images, 0.75))


def test_hook_register_flags(third_party):
    from robustad import FlagView

    flag = third_party_registry().get("flag", "bright").create()
    images = torch.full((2, 3, 2, 2), 0.25)
    assert flag.statistic(FlagView(scores=torch.zeros(2), images=images)).tolist() == [0.25, 0.25]


def test_plugin_hooks_have_tests():
    """Every hookspec has a ``test_hook_<name>`` in this module (datasette's meta-test)."""
    specs = {name for name in dir(hookspecs) if name.startswith("register_")}
    assert specs == {f"register_{kind}s" for kind in KINDS}
    missing = [name for name in specs if f"test_hook_{name}" not in globals()]
    assert not missing, f"hooks without a test: {missing}"


def test_import_error_marks_plugin_broken_with_its_distribution(third_party):
    registry = third_party_registry()
    broken = {b.plugin: b for b in registry.broken}
    assert broken["exploding"].distribution == DISTRIBUTION
    assert "needs libfoo >= 2" in broken["exploding"].error
    assert "\n" not in broken["exploding"].message()
    assert registry.get("calibrator", "half").plugin == "thirdparty"  # the others still work


def test_duplicate_name_marks_later_plugin_broken(third_party):
    registry = third_party_registry()
    registry.components("calibrator")
    broken = {b.plugin: b.error for b in registry.broken}
    assert "calibrator 'half' is already registered by plugin 'thirdparty'" in broken["duplicate"]
    assert registry.get("calibrator", "half").description == "p = 0.5"


def test_unknown_name_is_one_line_error_listing_choices(third_party):
    with pytest.raises(RobustadError, match=r"unknown calibrator 'platt2'; choose from: .*half"):
        third_party_registry().get("calibrator", "platt2")


def test_unknown_option_is_rejected(third_party):
    component = third_party_registry().get("calibrator", "half")
    with pytest.raises(RobustadError, match="has no option 'bogus'; options: value"):
        component.create(bogus=1)
    assert component.option("value").parse("0.75") == 0.75
    with pytest.raises(RobustadError, match=r"value='x': expected float"):
        component.option("value").parse("x")


def test_environment_variable_restricts_loading(monkeypatch):
    monkeypatch.setenv("ROBUSTAD_LOAD_PLUGINS", "")
    reset_registry()
    try:
        registry = get_registry()
        assert all(not registry.components(kind) for kind in KINDS)
        assert get_registry() is registry  # loaded once
    finally:
        reset_registry()


def _builtin_entry_points() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(project["project"]["entry-points"]["robustad"])


def test_cli_lists_builtins_third_party_and_broken(third_party):
    env = {"PYTHONPATH": os.pathsep.join([str(third_party), os.environ.get("PYTHONPATH", "")])}
    env.pop("ROBUSTAD_LOAD_PLUGINS", None)
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    healthy = {c["plugin"] for c in listing["components"]}
    assert _builtin_entry_points() <= healthy
    assert {c["distribution"] for c in listing["components"] if c["plugin"] in _builtin_entry_points()} == {"robustad"}
    assert {"one_image", "half"} <= {c["name"] for c in listing["components"]}
    assert {b["plugin"] for b in listing["broken"]} == {"exploding", "duplicate"}


def test_cli_table_groups_by_kind():
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    for name in ("anomalydino", "efficientnet_lite0", "platt", "pgd", "mvtec"):
        assert name in result.stdout


@pytest.mark.parametrize("args, message", [
    (["frobnicate"], "No such command 'frobnicate'"),
    (["plugins", "--bogus"], "No such option: --bogus"),
])
def test_usage_errors_exit_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("robustad ")


def test_writing_a_plugin_example_works(tmp_path, monkeypatch):
    """The complete plugin in docs/writing-a-plugin.md registers and calibrates as the page says."""
    page = (REPO / "docs" / "writing-a-plugin.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "robustad_beta.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    import robustad_beta

    registry = PluginRegistry()
    registry.add(robustad_beta, "beta", "robustad-beta")
    component = registry.get("calibrator", "beta")
    assert component.distribution == "robustad-beta" and component.option("margin").default == 1e-3
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 400)
    labels = (rng.uniform(0, 1, 400) < scores).astype(int)
    probs = component.create().fit(scores, labels).predict(np.linspace(0, 1, 11))
    assert np.all((probs > 0) & (probs < 1)) and np.all(np.diff(probs) > 0)


def _install(tmp_path: Path, distribution: str, modules: dict[str, str]) -> None:
    """A throwaway installed distribution named ``distribution`` whose entry points are ``modules``."""
    for name, code in modules.items():
        (tmp_path / f"{name}.py").write_text(code)
    info = tmp_path / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[robustad]\n" + "".join(f"{n} = {n}\n" for n in modules))


IMPOSTOR = """
from robustad import hookimpl


class Platt:
    name = "platt"
    description = "not Platt scaling at all"

    def __init__(self) -> None:
        pass

    def fit(self, scores, labels):
        return self

    def predict(self, scores):
        return scores * 0 + 0.5


@hookimpl
def register_calibrators(register):
    register(Platt)
"""


def test_a_third_party_cannot_take_over_a_built_in_name(tmp_path, monkeypatch):
    _install(tmp_path, "robustad-impostor", {"impostor": IMPOSTOR})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = PluginRegistry()
    registry.load_entry_points({"impostor", "calibrators"})
    assert registry.get("calibrator", "platt").distribution == "robustad"
    assert {"platt", "isotonic", "temperature", "none"} <= set(registry.components("calibrator"))
    [broken] = registry.broken
    assert broken.plugin == "impostor" and broken.distribution == "robustad-impostor"
    assert "calibrator 'platt' is already registered by plugin 'calibrators' from robustad" in broken.error


def test_a_component_missing_a_contract_member_is_broken_naming_it(tmp_path, monkeypatch):
    fixture = (FIXTURES / "third_party_plugin.py").read_text()
    lacking = fixture.replace("def anomaly_map(self, patch_distances, size):",
                              "def _unused(self, patch_distances, size):")
    _install(tmp_path, "robustad-lacking", {"lacking_plugin": lacking})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = PluginRegistry()
    registry.load_entry_points({"lacking_plugin", "calibrators"})
    assert "brightness" not in registry.components("detector")
    [broken] = registry.broken
    assert broken.plugin == "lacking_plugin" and broken.distribution == "robustad-lacking"
    assert "detector 'brightness' lacks anomaly_map" in broken.error
    assert registry.get("calibrator", "platt").plugin == "calibrators"  # the others work
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    listing = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert any(b["plugin"] == "lacking_plugin" and "anomaly_map" in b["error"] for b in listing["broken"])


def test_load_variable_is_named_when_it_hides_a_component():
    result = run_cli("bench", "--attack", "none", env={"ROBUSTAD_LOAD_PLUGINS": "nonsense"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "ROBUSTAD_LOAD_PLUGINS='nonsense'" in result.stderr
