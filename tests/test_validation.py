"""The building blocks of _validation that other modules' checks call.

The public checks built on them (for_activation's gain, compute_fans' axes,
gain's breakpoints, activation parameters) are tested with their callers;
this file pins the blocks themselves, so that a module adopting one gets the
message the others give.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_weightinit import _validation as V


@pytest.mark.parametrize("value", [0, 3, -2.5, np.float32(1.5), np.int64(7), float("inf")])
def test_numbers(value):
    assert V.is_number(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, 1j, [1.0]])
def test_not_numbers(value):
    # A bool is an int to Python, but `scale=True` is a mistake, not 1.
    assert not V.is_number(value)


def test_integers():
    assert V.is_integer(3) and V.is_integer(np.int32(-1))
    for value in (True, np.bool_(True), 3.0, "3", None):
        assert not V.is_integer(value), value


def test_check_finite_real():
    assert V.check_finite_real(np.float32(0.25), "alpha") == 0.25
    assert type(V.check_finite_real(2, "alpha")) is float
    with pytest.raises(ValueError, match=r"^Argument `alpha` must be a real number\. "):
        V.check_finite_real("0.1", "alpha")
    with pytest.raises(
        ValueError, match=r"^The alpha of ELU\(\) must be finite\. Received: alpha=nan"
    ):
        V.check_finite_real(float("nan"), "alpha", subject="The alpha of ELU()")


def test_check_finite_numbers_reads_an_iterable_once():
    assert V.check_finite_numbers((b for b in (0, 1.5)), "breakpoints") == (0.0, 1.5)
    assert V.check_finite_numbers([], "breakpoints") == ()
    for bad in ("01", {0: 1}, 3.0, [0.0, float("inf")], [True]):
        with pytest.raises(ValueError, match="Argument `breakpoints` must be a sequence of"):
            V.check_finite_numbers(bad, "breakpoints")


def test_check_choice_or_positive():
    choices = ("second_moment", "fixed_point")
    expected = "Argument `gain` must be None, 'second_moment', 'fixed_point' or a positive number."
    assert V.check_choice_or_positive(None, "gain", choices) is None
    assert V.check_choice_or_positive("fixed_point", "gain", choices) == "fixed_point"
    assert V.check_choice_or_positive(np.float64(1.5), "gain", choices) == 1.5
    with pytest.raises(ValueError) as info:
        V.check_choice_or_positive("fixed", "gain", choices)
    assert str(info.value) == f"{expected} Received: gain='fixed'"
    with pytest.raises(TypeError) as info:
        V.check_choice_or_positive(True, "gain", choices)
    assert str(info.value) == f"{expected} Received: gain=True (of type bool)"
    with pytest.raises(ValueError, match="must be positive float.*Received: gain=-1.0"):
        V.check_choice_or_positive(-1, "gain", choices)


def test_check_positive_int_and_check_below():
    assert V.check_positive_int(np.int64(3), "max_iter") == 3
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="Argument `max_iter` must be a positive integer"):
            V.check_positive_int(bad, "max_iter")
    assert V.check_below(0.5, "tol", 1) == 0.5
    with pytest.raises(ValueError, match=r"^Argument `tol` must be below 1\. Received: tol=1.0$"):
        V.check_below(1.0, "tol", 1)


def test_axes_pair_and_ranges():
    assert V.check_axes_pair(None, None) == (None, None)
    assert V.check_axes_pair((0,), [np.int64(1), 2]) == ([0], [1, 2])
    with pytest.raises(ValueError, match="must be given together. Received: input_axes=.0"):
        V.check_axes_pair([0], None)
    with pytest.raises(TypeError, match="`output_axes` must be a list of integers"):
        V.check_axes_pair([0], "1")
    assert V.normalize_axes([-1, 0], 3, "input_axes") == [2, 0]
    with pytest.raises(ValueError, match="holds axis 3, which is out of range .* rank 3"):
        V.normalize_axes([3], 3, "input_axes")
