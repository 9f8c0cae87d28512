"""The splits of docs/protocol.md section 2: shots, reference set, stratified calib/eval split, and their errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from robustad.engine.splits import make_split, parse_shots, reference_set, split_test
from robustad.errors import RobustadError
from robustad.records import CategoryData, Sample

ROOT = Path("/data/widget")


def train_samples(n: int) -> list[Sample]:
    """``n`` normal training images 000.png.. handed over in a shuffled order."""
    samples = [Sample(ROOT / "train" / "good" / f"{i:03d}.png", 0) for i in range(n)]
    random.Random(7).shuffle(samples)
    return samples


def labelled_test(normal: int = 14, anomalous: int = 6) -> list[Sample]:
    """``normal`` good and ``anomalous`` crack test images, shuffled."""
    samples = [Sample(ROOT / "test" / "good" / f"{i:03d}.png", 0) for i in range(normal)]
    samples += [Sample(ROOT / "test" / "crack" / f"{i:03d}.png", 1,
                       ROOT / "ground_truth" / "crack" / f"{i:03d}_mask.png", "crack") for i in range(anomalous)]
    random.Random(3).shuffle(samples)
    return samples


def names(samples: list[Sample], under: str = "test") -> list[str]:
    return [s.path.relative_to(ROOT / under).as_posix() for s in samples]


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(RobustadError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# Hand-written expectations (14 good + 6 crack, calib fraction 0.3): calib takes floor(0.3 * 20) = 6 images,
# stratified 6 * 14/20 = 4.2 -> 4 normal and 6 * 6/20 = 1.8 -> 2 anomalous. Written down once, so a change
# of sklearn's sampling or of our ordering on any machine shows up here.
EXPECTED_CALIB = {
    0: ["crack/003.png", "crack/005.png", "good/004.png", "good/006.png", "good/008.png", "good/011.png"],
    1: ["crack/001.png", "crack/005.png", "good/002.png", "good/003.png", "good/006.png", "good/007.png"],
}


@pytest.mark.parametrize("text, expected", [("all", None), ("ALL", None), (" all ", None), ("1", 1), (" 16 ", 16),
                                            ("0", 0)])
def test_parse_shots_accepts_whole_numbers_and_all(text, expected):
    assert parse_shots(text) == expected


def test_zero_shot_reference_set_is_empty_whatever_the_seed():
    assert reference_set(train_samples(10), 0, 0) == reference_set(train_samples(10), 0, 7) == []


@pytest.mark.parametrize("text", ["-1", "abc", "1.5", ""])
def test_parse_shots_rejects_negative_and_garbage(text):
    assert repr(text) in one_line_error(parse_shots, text)


@pytest.mark.parametrize("seed, expected", [(0, ["000", "001", "002"]), (1, ["003", "004", "005"]),
                                            (2, ["006", "007", "008"])])
def test_reference_set_is_the_seeds_slice_of_the_sorted_normals(seed, expected):
    chosen = reference_set(train_samples(10), 3, seed)
    assert names(chosen, "train/good") == [f"{n}.png" for n in expected]


def test_full_shot_takes_every_normal_image_in_order_whatever_the_seed():
    for seed in (0, 5):
        assert names(reference_set(train_samples(10), None, seed), "train/good") == [f"{i:03d}.png" for i in range(10)]


def test_reference_set_larger_than_the_normals_is_an_error_with_counts():
    message = one_line_error(reference_set, train_samples(10), 3, 3)
    assert "k=3" in message and "seed 3" in message and "9..11" in message and "only 10" in message


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_an_error(seed):
    assert "seed" in one_line_error(reference_set, train_samples(4), 1, seed)


@pytest.mark.parametrize("seed", sorted(EXPECTED_CALIB))
def test_split_matches_the_hand_written_lists(seed):
    test = labelled_test()
    calib, evaluation = split_test(test, seed)
    assert names(calib) == EXPECTED_CALIB[seed]
    expected_eval = sorted(set(names(test)) - set(EXPECTED_CALIB[seed]))
    assert names(evaluation) == expected_eval


def test_split_is_stratified_disjoint_complete_and_sorted():
    test = labelled_test(14, 6)
    for seed in range(5):
        calib, evaluation = split_test(test, seed)
        assert [s.label for s in calib].count(0) == 4 and [s.label for s in calib].count(1) == 2
        assert [s.label for s in evaluation].count(0) == 10 and [s.label for s in evaluation].count(1) == 4
        assert not set(calib) & set(evaluation) and set(calib) | set(evaluation) == set(test)
        assert names(calib) == sorted(names(calib)) and names(evaluation) == sorted(names(evaluation))


def test_split_does_not_depend_on_the_order_it_is_given():
    test = labelled_test()
    assert split_test(test, 0) == split_test(list(reversed(test)), 0)


def test_different_seeds_give_different_splits():
    test = labelled_test()
    calibs = {tuple(names(split_test(test, seed)[0])) for seed in range(4)}
    assert len(calibs) == 4


def test_split_is_the_same_in_a_fresh_process_with_another_hash_seed():
    code = ("import json; from tests.test_protocol import labelled_test, names; "
            "from robustad.engine.splits import split_test; "
            "print(json.dumps(names(split_test(labelled_test(), 0)[0])))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                            cwd=Path(__file__).resolve().parents[1]).stdout
    assert json.loads(output) == EXPECTED_CALIB[0]


def test_calib_fraction_sets_the_calib_size():
    calib, evaluation = split_test(labelled_test(14, 6), 0, calib_fraction=0.5)
    assert len(calib) == 10 and len(evaluation) == 10
    assert [s.label for s in calib].count(1) == 3


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_calib_fraction_outside_zero_one_is_an_error(fraction):
    assert "calib fraction" in one_line_error(split_test, labelled_test(), 0, fraction)


@pytest.mark.parametrize("normal, anomalous, fraction", [
    (10, 0, 0.3),   # no anomalies at all
    (10, 1, 0.3),   # one anomaly cannot be on both sides
    (20, 6, 0.05),  # calib of 1 image
    (3, 3, 0.9),    # eval of 1 image
])
def test_split_without_both_classes_on_each_side_is_an_error(normal, anomalous, fraction):
    message = one_line_error(split_test, labelled_test(normal, anomalous), 0, fraction)
    assert f"{normal} normal and {anomalous} anomalous" in message and "both" in message


def test_make_split_combines_reference_calib_eval_and_the_full_test():
    data = CategoryData("folder", "widget", train_samples(10), labelled_test())
    split = make_split(data, 2, 1)
    assert names(split.reference, "train/good") == ["002.png", "003.png"]
    assert names(split.calib) == EXPECTED_CALIB[1]
    assert names(split.test) == sorted(names(data.test)) and len(split.calib) + len(split.eval) == 20


def test_make_split_errors_name_dataset_and_category():
    data = CategoryData("folder", "widget", train_samples(10), labelled_test(10, 0))
    assert one_line_error(make_split, data, 20, 0).startswith("folder/widget: k=20 with seed 0")
    assert one_line_error(make_split, data, 1, 0).startswith("folder/widget: seed 0")
