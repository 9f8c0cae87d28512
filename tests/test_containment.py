"""Names taken from data (a manifest's image files, a leaderboard's cell_hash) never make robustad read or write
outside the folder they belong to: the traversal and symlink cases of the third hostile-input round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustad.contained import inside
from robustad.errors import RobustadError
from tests.boards import row, run_robustad, write_board
from tests.test_site import write_examples

DEPTH = 30


def hostile_site(tmp_path: Path, monkeypatch, capsys, name: str, *, deep_link: bool = False,
                 payload_at: str | None = None) -> tuple[int, str, Path]:
    """A site built from an examples folder whose manifest names ``name`` for the clean image; returns the exit
    code, stderr and the victim file (which must keep its bytes)."""
    line = row(adv_auroc=0.2, white_box=True)
    board_csv = write_board(tmp_path / "board.csv", [line])
    examples = tmp_path / "examples"
    write_examples(examples, line["cell_hash"])
    if deep_link:  # EX/a -> a folder DEPTH levels deep inside EX, so a/../..x DEPTH resolves to EX itself
        deep = examples.joinpath(*[f"d{i}" for i in range(DEPTH)])
        deep.mkdir(parents=True)
        (examples / "a").symlink_to(deep, target_is_directory=True)
    victim = tmp_path / "victim" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("mine")
    if payload_at is not None:  # the attacker's bytes, inside EX where the source resolves
        source = examples / payload_at
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("attacker")
    file = examples / f"{line['cell_hash']}.json"
    record = json.loads(file.read_text())
    record["images"][0]["files"]["clean"] = name
    file.write_text(json.dumps(record))
    code, out, err = run_robustad(monkeypatch, capsys, "site", board_csv, "--examples", examples,
                                  "--out", tmp_path / "site" / "x" / "y")
    return code, err, victim


def test_dot_dot_through_a_deep_symlink_does_not_overwrite_a_file_outside_out(tmp_path, monkeypatch, capsys):
    victim_relative = str((tmp_path / "victim" / "precious.txt").resolve()).lstrip("/")
    name = "a/" + "../" * DEPTH + victim_relative
    code, err, victim = hostile_site(tmp_path, monkeypatch, capsys, name, deep_link=True,
                                     payload_at=victim_relative)
    assert victim.read_text() == "mine"
    assert code == 2 and err.count("\n") == 1 and "holds '..'" in err


def test_dot_dots_to_the_root_and_an_absolute_path_write_nothing_outside_out(tmp_path, monkeypatch, capsys):
    """``../`` x the depth of EX reaches ``/`` from EX, so the source is the payload inside EX; from the deeper
    gallery folder the same name lands outside ``--out``."""
    examples = (tmp_path / "examples").resolve()
    payload = str(examples / "p" / "payload.png").lstrip("/")
    name = "../" * (len(examples.parts) - 1) + payload
    code, err, victim = hostile_site(tmp_path, monkeypatch, capsys, name, payload_at="p/payload.png")
    out = (tmp_path / "site" / "x" / "y").resolve()
    written = [p for p in tmp_path.resolve().rglob("payload.png") if out not in p.parents
               and p != examples / "p" / "payload.png"]
    assert written == [] and code == 2 and err.count("\n") == 1 and "holds '..'" in err


def test_an_absolute_name_is_refused(tmp_path, monkeypatch, capsys):
    code, err, victim = hostile_site(tmp_path, monkeypatch, capsys, str((tmp_path / "victim" / "precious.txt")))
    assert victim.read_text() == "mine" and code == 2 and "is an absolute path" in err


def test_a_symlink_out_of_the_examples_folder_is_not_followed(tmp_path, monkeypatch, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.png").write_text("private")
    line = row(adv_auroc=0.2, white_box=True)
    examples = tmp_path / "examples"
    write_examples(examples, line["cell_hash"])
    (examples / "out").symlink_to(secret, target_is_directory=True)
    file = examples / f"{line['cell_hash']}.json"
    record = json.loads(file.read_text())
    record["images"][0]["files"]["clean"] = "out/key.png"
    file.write_text(json.dumps(record))
    code, out, err = run_robustad(monkeypatch, capsys, "site", write_board(tmp_path / "board.csv", [line]),
                                  "--examples", examples, "--out", tmp_path / "site")
    assert code == 2 and "leads out of" in err
    assert not [p for p in (tmp_path / "site").rglob("key.png")]  # the private file was not copied in


def test_a_symlink_within_the_examples_folder_is_followed(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "a").symlink_to(tmp_path / "deep" / "er", target_is_directory=True)
    assert inside(tmp_path, "a/x.png", "image") == tmp_path / "a" / "x.png"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:\\\\x", "a\\\\..\\\\x", "", 3, None])
def test_names_that_are_not_plain_relative_paths_are_refused(tmp_path, name):
    with pytest.raises(RobustadError, match="image"):
        inside(tmp_path, name, "image")


def test_a_cell_hash_with_dot_dots_does_not_read_a_manifest_outside_examples(tmp_path, monkeypatch, capsys):
    line = row(adv_auroc=0.2, white_box=True)
    write_examples(tmp_path / "elsewhere", line["cell_hash"])  # a manifest outside EX that ../ would reach
    (tmp_path / "examples").mkdir()
    line["cell_hash"] = f"../elsewhere/{line['cell_hash']}"
    code, out, err = run_robustad(monkeypatch, capsys, "site", write_board(tmp_path / "board.csv", [line]),
                                  "--examples", tmp_path / "examples", "--out", tmp_path / "site")
    assert code == 2 and "holds '..'" in err


@pytest.mark.parametrize("field, value", [("clean_score", "high"), ("adv_score", [1]), ("folder", ["a", "b"]),
                                          ("name", {"x": 1}), ("clean_score", True)])
def test_manifest_values_of_the_wrong_type_are_one_line(tmp_path, monkeypatch, capsys, field, value):
    line = row(adv_auroc=0.2, white_box=True)
    examples = tmp_path / "examples"
    write_examples(examples, line["cell_hash"])
    file = examples / f"{line['cell_hash']}.json"
    record = json.loads(file.read_text())
    (record if field == "folder" else record["images"][0])[field] = value
    file.write_text(json.dumps(record))
    code, out, err = run_robustad(monkeypatch, capsys, "site", write_board(tmp_path / "board.csv", [line]),
                                  "--examples", examples, "--out", tmp_path / "site")
    assert (code, out) == (2, "") and err.count("\n") == 1 and f"example file {file}" in err
