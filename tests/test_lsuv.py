"""LSUV: every layer's output variance to 1 on a batch, and nothing else moved."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests.helpers import to_numpy

L = keras.layers
TOL = 0.1


def _batch(shape, n=128, seed=0, scale=3.0):
    # Inputs far from unit variance, so LSUV has something to correct.
    return (scale * np.random.default_rng(seed).normal(size=(n, *shape))).astype("float32")


def _preactivation_stds(model, layers, data):
    """Each layer's output std, measured here through a sub-model (not by LSUV)."""
    probe = keras.Model(model.inputs[0], [layer.output for layer in layers])
    outs = probe(data, training=False)
    return [float(to_numpy(o).std()) for o in outs]


def _deep_mlp(activation, depth=8, width=64):
    layers = [keras.Input((32,))]
    for i in range(depth):
        layers += [L.Dense(width, name=f"d{i}"), L.Activation(activation)]
    layers.append(L.Dense(5, name="head"))
    return keras.Sequential(layers)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "selu"])
def test_sequential_every_layer_output_variance_within_tol(activation):
    keras.utils.set_random_seed(0)
    model = _deep_mlp(activation)
    data = _batch((32,))
    report = kwi.initialize(model, data, seed=1, tol=TOL)
    assert report.method == "lsuv"
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    stds = _preactivation_stds(model, dense, data)
    for layer, std in zip(dense, stds):
        assert abs(std**2 - 1) <= TOL + 1e-5, (layer.name, std)  # float32 rounding
    # The report's numbers are those measured independently.
    np.testing.assert_allclose([r.std_after for r in report], stds, rtol=1e-4)
    report.check(math.sqrt(1 - TOL), math.sqrt(1 + TOL))


def _residual_model():
    inp = keras.Input((16,))
    x = L.Dense(48, name="stem")(inp)
    x = L.ReLU()(x)
    for i in range(3):
        h = L.Dense(48, activation="relu", name=f"b{i}_a")(x)
        h = L.Dense(48, name=f"b{i}_b")(h)
        side = L.Dense(48, name=f"b{i}_side")(x)  # a second branch
        x = L.Add()([x, h, side])
        x = L.Activation("silu")(x)
    out = L.Dense(3, name="head")(x)
    return keras.Model(inp, out)


def test_functional_with_branches_and_residuals():
    model = _residual_model()
    data = _batch((16,), n=96)
    report = kwi.initialize(model, data, seed=0, tol=0.05)
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    # Pre-activations computed here from each layer's input, kernel and bias
    # (the fused "relu" layers' outputs are post-activation).
    probe = keras.Model(model.inputs[0], [layer.input for layer in dense])
    inputs = probe(data, training=False)
    for layer, x in zip(dense, inputs):
        pre = to_numpy(x) @ to_numpy(layer.kernel) + to_numpy(layer.bias)
        assert abs(pre.std() ** 2 - 1) <= 0.05 + 1e-5, (layer.name, pre.std())
    assert {r.layer for r in report} == {layer.name for layer in dense}


@pytest.mark.slow  # compiles convolutions on JAX
def test_conv_stack_and_subclassed_model():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c")(inp)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="up")(x)
    model = keras.Model(inp, x)
    data = _batch((8, 8, 3), n=32)
    report = kwi.initialize(model, data, seed=0)
    assert [round(r.std_after**2, 1) for r in report] == [1.0, 1.0, 1.0]

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = L.Dense(32, name="a")
            self.b = L.Dense(32, name="b")

        def call(self, x):
            return self.b(keras.ops.tanh(self.a(x)))

    net = Net()
    x = _batch((10,), n=64)
    net(x)
    report = kwi.initialize(net, x, seed=0)
    h = to_numpy(net.a(x))
    assert abs(h.std() ** 2 - 1) <= TOL + 1e-5
    assert abs(to_numpy(net(x)).std() ** 2 - 1) <= TOL + 1e-5
    assert [r.layer for r in report] == ["a", "b"]


def test_lsuv_factor_is_folded_into_the_written_initializer():
    keras.utils.set_random_seed(0)
    model = _deep_mlp("gelu", depth=3)
    data = _batch((32,))
    kwi.initialize(model, seed=4)  # analytic, same seed: the starting point
    analytic = {
        layer.name: to_numpy(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")
    }
    report = kwi.initialize(model, data, seed=4)
    for row in report:
        layer = model.get_layer(row.layer)
        k = to_numpy(layer.kernel)
        # The LSUV kernel is the analytic one times the reported factor ...
        np.testing.assert_allclose(k, analytic[row.layer] * row.lsuv_factor, rtol=1e-5)
        # ... and the written initializer's std is the analytic one times it too.
        init = layer.kernel_initializer
        analytic_std = (
            math.sqrt(2 / row.fan_in)
            if row.activation == "gelu"
            else math.sqrt(2 / (row.fan_in + row.fan_out))
        )
        assert init.stddev(row.shape) == pytest.approx(analytic_std * row.lsuv_factor, rel=1e-6)


def test_same_seed_same_data_is_bit_identical():
    keras.utils.set_random_seed(0)
    a = _deep_mlp("mish", depth=3)
    keras.utils.set_random_seed(1)
    b = _deep_mlp("mish", depth=3)
    data = _batch((32,))
    kwi.initialize(a, data, seed=8)
    kwi.initialize(b, data, seed=8)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(to_numpy(wa), to_numpy(wb))


def test_shapes_dtypes_and_non_kernel_weights_unchanged():
    inp = keras.Input((12,))
    x = L.Dense(16, name="d1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    x = L.Dense(4, name="d2")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    for v in bn.weights:
        v.assign(rng.uniform(0.5, 1.5, size=tuple(v.shape)).astype("float32"))
    for name in ("d1", "d2"):
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(size=tuple(bias.shape)).astype("float32"))
    data = _batch((12,), n=64)
    out_shape = tuple(model(data).shape)
    before = {v.path: (to_numpy(v), v.dtype, tuple(v.shape)) for v in model.weights}
    kwi.initialize(model, data, seed=0, bias="keep")
    assert tuple(model(data).shape) == out_shape
    kernels = {"d1/kernel", "d2/kernel"}
    for v in model.weights:
        value, dtype, shape = before[v.path]
        assert v.dtype == dtype and tuple(v.shape) == shape, v.path
        if v.path not in kernels:
            np.testing.assert_array_equal(to_numpy(v), value, err_msg=v.path)
        else:
            assert not np.array_equal(to_numpy(v), value)


def _weights(model):
    return [to_numpy(v) for v in model.weights]


def _configs(model):
    return [
        keras.initializers.serialize(layer.kernel_initializer)
        for layer in model.layers
        if hasattr(layer, "kernel_initializer")
    ]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: _batch((32,), n=8), ValueError, "at least 16 examples"),
        (lambda: np.where(np.arange(32) == 3, np.nan, _batch((32,))), ValueError, "NaN"),
        (lambda: _batch((31,)), ValueError, "does not fit"),
        (lambda: _batch((32, 2)), ValueError, "does not fit"),
        (lambda: [_batch((32,)), _batch((32,))], ValueError, "does not fit"),
        (lambda: np.full((32, 32), "x"), TypeError, "numbers"),
    ],
    ids=["too_small", "nan", "wrong_width", "wrong_rank", "two_inputs", "strings"],
)
def test_bad_data_raises_before_any_weight_changes(make, error, match):
    keras.utils.set_random_seed(0)
    model = _deep_mlp("relu", depth=2)
    weights, configs = _weights(model), _configs(model)
    with pytest.raises(error, match=match):
        kwi.initialize(model, make(), seed=0)
    for w0, w1 in zip(weights, _weights(model)):
        np.testing.assert_array_equal(w0, w1)
    assert _configs(model) == configs


def test_data_the_model_rejects_raises_before_any_weight_changes():
    class Picky(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, x):
            return self.d(keras.ops.reshape(x, (-1, 6)))

    model = Picky()
    model(np.zeros((2, 6), "float32"))
    weights = _weights(model)
    with pytest.raises(ValueError, match="does not fit"):
        kwi.initialize(model, _batch((5,), n=20))  # 100 values: no (-1, 6) reshape
    for w0, w1 in zip(weights, _weights(model)):
        np.testing.assert_array_equal(w0, w1)


def test_iteration_cap_and_check():
    # A kept bias of std 5 puts a floor of 25 under the output variance:
    # no kernel scale reaches 1, so LSUV stops at max_iter and says so.
    model = keras.Sequential([keras.Input((8,)), L.Dense(64, name="d")])
    model.get_layer("d").bias.assign(
        (5 * np.random.default_rng(0).normal(size=64)).astype("float32")
    )
    report = kwi.initialize(model, _batch((8,)), seed=0, bias="keep", max_iter=3)
    row = report["d"][0]
    assert row.lsuv_iterations == 3
    assert "stopped after 3 steps" in row.note
    with pytest.raises(kwi.SignalOutOfBandError, match="d "):
        report.check(0.9, 1.1)


@pytest.mark.slow  # compiles a recurrent loop on JAX
def test_embedding_and_recurrent_layers_are_measured_not_rescaled():
    tok = keras.Input((6,), dtype="int32")
    x = L.Embedding(50, 16, name="emb")(tok)
    x = L.LSTM(16, return_sequences=True, name="lstm")(x)
    x = L.Dense(8, name="d")(x)
    model = keras.Model(tok, x)
    data = np.random.default_rng(0).integers(0, 50, (32, 6))
    report = kwi.initialize(model, data, seed=0)
    for row in report["lstm"]:
        assert row.lsuv_iterations is None and "recurrent" in row.note
        assert not row.checked
    assert report["emb"][0].lsuv_iterations is None
    assert abs(report["d"][0].std_after ** 2 - 1) <= TOL
    # The LSTM's tanh-bounded output is reported but not held to the band.
    assert report["lstm"][-1].std_after < 0.8
    report.check(0.8, 1.25)


def test_orthogonal_start_stays_orthogonal_and_writes_the_folded_gain():
    model = keras.Sequential([keras.Input((32,)), L.Dense(64, name="d"), L.ReLU()])
    data = _batch((32,))
    row = kwi.initialize(model, data, seed=0, orthogonal=True)["d"][0]
    k = to_numpy(model.get_layer("d").kernel)  # (32, 64): orthogonal rows
    gram = k @ k.T
    np.testing.assert_allclose(gram, gram[0, 0] * np.eye(32), atol=1e-4 * gram[0, 0])
    assert abs(row.std_after**2 - 1) <= TOL
    init = model.get_layer("d").kernel_initializer
    assert isinstance(init, keras.initializers.Orthogonal)
    # Orthogonal rows of length 64 scaled by the gain: gram = gain^2 * I.
    assert init.gain**2 == pytest.approx(gram[0, 0], rel=1e-4)


def test_a_layer_the_model_never_calls_is_reported_not_measured():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.used = L.Dense(8, name="used")
            self.spare = L.Dense(8, name="spare")

        def call(self, x):
            return self.used(x)

    net = Net()
    net.spare.build((None, 4))  # built, but never called by `call`
    net(np.zeros((2, 4), "float32"))
    report = kwi.initialize(net, _batch((4,)), seed=0)
    spare = report["spare"][0]
    assert spare.std_after is None and spare.lsuv_iterations is None
    assert "did not call" in spare.note
    assert abs(report["used"][0].std_after ** 2 - 1) <= TOL


class _Counting(L.Dense):
    """A Dense layer that counts how often its `call` runs."""

    calls = 0

    def call(self, inputs, training=None):
        _Counting.calls += 1
        return super().call(inputs)


def _counting_mlp(depth=4, width=32):
    return keras.Sequential(
        [keras.Input((width,))]
        + [_Counting(width, activation="gelu", name=f"c{i}") for i in range(depth)]
    )


def test_lsuv_calls_each_layer_once_and_lands_on_one_in_one_step():
    model = _counting_mlp()
    data = _batch((32,), n=256)
    _Counting.calls = 0
    report = kwi.initialize(model, data, seed=0)
    # One pass, one call per layer: no "before" pass, no verification call.
    assert _Counting.calls == 4
    assert [r.lsuv_iterations for r in report] == [1, 1, 1, 1]
    h, stds = keras.ops.convert_to_tensor(data), []
    for layer in model.layers:  # pre-activations computed here: x @ W + b
        pre = keras.ops.matmul(h, layer.kernel) + layer.bias
        stds.append(float(to_numpy(pre).std()))
        h = layer.activation(pre)
    # The bias is zero, so scaling the kernel by c scales the pre-activation
    # by c exactly: the std is 1 up to float32 rounding (1e-6), far tighter
    # than the loop's tolerance of 0.1 on the variance.
    np.testing.assert_allclose(stds, 1.0, rtol=1e-4)
    np.testing.assert_allclose([r.std_after for r in report], stds, rtol=1e-4)


def test_a_kept_bias_takes_the_measure_rescale_verify_loop():
    model = _counting_mlp(depth=2)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.bias.assign((0.3 * rng.normal(size=32)).astype("float32"))
    _Counting.calls = 0
    report = kwi.initialize(model, _batch((32,), n=128), seed=0, bias="keep", tol=0.01)
    # Each layer: the "before" pass's call, then LSUV's calls: measure, and
    # re-measure after each step, and the output.
    assert _Counting.calls > 2 * 2
    for row in report:
        assert abs(row.std_after**2 - 1) <= 0.01


def test_lsuv_std_before_is_the_drawn_kernels_std_on_the_same_signal():
    keras.utils.set_random_seed(0)
    model = _deep_mlp("tanh", depth=2)
    data = _batch((32,))
    kwi.initialize(model, seed=7)  # analytic: the draw LSUV starts from
    w0 = to_numpy(model.get_layer("d0").kernel)
    report = kwi.initialize(model, data, seed=7)
    # The first layer sees the raw batch: its "before" is the std of
    # x @ W_drawn (bias zero), computed here from the analytic kernel.
    expected = (data.astype(np.float64) @ w0).std()
    assert report["d0"][0].std_before == pytest.approx(expected, rel=1e-4)
    # Later layers: the drawn kernel on the rescaled predecessors' signal,
    # which is std before / factor's inverse: std_before * factor = 1.
    for row in report:
        assert row.std_before * row.lsuv_factor == pytest.approx(1.0, rel=1e-4)


def test_the_run_loop_honours_a_probes_target_std():
    from keras_weightinit import _forward

    model = keras.Sequential([keras.Input((16,)), L.Dense(32, name="a"), L.Dense(8, name="b")])
    for layer in model.layers:
        layer.bias.assign(np.zeros(tuple(layer.bias.shape), "float32"))
    data = keras.ops.convert_to_tensor(_batch((16,)))
    probes = [
        _forward.Probe(model.get_layer("a"), model.get_layer("a").kernel, target_std=0.25),
        _forward.Probe(model.get_layer("b"), model.get_layer("b").kernel),
    ]
    _forward.run(model, data, probes, lsuv=True, tol=0.1, max_iter=10, zero_bias=True)
    assert probes[0].std == pytest.approx(0.25, rel=1e-5)
    assert probes[1].std == pytest.approx(1.0, rel=1e-5)
    stds = _preactivation_stds(model, model.layers, to_numpy(data).astype("float32"))
    np.testing.assert_allclose(stds, [0.25, 1.0], rtol=1e-4)


def test_a_dead_layer_is_left_as_drawn_with_a_note():
    inp = keras.Input((8,))
    net = keras.Model(inp, L.Dense(4, name="b")(L.Lambda(lambda x: 0.0 * x)(inp)))
    kwi.initialize(net, seed=0)
    drawn = to_numpy(net.get_layer("b").kernel)
    report = kwi.initialize(net, _batch((8,)), seed=0)
    row = report["b"][0]
    # A zero input: the std is 0 whatever the kernel, so no factor applies.
    assert row.std_after == 0.0 and "output std is 0" in row.note
    assert row.lsuv_factor == 1.0
    np.testing.assert_array_equal(to_numpy(net.get_layer("b").kernel), drawn)
