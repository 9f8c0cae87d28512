"""From command-line text to canonical cells: equal experiments share a key, bad input is one line before work."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from robustad.declaration import Request
from robustad.engine.request import build_cells
from robustad.errors import RobustadError
from robustad.plugins import get_registry


def write_image(path, seed, size=(32, 32), mask=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mask:
        pixels = np.zeros(size, dtype=np.uint8)
        pixels[4:12, 4:12] = 255
    else:
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def folder_dataset(root):
    """A tiny MVTec-layout category ``part``: 2 training images, 6 good and 6 defective test images."""
    for i in range(2):
        write_image(root / "part" / "train" / "good" / f"{i:03d}.png", i)
    for i in range(6):
        write_image(root / "part" / "test" / "good" / f"{i:03d}.png", 10 + i)
        write_image(root / "part" / "test" / "bad" / f"{i:03d}.png", 20 + i)
        write_image(root / "part" / "ground_truth" / "bad" / f"{i:03d}_mask.png", 0, mask=True)
    return root


REQUEST = Request(noise_control=False, dataset="folder", data_root=None, category="part", shots="1", seeds="0",
                  backbone="efficientnet_lite0", weights="", resolution="32", detector="anomalydino",
                  surrogate="linear", attack="fgsm", eps="2/255", calib="platt", calib_fraction=0.3,
                  options=[])


def cells(request: Request, **changes):
    return build_cells(replace(request, **changes), get_registry())


@pytest.fixture
def data(tmp_path):
    return folder_dataset(tmp_path / "data")


def test_equal_experiments_spelled_differently_share_a_key(data):
    base = cells(REQUEST, data_root=data)
    assert [c.key for c in cells(REQUEST, data_root=data, eps="0.00784313725490196")] == [c.key for c in base]
    assert [c.key for c in cells(REQUEST, data_root=data, eps="4/510")] == [c.key for c in base]
    assert [c.key for c in cells(REQUEST, data_root=data, shots="01")] == [c.key for c in base]
    assert base[0].eps == "2/255" and base[0].shots == "1"


def test_the_key_follows_the_data_not_its_location(data, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)
    base = cells(REQUEST, data_root=data)
    assert [c.key for c in cells(REQUEST, data_root=moved)] == [c.key for c in base]
    write_image(moved / "part" / "test" / "good" / "000.png", 99, size=(40, 40))  # other bytes, other size
    assert cells(REQUEST, data_root=moved)[0].key != base[0].key
    (moved / "part" / "test" / "good" / "005.png").unlink()
    assert cells(REQUEST, data_root=moved)[0].data_id != base[0].data_id


def test_resolved_defaults_are_part_of_the_cell(data):
    [cell] = cells(REQUEST, data_root=data)
    component = get_registry().get("calibrator", "platt")
    assert json.loads(cell.options)["calibrator.platt"] == {o.name: o.default for o in component.options}


def test_name_argument_is_converted_through_the_option_type(data):
    [cell] = cells(REQUEST, data_root=data, attack="pgd:20")
    steps = json.loads(cell.options)["attack.pgd"]["steps"]
    assert cell.attack == "pgd" and steps == 20 and isinstance(steps, int)
    with pytest.raises(RobustadError, match=r"attack 'pgd' option steps='abc': expected int"):
        cells(REQUEST, data_root=data, attack="pgd:abc")


def test_one_experiment_has_one_key_however_it_is_spelled(data):
    [spelled] = cells(REQUEST, data_root=data, attack="pgd:20")
    [option] = cells(REQUEST, data_root=data, attack="pgd", options=["attack.pgd.steps=20"])
    [api] = cells(REQUEST, data_root=data, attack=["pgd"], options={"attack.pgd.steps": 20})
    assert spelled == option == api and spelled.key == option.key
    default, explicit = cells(REQUEST, data_root=data, attack="pgd,pgd:10,pgd:20")[:2]
    assert default.key != explicit.key  # pgd:10 is pgd itself and collapses into it; pgd:20 stays apart
    assert len(cells(REQUEST, data_root=data, attack="pgd,pgd:10")) == 1


def test_a_spec_argument_sets_only_a_declared_primary_option(data):
    class Undeclared:
        name, description = "undeclared", "an attack without primary_option"

        def __init__(self, *, steps: int = 1) -> None: ...

    registry = get_registry()
    pgd = registry.get("attack", "pgd")
    assert pgd.spec_options("7") == {"steps": 7}
    fake = type(pgd)(pgd.kind, "undeclared", Undeclared, "x", pgd.options, "p", "d")
    with pytest.raises(RobustadError, match="declares no primary option"):
        fake.spec_options("7")


@pytest.mark.parametrize("changes, message", [
    ({"resolution": "100000"}, "--resolution '100000': expected an integer between 1 and 4096"),
    ({"options": ["foo.pgd.steps=3"]}, "unknown kind 'foo'"),
    ({"options": ["attack.pgd.steps=3"]}, "--opt names attack 'pgd', which this run does not use"),
    ({"precision": "fp8"}, "--precision 'fp8': expected one of fp32, bf16, fp16"),
    ({"attack": "pgd:"}, "expected NAME or NAME:VALUE"),
    ({"category": "nope"}, "category 'nope' not found for dataset 'folder'"),
])
def test_bad_requests_are_one_line_before_any_work(data, changes, message):
    with pytest.raises(RobustadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cells(REQUEST, data_root=data, **changes)


def test_bad_values_on_the_command_line_exit_2_with_one_line(cli, tmp_path):
    for args, message in ((["--attack", "pgd:abc"], "option steps='abc': expected int"),
                          (["--resolution", "100000"], "between 1 and 4096"),
                          (["--opt", "foo.pgd.steps=3"], "unknown kind 'foo'"),
                          (["--out", str(tmp_path)], "is a folder")):
        result = cli("bench", "--attack", "fgsm", *args, env={"ROBUSTAD_CACHE": str(tmp_path / "cache")})
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
