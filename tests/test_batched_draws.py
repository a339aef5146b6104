"""`_draw.assign` makes many draws at once with the values one call each gives.

`initialize` draws a whole model through it (one compiled call on
TensorFlow), so the weights it writes must equal, bit for bit, what each
kernel's own initializer draws when called: that is what makes a model
rebuilt from the written configs (clone, reload) the same model.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import _draw
from tests.helpers import to_numpy

SHAPES = [(3, 3, 4, 8), (17,), (64, 32), (5, 7, 3)]


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_assign_equals_one_call_each(distribution, dtype):
    if keras.backend.backend() != "tensorflow":
        # Elsewhere `assign` is the loop of calls itself; one case checks it.
        if (distribution, dtype) != ("normal", "float32"):
            pytest.skip("the compiled assigner is TensorFlow's")
    variables = [keras.Variable(np.zeros(s), dtype=dtype) for s in SHAPES]
    inits = [kwi.VarianceScalingCustom(2.0, "fan_in", distribution, seed=s) for s in range(4)]
    twins = [kwi.VarianceScalingCustom(2.0, "fan_in", distribution, seed=s) for s in range(4)]
    requests = [init.request(s, dtype) for init, s in zip(inits, SHAPES)]
    _draw.assign(list(zip(variables, requests)), compiled=True)
    for v, twin, shape in zip(variables, twins, SHAPES):
        expected = to_numpy(twin(shape, dtype))
        np.testing.assert_array_equal(to_numpy(v), expected, err_msg=str(shape))


def test_request_takes_the_calls_seed():
    # A request stands for one call: the call after it draws what a second
    # call would have drawn.
    a = kwi.HeNormalCustom(seed=3)
    b = kwi.HeNormalCustom(seed=3)
    a.request((8, 8))
    np.testing.assert_array_equal(to_numpy(a((8, 8))), to_numpy((b((8, 8)), b((8, 8)))[1]))


def test_request_is_none_for_a_seed_generator():
    init = kwi.HeNormalCustom(seed=keras.random.SeedGenerator(1))
    assert init.request((4, 4)) is None


def test_request_checks_like_a_call():
    with pytest.raises(ValueError, match="dtype"):
        kwi.HeNormalCustom(seed=0).request((4, 4), "int32")


def test_assign_writes_values_after_draws():
    kernel = keras.Variable(np.zeros((6, 5)), dtype="float32")
    bias = keras.Variable(np.ones((5,)), dtype="float32")
    r = kwi.GlorotUniformCustom(seed=9).request((6, 5), "float32")
    _draw.assign([(kernel, r)], [(bias, np.zeros(5))], compiled=True)
    np.testing.assert_array_equal(to_numpy(bias), np.zeros(5))
    np.testing.assert_array_equal(
        to_numpy(kernel), to_numpy(kwi.GlorotUniformCustom(seed=9)((6, 5)))
    )


def test_two_models_of_one_layout_share_the_trace_and_keep_their_values():
    # The compiled assigner is keyed by the layout, not by the variables:
    # the second model's draw must land in the second model's variables.
    def build():
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(4)])

    first, second = build(), build()
    kwi.initialize(first, seed=1)
    kwi.initialize(second, seed=2)
    twin = build()
    kwi.initialize(twin, seed=2)
    for a, b in zip(second.weights, twin.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert not np.array_equal(to_numpy(first.weights[0]), to_numpy(second.weights[0]))
    # And each kernel equals what its written initializer draws.
    for layer in second.layers:
        np.testing.assert_array_equal(
            to_numpy(layer.kernel), to_numpy(layer.kernel_initializer(tuple(layer.kernel.shape)))
        )


def test_a_layout_is_compiled_the_second_time_it_is_seen():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the compiled assigner is TensorFlow's")
    shape = (13, 11)  # a layout no other test draws
    variable = keras.Variable(np.zeros(shape), dtype="float32")
    before = _draw._tf_assigner.cache_info().misses
    values = []
    for seed in (1, 2, 3):
        r = kwi.HeUniformCustom(seed=seed).request(shape, "float32")
        _draw.assign([(variable, r)])
        values.append(to_numpy(variable))
        expected = to_numpy(kwi.HeUniformCustom(seed=seed)(shape))
        np.testing.assert_array_equal(values[-1], expected)
    # One trace: not for the first sight, once for the two after it.
    assert _draw._tf_assigner.cache_info().misses == before + 1
