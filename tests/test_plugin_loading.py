"""Hostile plugins while loading: they can neither shadow a built-in, pass for robustad, nor stop the command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from robustad import interrupts
from robustad.plugins import PluginRegistry
from tests.conftest import run_cli

PLATT_IMPOSTOR = """
from robustad import hookimpl


class Platt:
    name = "platt"
    description = "not Platt scaling at all"

    def fit(self, scores, labels):
        return self

    def predict(self, scores):
        return scores * 0 + 0.5


@hookimpl{marker}
def register_calibrators(register):
    register(Platt)
"""


@pytest.fixture(autouse=True)
def forget_imported_plugins(tmp_path):
    """Each test imports its own plugin modules, which share names with other tests': drop them afterwards."""
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def install(folder: Path, distribution: str, modules: dict[str, str], entry_points: dict[str, str] | None = None
            ) -> Path:
    """A throwaway installed distribution ``distribution`` in ``folder``; its entry points name ``modules`` (or
    ``entry_points``: name -> module)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, code in modules.items():
        (folder / f"{name}.py").write_text(code)
    info = folder / f"{distribution}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    targets = entry_points or {name: name for name in modules}
    (info / "entry_points.txt").write_text("[robustad]\n" + "".join(f"{n} = {m}\n" for n, m in targets.items()))
    return folder


def registry_with(folder: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> PluginRegistry:
    monkeypatch.syspath_prepend(str(folder))
    registry = PluginRegistry()
    registry.load_entry_points({*names, "calibrators"})
    registry.components("calibrator")
    return registry


def listing(folder: Path, *names: str) -> dict:
    """``robustad plugins --json`` with ``folder`` on the path, loading only ``names`` and the calibrators."""
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           "ROBUSTAD_LOAD_PLUGINS": ",".join([*names, "calibrators"])}
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("marker", ["(trylast=True)", "(tryfirst=True)", ""])
def test_hook_ordering_cannot_take_a_built_in_name(tmp_path, monkeypatch, marker):
    folder = install(tmp_path, "robustad-impostor", {"impostor": PLATT_IMPOSTOR.format(marker=marker)})
    registry = registry_with(folder, monkeypatch, "impostor")
    assert registry.get("calibrator", "platt").plugin == "calibrators"
    assert {"platt", "isotonic", "temperature", "none"} <= set(registry.components("calibrator"))
    [broken] = registry.broken
    assert broken.plugin == "impostor" and broken.distribution == "robustad-impostor"
    assert "calibrator 'platt' is already registered by plugin 'calibrators' from robustad" in broken.error


@pytest.mark.parametrize("distribution", ["Robustad", "robustad", "ROBUSTAD", "RobustAD"])
def test_a_distribution_calling_itself_robustad_neither_hides_nor_passes_for_ours(tmp_path, distribution):
    folder = install(tmp_path, distribution, {"impostor": PLATT_IMPOSTOR.format(marker="")})
    found = listing(folder, "impostor")
    platt = [c for c in found["components"] if c["kind"] == "calibrator" and c["name"] == "platt"]
    assert [(c["plugin"], c["distribution"]) for c in platt] == [("calibrators", "robustad")]
    [broken] = found["broken"]
    assert broken["plugin"] == "impostor" and broken["distribution"] != "robustad"
    assert "not robustad's own" in broken["distribution"] and "already registered" in broken["error"]


def test_an_entry_point_of_ours_declared_again_elsewhere_loads_once(tmp_path):
    folder = install(tmp_path, "Robustad", {}, {"calibrators": "robustad_plugins.calibrators"})
    found = listing(folder)
    assert found["broken"] == []
    assert {c["distribution"] for c in found["components"]} == {"robustad"}


@pytest.mark.parametrize("code, message", [
    ("raise SystemExit(0)\n", "SystemExit: 0"),
    ("raise SystemExit('bye')\n", "SystemExit: bye"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("raise GeneratorExit\n", "GeneratorExit"),
])
def test_a_plugin_that_exits_while_imported_is_broken_not_the_command(tmp_path, code, message):
    folder = install(tmp_path, "robustad-exits", {"exits": code})
    found = listing(folder, "exits")
    assert [(b["plugin"], b["error"]) for b in found["broken"]] == [("exits", message)]
    assert "platt" in {c["name"] for c in found["components"]}


REGISTER_EXITS = """
from robustad import hookimpl


@hookimpl
def register_calibrators(register):
    raise SystemExit(0)
"""


def test_a_plugin_that_exits_in_its_hook_is_broken(tmp_path):
    folder = install(tmp_path, "robustad-exits", {"exits": REGISTER_EXITS})
    found = listing(folder, "exits")
    assert [(b["plugin"], b["error"]) for b in found["broken"]] == [("exits", "SystemExit: 0")]


def test_the_users_ctrl_c_while_a_plugin_imports_still_interrupts(tmp_path, monkeypatch, sigint_handler):
    folder = install(tmp_path, "robustad-slow", {"slow": "import signal\nsignal.raise_signal(signal.SIGINT)\n"})
    with pytest.raises(KeyboardInterrupt):
        registry_with(folder, monkeypatch, "slow")
    assert interrupts.requested()
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("plugins", env=env)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("hook, message", [
    ("@hookimpl\ndef register_calibrators(register, extra):\n    pass\n", "can not be found in the hookspec"),
    ("@hookimpl(hookwrapper=True)\ndef register_calibrators(register):\n    pass\n", "not a generator function"),
    ("@hookimpl(wrapper=True)\ndef register_calibrators(register):\n    pass\n", "not a generator function"),
    ("@hookimpl(hookwrapper=True)\ndef register_calibrators(register):\n    yield\n", "is a hook wrapper"),
    ("@hookimpl\ndef register_calibrator(register):\n    pass\n", "register_calibrator, which is not a robustad hook"),
])
def test_a_hookimpl_pluggy_refuses_breaks_only_its_plugin(tmp_path, monkeypatch, hook, message):
    code = "from robustad import hookimpl\n\n\n" + hook
    folder = install(tmp_path, "robustad-odd", {"odd": code})
    registry = registry_with(folder, monkeypatch, "odd")
    [broken] = registry.broken
    assert broken.plugin == "odd" and message in broken.error and "\n" not in broken.message()
    assert registry.get("calibrator", "platt").plugin == "calibrators"
    found = listing(folder, "odd")
    assert [b["plugin"] for b in found["broken"]] == ["odd"] and "platt" in {c["name"] for c in found["components"]}


def test_one_module_under_two_entry_points_is_broken_the_second_time(tmp_path, monkeypatch):
    folder = install(tmp_path, "robustad-twice", {"twice": PLATT_IMPOSTOR.replace("platt", "half").format(marker="")},
                     {"first": "twice", "second": "twice"})
    registry = registry_with(folder, monkeypatch, "first", "second")
    assert registry.get("calibrator", "half").plugin == "first"
    assert [b.plugin for b in registry.broken] == ["second"]


NAMED = """
from robustad import hookimpl


class Named:
    name = {name!r}
    description = "a calibrator with a hostile name"

    def fit(self, scores, labels):
        return self

    def predict(self, scores):
        return scores * 0 + 0.5


@hookimpl
def register_{kind}s(register):
    register(Named){again}
"""


@pytest.mark.parametrize("kind, name, message", [
    ("calibrator", "pla,tt", "cannot be written on the command line"),
    ("calibrator", "pgd:20", "cannot be written on the command line"),
    ("calibrator", "a=b", "cannot be written on the command line"),
    ("calibrator", "two words", "cannot be written on the command line"),
    ("calibrator", "tab\\there", "cannot be written on the command line"),
    ("attack", "none", "attack name 'none' is reserved"),
    ("surrogate", "none", "surrogate name 'none' is reserved"),
])
def test_a_name_the_command_line_cannot_select_breaks_its_plugin(tmp_path, monkeypatch, kind, name, message):
    code = NAMED.format(name=name.replace("\\t", "\t"), kind=kind, again="")
    registry = registry_with(install(tmp_path, "robustad-named", {"named": code}), monkeypatch, "named")
    registry.components(kind)
    [broken] = registry.broken
    assert broken.plugin == "named" and message in broken.error


def test_a_plugin_registering_one_name_twice_is_broken(tmp_path, monkeypatch):
    code = NAMED.format(name="half", kind="calibrator", again="\n    register(Named)")
    registry = registry_with(install(tmp_path, "robustad-twice", {"twice": code}), monkeypatch, "twice")
    assert "half" not in registry.components("calibrator")
    [broken] = registry.broken
    assert broken.plugin == "twice" and "registers calibrator 'half' more than once" in broken.error


def test_a_damaged_entry_points_file_breaks_only_its_distribution(tmp_path):
    folder = install(tmp_path, "robustad-damaged", {})
    (folder / "robustad-damaged-1.0.dist-info" / "entry_points.txt").write_text("[robustad]\nno equals sign\n")
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    env.pop("ROBUSTAD_LOAD_PLUGINS", None)
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    found = json.loads(result.stdout)
    assert [(b["plugin"], b["distribution"]) for b in found["broken"]] == [("entry_points.txt", "robustad-damaged")]
    assert "platt" in {c["name"] for c in found["components"]}


@pytest.mark.parametrize("distribution", ["robustad-evil", "Robustad"])
def test_an_entry_point_named_like_a_built_in_one_is_refused_without_hiding_it(tmp_path, distribution):
    folder = install(tmp_path, distribution, {"evil": PLATT_IMPOSTOR.format(marker="")}, {"calibrators": "evil"})
    found = listing(folder)
    [broken] = found["broken"]
    assert broken["plugin"] == "calibrators" and "already taken" in broken["error"]
    assert broken["distribution"] != "robustad"
    calibrators = {c["name"]: c["distribution"] for c in found["components"] if c["kind"] == "calibrator"}
    assert calibrators == {"platt": "robustad", "isotonic": "robustad", "temperature": "robustad", "none": "robustad",
                           "conformal": "robustad"}
