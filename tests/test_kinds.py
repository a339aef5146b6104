"""The layer-kind table (keras_weightinit._kinds): well formed, and a new kind is one row."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import _kinds
from keras_weightinit.fans import Fans

ROLES = {_kinds.KERNEL, _kinds.LINEAR, _kinds.RECURRENT, _kinds.RNN_INPUT, _kinds.EMBEDDING}
ROLES |= {_kinds.TIED}
RULES = {_kinds.NONE, _kinds.OWN, _kinds.OWN_OR_NEXT}


def test_every_row_is_well_formed():
    names = [kind.name for kind in _kinds.KINDS]
    assert len(set(names)) == len(names), names
    for kind in _kinds.KINDS:
        assert callable(kind.matches), kind.name
        for weight in kind.weights:
            assert weight.role in ROLES, (kind.name, weight.name, weight.role)
            assert weight.activation in RULES, (kind.name, weight.name, weight.activation)
            # A kernel never activated is read as linear, and only those are.
            linear = weight.role in (_kinds.LINEAR, _kinds.TIED)
            assert linear == (weight.activation == _kinds.NONE), (kind.name, weight.name)
        assert len({w.name for w in kind.weights}) == len(kind.weights), kind.name
    # Only the last row holds no kernel: normalizations and scales.
    assert [k.name for k in _kinds.KINDS if not k.weights] == [names[-1]]


class Bilinear(keras.layers.Layer):
    """A layer no row knows: `x @ table`, with a `table_initializer` of its own."""

    def __init__(self, units, table_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.table_initializer = keras.initializers.get(table_initializer)

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(input_shape[-1], self.units), initializer=self.table_initializer, name="table"
        )

    def call(self, x):
        return keras.ops.matmul(x, self.table)


def _table_fans(holder, shape) -> Fans:
    # Written from what the layer computes: each output sums `in` inputs.
    return Fans(shape[0], shape[1], [0], [1])


BILINEAR = _kinds.Kind(
    "Bilinear",
    lambda layer: isinstance(layer, Bilinear),
    (_kinds.Weight("table", "table", _kinds.KERNEL, _table_fans, "table_initializer"),),
)


def _model():
    inp = keras.Input((64,))
    x = Bilinear(32, name="bilinear")(inp)
    x = keras.layers.Activation("relu")(x)
    return keras.Model(inp, keras.layers.Dense(1)(x))


def test_a_new_kind_is_one_row(monkeypatch):
    model = _model()
    layer = model.get_layer("bilinear")
    with pytest.raises(ValueError, match="unknown layer type"):
        kwi.layer_fans(layer)
    assert any(s.layer == "bilinear" for s in kwi.initialize(model, seed=1).skipped)

    monkeypatch.setattr(_kinds, "KINDS", (BILINEAR,) + _kinds.KINDS)
    assert kwi.layer_fans(layer) == {"table": Fans(64, 32, [0], [1])}
    report = kwi.initialize(model, seed=1)
    (row,) = report["bilinear"]
    assert (row.weight, row.activation, row.mode) == ("table", "relu", "fan_in")
    assert row.scale == pytest.approx(2.0)
    # He after the ReLU that follows: std sqrt(2 / fan_in) with fan_in 64.
    # 64*32 = 2048 draws: the sample std's relative SE is 1/sqrt(2n) = 1.6%,
    # so 8% is 5 SE, and Glorot (sqrt(2/96), 18% smaller) stays outside.
    std = float(np.std(keras.ops.convert_to_numpy(layer.table)))
    assert abs(std / math.sqrt(2 / 64) - 1) < 0.08, std
    # The scheme is written into the layer's own initializer attribute.
    assert isinstance(layer.table_initializer, kwi.HeNormalCustom)
