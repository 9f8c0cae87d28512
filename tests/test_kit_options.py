"""robustad.kit.options: the one-line checks plugins share for their numeric options."""

from __future__ import annotations

import math

import pytest

from robustad.errors import RobustadError
from robustad.kit import options


@pytest.mark.parametrize("value, low, high", [(1, 1, None), (10**9, 1, None), (0, 0, 3), (3, 0, 3), (7, 1, 7)])
def test_an_integer_within_its_bounds_is_returned(value, low, high):
    assert options.integer("tool", "size", value, low, high) == value


@pytest.mark.parametrize("value, low, high, message", [
    (0, 1, None, "tool option size=0: expected an integer >= 1"),
    (8, 1, 7, "tool option size=8: expected an integer from 1 to 7"),
    (-1, 0, None, "tool option size=-1: expected an integer >= 0"),
    (2.0, 1, None, "tool option size=2.0: expected an integer >= 1"),
    (True, 1, None, "tool option size=True: expected an integer >= 1"),
    ("3", 1, None, "tool option size='3': expected an integer >= 1"),
])
def test_anything_else_is_refused_with_its_value_and_bounds(value, low, high, message):
    with pytest.raises(RobustadError) as error:
        options.integer("tool", "size", value, low, high)
    assert str(error.value) == message


@pytest.mark.parametrize("value", [1e-300, 0.5, 3, 1e300])
def test_a_positive_number_is_returned_as_a_float(value):
    checked = options.positive("tool", "sigma", value)
    assert checked == float(value) and isinstance(checked, float)


@pytest.mark.parametrize("value", [0, 0.0, -1.0, math.inf, math.nan, -math.inf, True, None, "1"])
def test_a_positive_number_refuses_zero_negatives_non_finite_and_non_numbers(value):
    with pytest.raises(RobustadError) as error:
        options.positive("tool", "sigma", value)
    assert str(error.value) == f"tool option sigma={value!r}: expected a finite number > 0"


@pytest.mark.parametrize("value, ok", [(1, True), (1.0, True), (1e-9, True), (0.5, True), (0, False), (0.0, False),
                                       (1.0000001, False), (-0.5, False), (math.nan, False), (True, False)])
def test_a_fraction_is_in_the_half_open_unit_interval(value, ok):
    if ok:
        assert options.fraction("tool", "ratio", value) == value
        return
    with pytest.raises(RobustadError, match=r"^tool option ratio=.*: expected a number in \(0, 1\]$"):
        options.fraction("tool", "ratio", value)
