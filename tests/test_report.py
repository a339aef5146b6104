"""The two result objects, `InitReport` and `Diagnosis`: one vocabulary.

Both are read the same way (iteration, `len`, lookup by position, slice and
layer name with the same errors, `rows()`, `to_dict()`, `str`, `repr`,
`plot()`); `InitReport`'s text is a table plus one section per kind of remark.
"""

from __future__ import annotations

import dataclasses
import json
import math

import keras
import matplotlib
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit._table import number
from keras_weightinit.report import (
    NO_KERNEL,
    ActivationStability,
    InitReport,
    LayerInit,
    NotStored,
    ResidualBranch,
    SkippedLayer,
)

matplotlib.use("Agg")

X = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")


def _model() -> keras.Model:
    """Dense -> residual block (ending in BatchNormalization) -> Dense."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    x = keras.layers.Dense(16, activation="relu", name="stem")(inp)
    h = keras.layers.Dense(16, activation="relu", name="inner")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    x = keras.layers.Add(name="add")([x, h])
    return keras.Model(inp, keras.layers.Dense(3, name="head")(x))


@pytest.fixture(scope="module")
def results():
    model = _model()
    report = kwi.initialize(model, X, seed=0)  # LSUV: measured
    return report, kwi.diagnose(model, X)


# -- lookup: the same semantics and the same messages on both ---------------------


def test_both_are_read_by_position_slice_and_name(results):
    for result in results:
        rows = list(result)
        assert len(result) == len(rows) == 3
        assert result[0] is rows[0] and result[-1] is rows[-1]
        assert result[np.int64(1)] is rows[1]  # a NumPy index, as from np.argmax
        assert result[0:2] == rows[:2] and isinstance(result[0:2], list)
        assert result["inner"] == [rows[1]]
        assert result.rows()[1]["layer"] == "inner"


@pytest.mark.parametrize(
    "key, error, fragment",
    [
        (3, IndexError, "has 3 rows. Received: index 3"),
        (-4, IndexError, "has 3 rows. Received: index -4"),
        ("nope", KeyError, "is named 'nope'. Rows: stem, inner, head"),
        (1.0, TypeError, "by position (an int or a slice) or by layer name (a str). Received: 1.0"),
        (True, TypeError, "Received: True (of type bool)"),
    ],
)
def test_lookup_errors_are_the_same_on_both(results, key, error, fragment):
    messages = []
    for result, noun in zip(results, ("report", "diagnosis")):
        with pytest.raises(error) as info:
            result[key]
        message = info.value.args[0]
        assert fragment in message and noun in message, message
        messages.append(message.replace(noun, "result"))
    assert messages[0] == messages[1]


# -- rows are records: frozen on both ---------------------------------------------


def test_rows_of_both_are_frozen(results):
    report, diagnosis = results
    for row in (report[0], diagnosis[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            row.layer = "other"
    for cls in (LayerInit, SkippedLayer, ResidualBranch, NotStored, ActivationStability):
        assert cls.__dataclass_params__.frozen, cls


# -- to_dict: all of it, as plain data -----------------------------------------------


def test_to_dict_is_plain_data_whose_layers_are_rows(results):
    report, diagnosis = results
    data = report.to_dict()
    assert data["layers"] == report.rows()
    assert (data["method"], data["seed"], data["measured"]) == ("lsuv", 0, True)
    assert [b["weight"] for b in data["residual"]] == ["gamma"]
    assert {s["reason"] for s in data["skipped"]} == {NO_KERNEL}
    assert {s["activation"] for s in data["stability"]} == {"relu", "linear"}
    assert diagnosis.to_dict()["layers"] == diagnosis.rows()
    assert "relative_grad" in diagnosis.to_dict()["layers"][0]
    for result in results:
        text = json.dumps(result.to_dict())  # raises on a NumPy scalar or an object
        back = json.loads(text)
        assert [r["layer"] for r in back["layers"]] == ["stem", "inner", "head"]
        # The std after LSUV survives the trip bit for bit.
        key = "std_after" if result is report else "std"
        assert [r[key] for r in back["layers"]] == [getattr(r, key) for r in result]


# -- str and repr --------------------------------------------------------------------


def test_report_text_is_a_table_then_its_sections(results):
    report, _ = results
    lines = str(report).splitlines()
    assert lines[0] == "Initialization report (lsuv, seed=0): 3 kernels, 1 layers left unchanged"
    header = lines[1].split()
    assert header[:3] == ["layer", "type", "weight"]
    assert lines[1].rstrip().endswith("std before  std after  lsuv steps")
    assert set(lines[2].replace(" ", "")) == {"-"}
    for row, line in zip(report, lines[3:6]):
        cells = line.split()
        assert cells[:4] == [row.layer, row.layer_type, row.weight, "x".join(map(str, row.shape))]
        assert cells[-2:] == [number(row.std_after), str(row.lsuv_iterations)]
    assert lines[6] == "Residual branches:"
    assert lines[7].startswith("  add: bn/gamma zeroed: ")
    assert lines[8] == "Stability (chi: slope of the variance map at unit variance):"
    assert lines[-1] == "Without a kernel, kept as they are: BatchNormalization"


def _row(layer: str, **changes) -> LayerInit:
    fields = dict(
        layer=layer, layer_type="Dense", weight="kernel", shape=(4, 2), fan_in=4, fan_out=2,
        activation="relu", activation_source="own", initializer="HeNormalCustom", config={},
        scale=2.0, mode="fan_in", weight_std=0.7071,
    )  # fmt: skip
    return LayerInit(**{**fields, **changes})


def test_every_section_in_its_order_and_only_when_it_has_lines():
    report = InitReport(
        method="analytic",
        layers=[
            _row(
                "a",
                note="LSUV stopped after 10 steps",
                activation="tanh",
                activation_source="order b",
                guessed=True,
            ),
            _row("b"),
        ],  # fmt: skip
        skipped=[
            SkippedLayer("block", "Block", "its sublayers are initialized", container=True),
            SkippedLayer("mine", "Scale", "unknown layer type"),
            SkippedLayer("bn", "BatchNormalization", NO_KERNEL),
            SkippedLayer("bn_1", "BatchNormalization", NO_KERNEL),
            SkippedLayer("ln", "LayerNormalization", NO_KERNEL),
        ],
        seed=None,
        measured=False,
        residual=[ResidualBranch("add", "b", "Dense", "kernel", "scaled by 0.5", "two branches")],
        not_stored=[NotStored("emb", "Embedding", "its initializer takes no axes")],
        stability=[ActivationStability("relu", 1.0, "marginal", 2, 1.0)],
    )
    text = str(report)
    lines = text.splitlines()
    # 4 left unchanged: the container's own weights do not count.
    assert (
        lines[0]
        == "Initialization report (analytic, seed=None): 2 kernels, 4 layers left unchanged"
    )
    assert lines[1].split()[-3:] == ["scale", "w", "std"]  # unmeasured: no std columns
    assert "tanh (order b, guessed)" in lines[3]
    titles = [line for line in lines[5:] if not line.startswith("  ")]
    assert titles == [
        "Notes:",
        "Residual branches:",
        "Stability (chi: slope of the variance map at unit variance):",
        "Containers (their sublayers are initialized, their own weights kept):",
        "Not stored in the saved config (a rebuild from config draws otherwise):",
        "Left unchanged:",
        "Without a kernel, kept as they are: BatchNormalization x2, LayerNormalization",
    ]
    assert "  a/kernel: LSUV stopped after 10 steps" in lines
    assert "  add: b/kernel scaled by 0.5: two branches" in lines
    assert "  relu: chi 1.0000, marginal (x1 over 2 layers)" in lines
    assert "  block (Block)" in lines
    assert "  emb (Embedding): its initializer takes no axes" in lines
    assert "  mine (Scale): unknown layer type" in lines
    bare = InitReport("analytic", [_row("a")], [], 0, False)
    assert len(str(bare).splitlines()) == 4  # title, header, rule, one row: no empty section


def test_reprs_are_one_line_summaries(results):
    report, diagnosis = results
    assert repr(report) == "<InitReport method='lsuv' kernels=3 skipped=1>"
    assert repr(diagnosis) == (
        f"<Diagnosis loss_name={diagnosis.loss_name!r} kernels=3 flagged={len(diagnosis.flagged)}>"
    )


def test_diagnosis_text_writes_numbers_as_the_one_formatter_does(results):
    _, diagnosis = results
    lines = str(diagnosis).splitlines()
    assert lines[0].split() == [
        "depth", "layer", "kernel", "mean", "std", "grad", "norm", "grad/weight", "flags"
    ]  # fmt: skip
    for row, line in zip(diagnosis, lines[2:5]):
        cells = line.split()
        assert cells[4:8] == [  # "stem (Dense)" is two words
            number(row.mean, signed=True),
            number(row.std),
            number(row.grad_norm),
            number(row.relative_grad),
        ]
    assert lines[5].startswith(f"loss {number(diagnosis.loss)} (")


# -- plot ----------------------------------------------------------------------------


def test_report_plot_draws_std_before_and_after(results):
    import matplotlib.pyplot as plt

    report, _ = results
    fig = report.plot(label="lsuv")
    (ax,) = fig.get_axes()
    assert ax.get_yscale() == "log"
    before, after = ax.lines[0], ax.lines[1]
    np.testing.assert_array_equal(before.get_ydata(), [r.std_before for r in report])
    np.testing.assert_array_equal(after.get_ydata(), [r.std_after for r in report])
    assert after.get_label() == "lsuv: std_after"
    # Drawn again into the same axes, for a comparison.
    assert report.plot(axes=ax, label="again") is fig and len(ax.lines) == 6
    plt.close(fig)


def test_plot_of_an_unmeasured_report_says_what_to_do():
    report = kwi.initialize(_model(), seed=0)
    with pytest.raises(ValueError, match="`data`.*measured=False"):
        report.plot()


# -- check's arguments go through the shared checks ----------------------------------


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(low="0.5"), TypeError, "Argument `low` must be a number. Received: low='0.5'"),
        (dict(high=None), TypeError, "Argument `high` must be a number. Received: high=None"),
        (dict(low=True), TypeError, "low=True"),
        (dict(require_stable="yes"), TypeError, "`require_stable` must be True or False"),
        (dict(low=2.0, high=1.0), ValueError, "Received: low=2.0, high=1.0"),
        (dict(high=math.inf), ValueError, "high=inf"),
    ],
)
def test_check_refuses_bad_arguments(results, kwargs, error, fragment):
    report, _ = results
    with pytest.raises(error) as info:
        report.check(**kwargs)
    assert fragment in str(info.value)


def test_check_takes_numpy_numbers_and_bools(results):
    report, _ = results
    # LSUV's default tol 0.1 is on the variance: every std is within sqrt(1 +- 0.1).
    report.check(np.float32(0.9), np.float64(1.1), require_stable=np.bool_(True))
