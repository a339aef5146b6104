"""initialize(): fans from the layer type, seeds, config write-back, reports."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests.helpers import assert_mean, assert_std, check_ok, run_python, to_numpy

L = keras.layers

# Kernels of 24.5k (GRU) to 197k (a pointwise kernel) values, checked within
# 6.5 standard errors of the sample std (1/sqrt(2n) <= 0.45%,
# `tests.helpers.assert_std`): 1.0% to 2.9%, under the flat 3% used before,
# while every wrong fan rule below is off by a factor of sqrt(2) or more.
STD_N_SE = 6.5

# Expected variance, computed here from the family and the fans:
GLOROT = ("glorot", lambda fi, fo: 2.0 / (fi + fo))
HE = ("he", lambda fi, fo: 2.0 / fi)
LECUN = ("lecun", lambda fi, fo: 1.0 / fi)
FAN_IN_1 = ("fan_in, scale 1", lambda fi, fo: 1.0 / fi)  # Glorot's scale 1, fan_in mode


def _model(input_shape, *layers, dtype="float32"):
    inp = keras.Input(input_shape, dtype=dtype)
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


# (id, builder -> (model, layer), weight, shape, (fan_in, fan_out), rule)
# The fans are written out from each layer's definition, independently of
# keras_weightinit: what one output unit sees (fan_in) and what one input unit
# feeds (fan_out).
CASES = [
    (
        "dense",
        lambda: _model((150,), L.Dense(200, activation="relu")),
        "kernel",
        (150, 200),
        (150, 200),
        HE,
    ),
    (
        "einsum_dense",
        lambda: _model((120,), L.EinsumDense("ab,bcd->acd", (8, 32))),
        "kernel",
        (120, 8, 32),
        (120, 8 * 32),
        GLOROT,
    ),
    (
        "conv1d",
        lambda: _model((20, 96), L.Conv1D(64, 5, activation="selu")),
        "kernel",
        (5, 96, 64),
        (5 * 96, 5 * 64),
        LECUN,
    ),
    (
        "conv2d_then_relu_layer",
        lambda: _model((8, 8, 96), L.Conv2D(32, 3), L.ReLU()),
        "kernel",
        (3, 3, 96, 32),
        (9 * 96, 9 * 32),
        HE,
    ),
    (
        "conv3d",
        lambda: _model((5, 5, 5, 64), L.Conv3D(16, 3, activation="relu")),
        "kernel",
        (3, 3, 3, 64, 16),
        (27 * 64, 27 * 16),
        HE,
    ),
    # Transposed: kernel (*k, out, in); each output sees k*in inputs.
    (
        "conv1d_transpose",
        lambda: _model((6, 384), L.Conv1DTranspose(16, 5, activation="relu")),
        "kernel",
        (5, 16, 384),
        (5 * 384, 5 * 16),
        HE,
    ),
    (
        "conv2d_transpose",
        lambda: _model((4, 4, 384), L.Conv2DTranspose(8, 3), L.ReLU()),
        "kernel",
        (3, 3, 8, 384),
        (9 * 384, 9 * 8),
        HE,
    ),
    (
        "conv3d_transpose",
        lambda: _model((3, 3, 3, 256), L.Conv3DTranspose(4, 3, activation="relu")),
        "kernel",
        (3, 3, 3, 4, 256),
        (27 * 256, 27 * 4),
        HE,
    ),
    # Depthwise: kernel (*k, in, mult); each output sees the k taps of one channel.
    (
        "depthwise_conv1d",
        lambda: _model((8, 1536), L.DepthwiseConv1D(5, depth_multiplier=4, activation="relu")),
        "kernel",
        (5, 1536, 4),
        (5, 5 * 4),
        HE,
    ),
    (
        "depthwise_conv2d",
        lambda: _model((5, 5, 1536), L.DepthwiseConv2D(3, depth_multiplier=2), L.ReLU()),
        "kernel",
        (3, 3, 1536, 2),
        (9, 9 * 2),
        HE,
    ),
    # Separable: the depthwise half feeds the pointwise half directly (linear).
    (
        "separable_conv1d_depthwise",
        lambda: _model((8, 3072), L.SeparableConv1D(32, 5, depth_multiplier=2, activation="relu")),
        "depthwise_kernel",
        (5, 3072, 2),
        (5, 5 * 2),
        GLOROT,
    ),
    (
        "separable_conv1d_pointwise",
        lambda: _model((8, 3072), L.SeparableConv1D(32, 5, depth_multiplier=2, activation="relu")),
        "pointwise_kernel",
        (1, 6144, 32),
        (6144, 32),
        HE,
    ),
    (
        "separable_conv2d_depthwise",
        lambda: _model((5, 5, 3072), L.SeparableConv2D(16, 3, activation="relu")),
        "depthwise_kernel",
        (3, 3, 3072, 1),
        (9, 9),
        GLOROT,
    ),
    (
        "separable_conv2d_pointwise",
        lambda: _model((5, 5, 3072), L.SeparableConv2D(16, 3, activation="relu")),
        "pointwise_kernel",
        (1, 1, 3072, 16),
        (3072, 16),
        HE,
    ),
    # Recurrent input kernels: gates stacked on the last axis; fan_in mode.
    ("lstm", lambda: _model((3, 128), L.LSTM(64)), "kernel", (128, 4 * 64), (128, 64), FAN_IN_1),
    ("gru", lambda: _model((3, 128), L.GRU(64)), "kernel", (128, 3 * 64), (128, 64), FAN_IN_1),
    (
        "simple_rnn_relu",
        lambda: _model((3, 240), L.SimpleRNN(128, activation="relu")),
        "kernel",
        (240, 128),
        (240, 128),
        HE,
    ),
    # A lookup: each output is one row, fan_in 1, so N(0, 1).
    (
        "embedding",
        lambda: _model((4,), L.Embedding(2000, 16), dtype="int32"),
        "embeddings",
        (2000, 16),
        (1, 16),
        FAN_IN_1,
    ),
]


def _mha_model():
    q = keras.Input((5, 240))
    out = L.MultiHeadAttention(num_heads=4, key_dim=32, name="mha")(q, q)
    return keras.Model(q, out)


CASES += [
    ("mha_query", _mha_model, "query", (240, 4, 32), (240, 128), GLOROT),
    ("mha_value", _mha_model, "value", (240, 4, 32), (240, 128), GLOROT),
    ("mha_output", _mha_model, "output", (4, 32, 240), (128, 240), GLOROT),
]


def _row(report, weight):
    rows = [r for r in report if r.weight == weight]
    assert len(rows) == 1, [(r.layer, r.weight) for r in report]
    return rows[0]


def _variable(model, row):
    layer = model.get_layer(row.layer)
    if isinstance(layer, L.MultiHeadAttention):
        return getattr(layer, f"_{row.weight}_dense").kernel
    if isinstance(layer, L.RNN):
        return getattr(layer.cell, row.weight)
    return getattr(layer, row.weight)


@pytest.mark.parametrize(
    "build, weight, shape, fans, rule", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_kernel_variance_matches_the_formula_with_the_true_fans(build, weight, shape, fans, rule):
    """Sampled std, fans in the report, and the initializer written back."""
    model = build()
    report = kwi.initialize(model, seed=11)
    row = _row(report, weight)
    assert row.shape == shape
    assert (row.fan_in, row.fan_out) == fans
    expected_std = math.sqrt(rule[1](*fans))
    values = to_numpy(_variable(model, row))
    assert values.shape == shape
    assert_std(values, expected_std, STD_N_SE)
    # Mean 0: within 6 standard errors of the sample mean.
    assert_mean(values, 0.0, expected_std, 6)

    # The initializer written into the layer has the same scheme.
    layer = model.get_layer(row.layer)
    attr = {
        "kernel": "depthwise_initializer"
        if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D))
        else "kernel_initializer",
        "depthwise_kernel": "depthwise_initializer",
        "pointwise_kernel": "pointwise_initializer",
        "embeddings": "embeddings_initializer",
    }.get(weight, "kernel_initializer")
    holder = layer
    if isinstance(layer, L.MultiHeadAttention):
        holder = getattr(layer, f"_{weight}_dense")
    elif isinstance(layer, L.RNN):
        holder = layer.cell
    init = getattr(holder, attr)
    assert isinstance(init, kwi.VarianceScalingCustom)
    assert keras.initializers.serialize(init)["config"] == row.config
    # The written initializer alone gives the formula's std for this shape.
    assert init.stddev(shape) == pytest.approx(math.sqrt(rule[1](*fans)), rel=1e-12)


def test_keras_shape_rule_would_be_wrong_for_transposed_and_depthwise():
    # The cases above would fail with Keras's rule: check that the rule really
    # differs there, so that those tests can fail.
    for shape, true_fan_in in (((3, 3, 8, 384), 9 * 384), ((3, 3, 1536, 2), 9)):
        keras_fan_in, _ = kwi.compute_fans(shape)
        assert max(keras_fan_in / true_fan_in, true_fan_in / keras_fan_in) >= 8


def test_recurrent_kernel_is_orthogonal_and_written():
    model = _model((3, 16), L.LSTM(8))
    kwi.initialize(model, seed=0)
    cell = model.layers[-1].cell
    u = to_numpy(cell.recurrent_kernel)  # (8, 32): rows orthonormal
    np.testing.assert_allclose(u @ u.T, np.eye(8), atol=1e-5)
    assert isinstance(cell.recurrent_initializer, keras.initializers.Orthogonal)
    # Keras's forget-gate bias (unit_forget_bias) survives the zeroing.
    b = to_numpy(cell.bias)
    np.testing.assert_array_equal(b, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])


def test_layer_fans_public_helper():
    layer = L.Conv2DTranspose(8, 3)
    layer.build((None, 16, 16, 64))
    fans = kwi.layer_fans(layer)["kernel"]
    assert (fans.fan_in, fans.fan_out) == (9 * 64, 9 * 8)
    assert kwi.compute_fans((3, 3, 8, 64), fans.input_axes, fans.output_axes) == (576, 72)
    dw = L.DepthwiseConv2D(3, depth_multiplier=2)
    dw.build((None, 8, 8, 64))
    assert (kwi.layer_fans(dw)["kernel"].fan_in, kwi.layer_fans(dw)["kernel"].fan_out) == (9, 18)
    ed = L.EinsumDense("abc,bcd->abd", output_shape=(4, 7))  # b is batch-like
    ed.build((None, 4, 5))
    assert (kwi.layer_fans(ed)["kernel"].fan_in, kwi.layer_fans(ed)["kernel"].fan_out) == (5, 7)
    flatten = L.Flatten()
    flatten.build((None, 3, 4))
    assert kwi.layer_fans(flatten) == {}
    with pytest.raises(ValueError, match="not built"):
        kwi.layer_fans(L.Dense(3))
    with pytest.raises(TypeError, match="layer"):
        kwi.layer_fans("dense")


# -- which activation follows ---------------------------------------------------


def test_activation_found_through_the_graph():
    inp = keras.Input((32,))
    a = L.Dense(32, name="own")(inp)
    a = L.Dropout(0.1)(a)
    a = L.LeakyReLU(negative_slope=0.1, name="leaky")(a)
    b = L.Dense(32, activation="tanh", name="tanh_own")(a)
    c = L.Dense(32, name="res")(b)
    s = L.Add()([b, c])
    s = L.BatchNormalization()(s)
    s = L.Activation("selu", name="act")(s)
    out = L.Dense(4, name="head")(s)
    model = keras.Model(inp, out)
    report = kwi.initialize(model, seed=0)
    by = {r.layer: r for r in report}
    assert (by["own"].activation, by["own"].activation_source) == ("leaky_relu", "layer leaky")
    # He for slope a: 2 / (1 + a^2)
    assert by["own"].scale == pytest.approx(2.0 / (1 + 0.1**2))
    assert by["tanh_own"].activation_source == "own"
    assert by["tanh_own"].activation == "tanh"
    assert by["res"].activation == "selu"  # through Add and BatchNormalization
    assert by["res"].initializer == "LecunNormalCustom"
    assert (by["head"].activation, by["head"].activation_source) == ("linear", "none")


def test_nested_sequential_and_subclassed_model():
    inner = keras.Sequential([L.ReLU(name="inner_relu"), L.Dense(8, name="inner_dense")])
    inp = keras.Input((8,))
    x = L.Dense(8, name="before")(inp)
    out = inner(x)
    model = keras.Model(inp, out)
    by = {r.layer: r for r in kwi.initialize(model, seed=0)}
    assert (by["before"].activation, by["before"].activation_source) == ("relu", "layer inner_relu")

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d1 = L.Dense(16, name="d1")
            self.act = L.ELU(name="elu_layer")
            self.d2 = L.Dense(4, activation="gelu", name="d2")

        def call(self, x):
            return self.d2(self.act(self.d1(x)))

    net = Net()
    net(np.zeros((2, 8), "float32"))
    by = {r.layer: r for r in kwi.initialize(net, seed=0)}
    assert by["d1"].activation == "elu"
    assert by["d1"].activation_source == "order elu_layer"
    assert (by["d2"].activation, by["d2"].initializer) == ("gelu", "HeNormalCustom")


# -- seeds ------------------------------------------------------------------------


def _mlp(seed_build=0):
    keras.utils.set_random_seed(seed_build)
    return keras.Sequential(
        [
            keras.Input((24,)),
            L.Dense(24, activation="relu"),
            L.Dense(24, activation="relu"),
            L.Dense(6),
        ]
    )


def _kernels(model):
    return [to_numpy(w) for w in model.weights]


def test_same_seed_is_bit_identical_and_streams_are_distinct():
    a, b = _mlp(1), _mlp(2)  # different starting weights, different layer names
    kwi.initialize(a, seed=123)
    kwi.initialize(b, seed=123)
    for wa, wb in zip(_kernels(a), _kernels(b)):
        np.testing.assert_array_equal(wa, wb)
    first = _kernels(a)
    kwi.initialize(a, seed=123)  # again on the same model
    for w0, w1 in zip(first, _kernels(a)):
        np.testing.assert_array_equal(w0, w1)
    kwi.initialize(a, seed=124)
    assert not np.array_equal(first[0], _kernels(a)[0])
    # Two kernels of one shape in one model come from distinct streams.
    k1, k2 = to_numpy(a.layers[0].kernel), to_numpy(a.layers[1].kernel)
    assert k1.shape == (24, 24) and k2.shape == (24, 24)
    assert abs(np.corrcoef(k1.ravel(), k2.ravel())[0, 1]) < 0.2  # 576 pairs: SE 0.04


def test_unseeded_follows_keras_set_random_seed():
    a, b = _mlp(1), _mlp(1)
    keras.utils.set_random_seed(9)
    kwi.initialize(a)
    keras.utils.set_random_seed(9)
    kwi.initialize(b)
    np.testing.assert_array_equal(_kernels(a)[0], _kernels(b)[0])
    assert a.layers[0].kernel_initializer.get_config()["seed"] is None


def test_biases_zeroed_unless_kept():
    model = _mlp(0)
    for layer in model.layers:
        layer.bias.assign(np.full(tuple(layer.bias.shape), 0.5, "float32"))
    kwi.initialize(model, seed=0, bias="keep")
    assert all(np.all(to_numpy(layer.bias) == 0.5) for layer in model.layers)
    kwi.initialize(model, seed=0)
    assert all(np.all(to_numpy(layer.bias) == 0.0) for layer in model.layers)


# -- config write-back: clone_model and save/reload -------------------------------


def _conv_model():
    inp = keras.Input((6, 6, 16))
    x = L.Conv2DTranspose(8, 3, activation="relu", name="up")(inp)
    x = L.DepthwiseConv2D(3, name="dw")(x)
    x = L.ReLU()(x)
    x = L.SeparableConv2D(4, 3, activation="selu", name="sep")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(3, name="head")(x)
    return keras.Model(inp, x)


def _init_configs(model):
    out = {}
    for layer in model.layers:
        for attr in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer"):
            if hasattr(layer, attr):
                out[f"{layer.name}.{attr}"] = keras.initializers.serialize(getattr(layer, attr))
    return out


@pytest.mark.slow  # builds two conv models (compiles on JAX)
def test_clone_model_reproduces_the_scheme_and_values():
    model = _conv_model()
    kwi.initialize(model, seed=5)
    clone = keras.models.clone_model(model)
    assert _init_configs(clone) == _init_configs(model)
    # Seeded: a clone built from the configs draws the very same kernels.
    for name in ("up", "dw", "sep", "head"):
        pairs = zip(model.get_layer(name).weights, clone.get_layer(name).weights, strict=True)
        for w, wc in pairs:
            np.testing.assert_array_equal(to_numpy(w), to_numpy(wc), err_msg=w.path)


def test_clone_of_unseeded_init_has_the_scheme_but_fresh_values():
    model = _conv_model()
    kwi.initialize(model)
    clone = keras.models.clone_model(model)
    assert _init_configs(clone) == _init_configs(model)
    k, kc = to_numpy(model.get_layer("up").kernel), to_numpy(clone.get_layer("up").kernel)
    assert not np.array_equal(k, kc)
    # fan_in of the transposed kernel (3, 3, 8, 16) is 3*3*16 (He: 2/fan_in).
    # 1152 values: SE of the std 2.1%; 5.5 SE is 11.5%, under the 12% used before.
    assert_std(kc, math.sqrt(2 / (9 * 16)), 5.5)


@pytest.mark.slow
def test_save_and_reload_in_a_fresh_process(tmp_path):
    model = _conv_model()
    report = kwi.initialize(model, seed=7)
    path = tmp_path / "m.keras"
    model.save(path)
    expected = {
        "configs": _init_configs(model),
        "weights": [to_numpy(w).tolist() for w in model.weights],
    }
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    assert report["up"][0].initializer == "HeNormalCustom"
    out = check_ok(
        run_python(
            f"""
            import json
            import numpy as np
            import keras
            import keras_weightinit
            model = keras.models.load_model({str(path)!r})
            expected = json.load(open({str(tmp_path / "expected.json")!r}))
            configs = {{}}
            for layer in model.layers:
                for attr in ("kernel_initializer", "depthwise_initializer",
                             "pointwise_initializer"):
                    if hasattr(layer, attr):
                        configs[f"{{layer.name}}.{{attr}}"] = keras.initializers.serialize(
                            getattr(layer, attr))
            assert json.loads(json.dumps(configs)) == expected["configs"], configs
            for w, e in zip(model.weights, expected["weights"]):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), np.array(e))
            # A fresh model from the reloaded config draws the same scheme.
            fresh = keras.Model.from_config(model.get_config())
            k = keras.ops.convert_to_numpy(fresh.get_layer("dw").kernel)
            print("OK", type(model.get_layer("up").kernel_initializer).__name__, k.shape)
            """,
            cwd=tmp_path.parent,
        )
    )
    assert "OK HeNormalCustom (3, 3, 8, 1)" in out


# -- what is left alone -------------------------------------------------------------


class Scale(keras.layers.Layer):
    """A layer of our own, with a weight initialize cannot know about."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return x * self.w


def test_unknown_layers_are_left_alone_and_reported():
    inp = keras.Input((8,))
    x = L.Dense(8, name="d")(inp)
    x = Scale(name="mine")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Dense(8, activation=lambda t: t * 2.0, name="custom_act")(x)
    model = keras.Model(inp, x)
    model.get_layer("mine").w.assign(np.arange(8, dtype="float32"))
    before = {v.path: to_numpy(v) for v in model.weights}
    report = kwi.initialize(model, seed=0)
    skipped = {s.layer: s.reason for s in report.skipped}
    assert "unknown layer type" in skipped["mine"]
    assert "no kernel" in skipped["bn"]
    assert "custom_act" in skipped and "activation" in skipped["custom_act"]
    assert [r.layer for r in report] == ["d"]
    for v in model.weights:
        if not v.path.startswith("d/"):
            np.testing.assert_array_equal(to_numpy(v), before[v.path], err_msg=v.path)
    assert "mine (Scale): unknown layer type" in str(report)


# -- arguments and the report ------------------------------------------------------


def test_bad_arguments():
    model = _mlp(0)
    with pytest.raises(TypeError, match="model"):
        kwi.initialize(L.Dense(3))
    with pytest.raises(ValueError, match="built"):
        kwi.initialize(keras.Sequential([L.Dense(3)]))
    for kwargs, name in (
        ({"method": "magic"}, "method"),
        ({"distribution": "truncated_normal"}, "distribution"),
        ({"bias": "ones"}, "bias"),
        ({"tol": 0.0}, "tol"),
        ({"tol": 1.5}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"method": "lsuv"}, "data"),
    ):
        with pytest.raises(ValueError, match=name):
            kwi.initialize(model, **kwargs)
    with pytest.raises(TypeError, match="seed"):
        kwi.initialize(model, seed="1")


def test_uniform_and_orthogonal_options():
    model = _model((300,), L.Dense(100, activation="relu"))
    row = kwi.initialize(model, seed=0, distribution="uniform")[model.layers[-1].name][0]
    k = to_numpy(model.layers[-1].kernel)
    assert row.initializer == "HeUniformCustom"
    limit = math.sqrt(6 / 300)  # He uniform bound
    assert k.max() <= limit and k.min() >= -limit and k.max() > 0.95 * limit
    kwi.initialize(model, seed=0, orthogonal=True)
    k = to_numpy(model.layers[-1].kernel)  # (300, 100): orthogonal columns
    gram = k.T @ k
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-4)
    # Scaled so that the entries have He's variance 2/300.
    assert k.std() == pytest.approx(math.sqrt(2 / 300), rel=0.02)


def test_report_prints_and_checks():
    model = _mlp(0)
    report = kwi.initialize(model, seed=0)
    text = str(report)
    for word in ("layer", "fan_in", "fan_out", "activation", "HeNormalCustom", "24x24"):
        assert word in text
    with pytest.raises(ValueError, match="data"):
        report.check()
    x = np.random.default_rng(0).normal(size=(64, 24)).astype("float32")
    report = kwi.initialize(model, x, method="analytic", seed=0)
    assert all(r.std_before is not None and r.std_after is not None for r in report)
    report.check(0.3, 3.0)
    with pytest.raises(kwi.SignalOutOfBandError, match="outside"):
        report.check(5.0, 6.0)
    with pytest.raises(ValueError, match="low"):
        report.check(2.0, 1.0)


def test_gain_option_reaches_the_factory_and_the_config():
    model = _model((400,), L.Dense(100, activation="gelu", name="g"))
    row = kwi.initialize(model, seed=0, gain="fixed_point")["g"][0]
    # 2.1551, the gains table of docs/activations.md
    expected_scale = kwi.for_activation("gelu", gain="fixed_point").scale
    assert row.scale == pytest.approx(expected_scale)
    assert model.get_layer("g").kernel_initializer.get_config()["scale"] == row.scale
    k = to_numpy(model.get_layer("g").kernel)
    # 40k values: SE of the std 0.35%, so 4 SE is 1.41% (1.5% before); He's
    # scale 2 would be 3.7% low, 6 SE beyond the tolerance.
    assert_std(k, math.sqrt(expected_scale / 400), 4)


def test_wrappers_are_walked_into():
    inp = keras.Input((5, 8))
    x = L.TimeDistributed(L.Dense(6, activation="relu", name="inner"))(inp)
    x = L.Bidirectional(L.GRU(4, name="gru"))(x)
    model = keras.Model(inp, x)
    report = kwi.initialize(model, seed=0)
    assert {(r.layer, r.weight) for r in report} == {
        ("inner", "kernel"),
        ("forward_gru", "kernel"),
        ("forward_gru", "recurrent_kernel"),
        ("backward_gru", "kernel"),
        ("backward_gru", "recurrent_kernel"),
    }
    assert report["inner"][0].initializer == "HeNormalCustom"
