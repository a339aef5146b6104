"""The one table formatter and number formatter (keras_weightinit._table)."""

import math

import pytest

from keras_weightinit._table import number, render


@pytest.mark.parametrize(
    "x, text",
    [
        (None, "-"),
        (0.0, "0"),
        (0.012345, "0.01235"),
        (1234.5, "1234"),
        (12345.0, "1.234e+04"),
        (1.5e-6, "1.500e-06"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_number(x, text):
    assert number(x) == text


def test_number_signed():
    assert number(0.5, signed=True) == "+0.5"
    assert number(-2e-5, signed=True) == "-2.000e-05"


def test_render_aligns_columns_and_rules_the_header():
    text = render(["name", "value"], [["a", "1.5"], ["longer", "10"]], right=[1], title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1].split() == ["name", "value"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    # The right-aligned column ends at the same place on every row.
    ends = {line.rstrip().__len__() for line in lines[1:]}
    assert len(ends) == 1
    assert lines[3].startswith("a ") and lines[4].startswith("longer ")
    assert all(line == line.rstrip() for line in lines)


def test_render_keeps_wide_cells_on_one_line():
    cell = "x" * 500
    assert render(["c"], [[cell]]).splitlines()[-1] == cell


def test_render_refuses_a_ragged_row():
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        render(["a", "b"], [["only"]])


def test_a_title_wider_than_the_table_stays_on_one_line():
    title = "Initialization report (lsuv, seed=0): 3 kernels, 0 layers left unchanged"
    assert render(["a"], [["b"]], title=title).splitlines() == [title, "a", "-", "b"]


def test_render_returns_the_text_inside_a_notebook_too(monkeypatch):
    # rich detects Jupyter and would display the table instead of writing it.
    import rich.console

    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    assert render(["a", "b"], [["1", "2"]]).splitlines()[-1] == "1  2"
