"""diagnose: its numbers against a forward and backward pass done by hand."""

from __future__ import annotations

import math
import re

import keras
import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_weightinit as kwi
from keras_weightinit import Diagnosis, Thresholds, diagnose
from keras_weightinit._table import number

matplotlib.use("Agg")

RNG = np.random.default_rng(1234)
X = RNG.normal(size=(16, 3)).astype("float32")
W1 = RNG.normal(size=(3, 5)).astype("float32")
B1 = RNG.normal(scale=0.1, size=(5,)).astype("float32")
W2 = RNG.normal(size=(5, 2)).astype("float32")
B2 = RNG.normal(scale=0.1, size=(2,)).astype("float32")
T = RNG.normal(size=(16, 2)).astype("float32")


def two_layer_model(sequential_build: bool = False) -> keras.Model:
    if sequential_build:
        model = keras.Sequential([keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2)])
        model.build((None, 3))
    else:
        inputs = keras.Input((3,))
        hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
        outputs = keras.layers.Dense(2, name="out")(hidden)
        model = keras.Model(inputs, outputs)
    model.layers[-2].set_weights([W1, B1])
    model.layers[-1].set_weights([W2, B2])
    return model


def by_hand(targets=None):
    """Forward and backward pass in float64 NumPy.

    Loss without targets: mean(y²) over the batch and the units, so
    dL/dy = 2·y / y.size. With targets and MSE: mean((y - t)²), so
    dL/dy = 2·(y - t) / y.size.
    """
    x, w1, b1, w2, b2 = (a.astype(np.float64) for a in (X, W1, B1, W2, B2))
    z1 = x @ w1 + b1
    h1 = np.maximum(z1, 0.0)
    y = h1 @ w2 + b2
    err = y if targets is None else y - targets.astype(np.float64)
    loss = np.mean(err**2)
    dy = 2.0 * err / y.size
    dw2 = h1.T @ dy
    dz1 = (dy @ w2.T) * (z1 > 0)
    dw1 = x.T @ dz1
    return {
        "loss": loss,
        "mean": [h1.mean(), y.mean()],
        "std": [h1.std(), y.std()],
        "grad_norm": [np.linalg.norm(dw1), np.linalg.norm(dw2)],
        "weight_norm": [np.linalg.norm(w1), np.linalg.norm(w2)],
    }


# float32 forward/backward on a 16x5 problem: round-off is ~1e-6 relative;
# 1e-4 leaves room for the backend's summation order and nothing more.
RTOL = 1e-4


def check_against(result: Diagnosis, expected: dict) -> None:
    assert len(result.layers) == 2
    np.testing.assert_allclose(result.loss, expected["loss"], rtol=RTOL)
    for i, row in enumerate(result.layers):
        np.testing.assert_allclose(row.mean, expected["mean"][i], rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(row.std, expected["std"][i], rtol=RTOL)
        np.testing.assert_allclose(row.grad_norm, expected["grad_norm"][i], rtol=RTOL)
        np.testing.assert_allclose(row.weight_norm, expected["weight_norm"][i], rtol=RTOL)
        np.testing.assert_allclose(
            row.relative_grad,
            expected["grad_norm"][i] / expected["weight_norm"][i],
            rtol=RTOL,
        )


def test_matches_hand_computation_without_targets():
    result = diagnose(two_layer_model(), X)
    check_against(result, by_hand())
    assert [row.name for row in result.layers] == ["hidden", "out"]
    assert [row.depth for row in result.layers] == [1, 2]
    assert [row.kernel_shape for row in result.layers] == [(3, 5), (5, 2)]
    np.testing.assert_allclose(result.input_std, X.astype(np.float64).std(), rtol=RTOL)


def test_matches_hand_computation_with_targets_and_mse():
    result = diagnose(two_layer_model(), X, T, loss="mean_squared_error")
    check_against(result, by_hand(T))


def test_uses_the_compiled_loss_when_targets_are_given():
    model = two_layer_model()
    model.compile(loss="mse")
    check_against(diagnose(model, X, T), by_hand(T))


def test_sequential_built_with_build():
    check_against(diagnose(two_layer_model(sequential_build=True), X), by_hand())


def test_does_not_change_the_weights():
    model = two_layer_model()
    diagnose(model, X, T, loss="mse")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.layers[-2].kernel), W1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.layers[-1].kernel), W2)


def test_two_input_functional_model_and_layer_selection():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    left = keras.layers.Dense(4, name="left")(a)
    right = keras.layers.Dense(4, name="right")(b)
    merged = keras.layers.Concatenate()([left, right])
    out = keras.layers.Dense(1, name="head")(merged)
    model = keras.Model([a, b], out)
    data = [X, X[:, :2]]
    result = diagnose(model, data)
    assert [row.name for row in result.layers] == ["left", "right", "head"]
    # Only the layers asked for, in the order given.
    picked = diagnose(model, data, layers=["head", "left"])
    assert [row.name for row in picked.layers] == ["head", "left"]
    np.testing.assert_allclose(picked.layers[0].grad_norm, result.layers[2].grad_norm, rtol=RTOL)


def test_frozen_kernel_has_no_gradient_and_no_gradient_flag():
    model = two_layer_model()
    model.layers[-2].trainable = False
    result = diagnose(model, X)
    assert math.isnan(result.layers[0].grad_norm)
    assert not any("gradient" in flag for flag in result.layers[0].flags)
    np.testing.assert_allclose(result.layers[1].grad_norm, by_hand()["grad_norm"][1], rtol=RTOL)


def deep_relu(depth: int, scale: float) -> keras.Model:
    """A ReLU MLP whose kernels are N(0, scale/fan_in)."""
    inputs = keras.Input((32,))
    h = inputs
    for _ in range(depth):
        h = keras.layers.Dense(
            32,
            activation="relu",
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=math.sqrt(scale / 32), seed=0
            ),
        )(h)
    return keras.Model(inputs, h)


def test_flags_vanishing_signal_and_gradient():
    data = np.random.default_rng(0).normal(size=(64, 32)).astype("float32")
    # Variance factor per layer scale/2 = 0.05: after 6 layers the std is
    # about 0.05**3 ≈ 1e-4 of the input's, far below signal_low = 1e-2.
    small = diagnose(deep_relu(6, 0.1), data)
    assert "vanishing signal" in small.layers[-1].flags
    assert "vanishing signal" not in small.layers[0].flags
    assert not small.ok
    # He scaling keeps the std near 1 (factor 1 per layer): nothing flagged.
    he = diagnose(deep_relu(6, 2.0), data)
    assert he.ok, he.table()


def test_flags_exploding_signal_and_thresholds_can_be_changed():
    data = np.random.default_rng(0).normal(size=(64, 32)).astype("float32")
    # Factor 10 in variance per layer: std ≈ 10**(depth/2) → 1e3 at layer 6.
    big = diagnose(deep_relu(6, 20.0), data)
    assert "exploding signal" in big.layers[-1].flags
    assert "exploding gradient" in big.layers[0].flags
    relaxed = diagnose(
        deep_relu(6, 20.0),
        data,
        thresholds=Thresholds(signal_high=1e9, grad_high=1e12),
    )
    assert relaxed.ok, relaxed.table()


def test_table_and_plot():
    import matplotlib.pyplot as plt

    result = diagnose(two_layer_model(), X)
    text = str(result)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["depth", "layer", "kernel", "mean", "std"]
    assert "hidden (Dense)" in lines[2] and "3x5" in lines[2]
    assert number(result.layers[1].grad_norm) in lines[3]
    fig = result.plot(label="hand")
    axes = fig.get_axes()
    assert len(axes) == 2
    assert [ax.get_yscale() for ax in axes] == ["log", "log"]
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), result.stds)
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), result.grad_norms)
    plt.close(fig)
    assert result.to_dict()["layers"][0]["name"] == "hidden"


def test_bad_input():
    model = two_layer_model()
    with pytest.raises(TypeError, match="model"):
        diagnose("not a model", X)
    with pytest.raises(ValueError, match="loss"):
        diagnose(model, X, loss="mse")
    with pytest.raises(ValueError, match="layers"):
        diagnose(model, X, layers=[keras.layers.Dense(3)])
    with pytest.raises(TypeError, match="thresholds"):
        diagnose(model, X, thresholds={"signal_low": 0.1})
    with pytest.raises(ValueError, match="signal_low"):
        Thresholds(signal_low=-1.0)
    with pytest.raises(ValueError, match="grad_low"):
        Thresholds(grad_low=10.0, grad_high=1.0)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="built"):
        diagnose(unbuilt, X)
    no_kernel = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no layer with a kernel"):
        diagnose(no_kernel, X)


# -- one walk: what initialize sees, diagnose sees ------------------------------


class TwoDense(keras.layers.Layer):
    """A composite layer: its two sublayers are called from Python in `call`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(5, activation="relu", name="hidden")
        self.out = keras.layers.Dense(2, name="out")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build((None, 5))

    def call(self, x):
        return self.out(self.hidden(x))


class TwoDenseModel(keras.Model):
    """A subclassed model: no graph, only a batch to run on."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(5, activation="relu", name="hidden")
        self.out = keras.layers.Dense(2, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def _set_hand_weights(hidden, out):
    hidden.set_weights([W1, B1])
    out.set_weights([W2, B2])


def test_nested_model_rows_are_named_by_path_and_match_the_hand_computation():
    inner = two_layer_model()
    inputs = keras.Input((3,))
    model = keras.Model(inputs, inner(inputs))
    result = diagnose(model, X)
    check_against(result, by_hand())
    assert [row.name for row in result] == [f"{inner.name}/hidden", f"{inner.name}/out"]
    assert [row.layer for row in result] == ["hidden", "out"]


def test_composite_layer_is_seen_from_the_inside():
    inputs = keras.Input((3,))
    block = TwoDense(name="block")
    model = keras.Model(inputs, block(inputs))
    _set_hand_weights(block.hidden, block.out)
    result = diagnose(model, X)
    check_against(result, by_hand())
    assert [row.name for row in result] == ["block/hidden", "block/out"]


def test_subclassed_model_needs_only_the_batch():
    model = TwoDenseModel()
    model(X)
    _set_hand_weights(model.hidden, model.out)
    result = diagnose(model, X)
    check_against(result, by_hand())
    assert result.loss_name == "mean(y²)"


def test_time_distributed_pools_every_step_and_matches_the_hand_gradient():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    w = rng.normal(size=(3, 2)).astype("float32")
    inputs = keras.Input((6, 3))
    wrapped = keras.layers.TimeDistributed(keras.layers.Dense(2, use_bias=False, name="proj"))
    model = keras.Model(inputs, wrapped(inputs))
    wrapped.layer.set_weights([w])
    (row,) = diagnose(model, x).layers
    assert row.name == f"{wrapped.name}/proj"
    # y = x·W at every step; loss mean(y²) over all 4·6·2 values, so
    # dL/dW = Σ_t x_tᵀ (2·y_t / y.size).
    y = x.astype(np.float64) @ w.astype(np.float64)
    grad = np.einsum("btc,bto->co", x.astype(np.float64), 2.0 * y / y.size)
    np.testing.assert_allclose(row.std, y.std(), rtol=RTOL)  # pooled over the 6 calls
    np.testing.assert_allclose(row.mean, y.mean(), rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(row.grad_norm, np.linalg.norm(grad), rtol=RTOL)


def test_attention_projections_report_their_own_outputs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 5, 8)).astype("float32")
    inputs = keras.Input((5, 8))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")
    model = keras.Model(inputs, mha(inputs, inputs))
    result = diagnose(model, x)
    assert [row.name for row in result] == ["mha/query", "mha/key", "mha/value", "mha/output"]
    # The query row is the query projection's output x·Wq + bq, by hand.
    wq, bq = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in mha._query_dense.weights)
    query = np.einsum("btc,chd->bthd", x.astype(np.float64), wq) + bq
    np.testing.assert_allclose(result["mha/query"][0].std, query.std(), rtol=RTOL)
    # The output projection's output is the model's output.
    y = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    np.testing.assert_allclose(result["mha/output"][0].std, y.std(), rtol=RTOL)
    assert all(row.grad_norm > 0 for row in result)


def test_bidirectional_forward_half_is_the_forward_layers_output():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 7, 3)).astype("float32")
    inputs = keras.Input((7, 3))
    bi = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi")
    model = keras.Model(inputs, bi(inputs))
    result = diagnose(model, x)
    forward = bi.forward_layer.name
    assert [row.weight for row in result] == ["kernel", "recurrent_kernel"] * 2
    assert result.layers[0].name == f"bi/{forward}/kernel"
    y = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    # Concatenation mode: the first 4 units of the output are the forward LSTM's.
    for row in result[f"bi/{forward}/kernel"] + result[f"bi/{forward}/recurrent_kernel"]:
        np.testing.assert_allclose(row.std, y[..., :4].std(), rtol=RTOL)
    assert all(math.isfinite(row.grad_norm) and row.grad_norm > 0 for row in result)


def mixed_model() -> keras.Model:
    """One of each layer form the walk knows, nested and wrapped."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((8, 8, 4))
    h = keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu")(inner_in)
    h = keras.layers.Conv2D(8, 3, padding="same", groups=4)(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same")(h)
    inner = keras.Model(inner_in, keras.layers.Conv2DTranspose(4, 3, padding="same")(h))
    image = keras.Input((8, 8, 4), name="image")
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    a = keras.layers.GlobalAveragePooling2D()(inner(image))
    t = keras.layers.Embedding(50, 4)(tokens)
    t = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)(t, t)
    t = keras.layers.TimeDistributed(keras.layers.Dense(4))(t)
    t = keras.layers.Bidirectional(keras.layers.GRU(3))(t)
    merged = keras.layers.Concatenate()([a, TwoDense()(t)])
    return keras.Model([image, tokens], keras.layers.Dense(3, activation="softmax")(merged))


def mixed_batch(n: int = 16):
    rng = np.random.default_rng(6)
    return [
        rng.normal(size=(n, 8, 8, 4)).astype("float32"),
        rng.integers(0, 50, size=(n, 6)).astype("int32"),
    ]


@pytest.mark.slow  # on JAX, initialize compiles one random kernel per shape
def test_covers_every_kernel_initialize_touches():
    from collections import Counter

    model = mixed_model()
    report = kwi.initialize(model, seed=0)
    result = diagnose(model, mixed_batch())
    touched = Counter((r.layer, r.weight) for r in report)
    seen = Counter((row.layer, row.weight) for row in result)
    # separable 2 + grouped 1 + depthwise 1 + transposed 1 + embedding 1 +
    # attention 4 + time-distributed 1 + bidirectional GRU 2·2 + block 2 + head 1
    assert len(report) == 18 and seen == touched
    for row in result:
        assert all(math.isfinite(v) for v in (row.mean, row.std, row.grad_norm, row.weight_norm))
    assert not result.not_called


def test_rows_follow_the_forward_pass():
    # A subclassed model whose layers are assigned in the reverse of the
    # order it calls them: the rows follow the calls.
    class Reversed(keras.Model):
        def __init__(self):
            super().__init__()
            self.second = keras.layers.Dense(2, name="second")
            self.first = keras.layers.Dense(5, name="first")
            self.unused = keras.layers.Dense(7, name="unused")

        def build(self, input_shape):
            self.first.build(input_shape)
            self.second.build((None, 5))
            self.unused.build(input_shape)

        def call(self, x):
            return self.second(self.first(x))

    model = Reversed()
    model(X)
    result = diagnose(model, X)
    assert [row.name for row in result] == ["first", "second"]
    assert result.not_called == ("unused",)
    assert "not called on this batch: unused" in result.table()
    with pytest.raises(ValueError, match="`layers`.*unused"):
        diagnose(model, X, layers=["unused"])


# -- the loss without targets -----------------------------------------------------


def test_softmax_output_gets_cross_entropy_against_seeded_labels():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(hidden))
    model.layers[1].set_weights([W1, B1])
    model.layers[2].set_weights([W2, B2])
    result = diagnose(model, X)
    assert result.loss_name == "cross-entropy against seeded random labels"
    assert "(cross-entropy against seeded random labels)" in result.table().splitlines()[-1]
    # By hand: labels from default_rng(0) (the documented rule), CE = -mean
    # log p[label], dL/dz = (p - onehot) / n for the logits z.
    labels = np.random.default_rng(0).integers(0, 2, size=16)
    x, w1, b1, w2, b2 = (a.astype(np.float64) for a in (X, W1, B1, W2, B2))
    z1 = x @ w1 + b1
    h1 = np.maximum(z1, 0.0)
    z = h1 @ w2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(2)[labels]
    dz = (p - onehot) / 16
    dw1 = x.T @ ((dz @ w2.T) * (z1 > 0))
    np.testing.assert_allclose(result.loss, -np.mean(np.log(p[np.arange(16), labels])), rtol=RTOL)
    np.testing.assert_allclose(result.layers[1].grad_norm, np.linalg.norm(h1.T @ dz), rtol=RTOL)
    np.testing.assert_allclose(result.layers[0].grad_norm, np.linalg.norm(dw1), rtol=RTOL)
    np.testing.assert_allclose(result.layers[1].std, p.std(), rtol=RTOL)


def test_sigmoid_output_gets_binary_cross_entropy():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(inputs))
    model.layers[1].set_weights([W2[:3], B2])
    result = diagnose(model, X)
    labels = np.random.default_rng(0).integers(0, 2, size=(16, 2))
    p = 1.0 / (1.0 + np.exp(-(X.astype(np.float64) @ W2[:3] + B2)))
    expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert result.loss_name == "cross-entropy against seeded random labels"
    np.testing.assert_allclose(result.loss, expected, rtol=RTOL)


def test_a_healthy_classifier_is_not_flagged():
    # He-initialized ReLU MLP ending in a softmax over 10 classes. With
    # mean(y²) of the probabilities the gradient is nearly flat (the
    # probabilities sum to 1): the first layer was flagged "vanishing
    # gradient" (measured with mean(y²) on this model and seed).
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32,))]
        + [keras.layers.Dense(32, activation="relu") for _ in range(6)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    kwi.initialize(model, seed=0)
    x = np.random.default_rng(0).normal(size=(64, 32)).astype("float32")
    result = diagnose(model, x)
    assert result.loss_name == "cross-entropy against seeded random labels"
    assert result.ok, result.table()


def test_lookup_rows_and_dict():
    result = diagnose(two_layer_model(), X)
    assert result[0] is result.layers[0] and result[-1] is result.layers[-1]
    assert result["out"] == [result.layers[1]]
    assert len(result) == 2 and list(result) == list(result.layers)
    rows = result.rows()
    assert rows[0]["name"] == "hidden"
    np.testing.assert_allclose(rows[1]["relative_grad"], result.layers[1].relative_grad)
    assert result.to_dict()["loss_name"] == "mean(y²)"
    with pytest.raises(IndexError, match="2 rows"):
        result[2]
    with pytest.raises(KeyError, match="hidden, out"):
        result["nope"]
    with pytest.raises(TypeError, match="position"):
        result[1.0]


# -- bad arguments (each names the argument and what it received) -----------------


def _generator():
    yield X


def _bad_cases():
    nan = X.copy()
    nan[3, 1] = np.nan
    inf = X.copy()
    inf[0, 0] = -np.inf
    cases = [
        ("data", dict(data=nan), ValueError, "NaN or infinite"),
        ("data", dict(data=inf), ValueError, "NaN or infinite"),
        ("data", dict(data=X[:0]), ValueError, r"non-empty.*\(0, 3\)"),
        ("data", dict(data=None), TypeError, "data=None"),
        ("data", dict(data="some text"), TypeError, "some text"),
        ("data", dict(data=np.array([["a", "b", "c"]] * 4)), TypeError, "dtype <U1"),
        ("data", dict(data=X.astype(np.complex64)), TypeError, "complex64"),
        ("data", dict(data=np.float32(1.0)), ValueError, r"shape \(\)"),
        ("data", dict(data=_generator()), TypeError, "generator"),
        ("data", dict(data=X[:, :2]), ValueError, r"\(16, 2\)"),
        ("data", dict(data=[X, X]), ValueError, "1 input"),
        ("data", dict(data={"a": X}), ValueError, "input names"),
        ("targets", dict(targets=T[:, :1].repeat(3, axis=1)), ValueError, r"\(16, 3\)"),
        ("targets", dict(targets=T[:8]), ValueError, "8 example"),
        ("targets", dict(targets=[T, T]), ValueError, "2 array"),
        ("targets", dict(targets=np.full((16, 2), np.nan, "float32")), ValueError, "NaN"),
        ("targets", dict(targets="labels"), TypeError, "labels"),
        ("loss", dict(targets=T, loss="no_such_loss"), ValueError, "no_such_loss"),
        ("layers", dict(layers="hidden"), TypeError, "hidden"),
        ("layers", dict(layers=[3]), TypeError, "3"),
        ("layers", dict(layers=[]), ValueError, r"\[\]"),
        ("layers", dict(layers=["nope"]), ValueError, "nope"),
        ("thresholds", dict(thresholds=0.5), TypeError, "0.5"),
    ]
    return cases


@pytest.mark.parametrize(
    "argument, kwargs, error, received",
    _bad_cases(),
    ids=[f"{c[0]}-{i}" for i, c in enumerate(_bad_cases())],
)
def test_bad_arguments_are_named(argument, kwargs, error, received):
    call = {"data": X, **kwargs}
    with pytest.raises(error, match=f"`{argument}`") as info:
        diagnose(two_layer_model(), call.pop("data"), **call)
    message = str(info.value)
    assert "Received" in message
    assert re.search(received, message), message


def test_a_dataset_is_refused_with_a_hint():
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(X).batch(4)
    with pytest.raises(TypeError, match="`data`.*next\\(iter") as info:
        diagnose(two_layer_model(), dataset)
    assert "Dataset" in str(info.value)


class _Batches(keras.utils.PyDataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return X, T


def _streams():
    """Every kind of stream of batches, as `initialize` refuses them too."""
    out = {"generator": _generator(), "iterator": iter([X]), "PyDataset": _Batches()}
    if keras.backend.backend() == "torch":
        import torch

        out["DataLoader"] = torch.utils.data.DataLoader(X, batch_size=4)
    return out


@pytest.mark.parametrize("kind", list(_streams()))
def test_every_stream_of_batches_is_refused_with_the_way_out(kind):
    data = _streams()[kind]
    with pytest.raises(TypeError, match="`data` must be one batch") as info:
        diagnose(two_layer_model(), data)
    assert kind in str(info.value) and "next(iter(dataset))[0]" in str(info.value)
    with pytest.raises(TypeError, match="`targets` must be one batch") as info:
        diagnose(two_layer_model(), X, _streams()[kind])
    assert "next(iter(dataset))[1]" in str(info.value)


# -- property: any arguments give a correct result or an error naming one of them --


def _data_case(draw, bad: bool):
    """(data, batch size)."""
    n = draw(st.integers(1, 6))
    x = np.random.default_rng(n).normal(size=(n, 3)).astype("float32")
    if not bad:
        kind = draw(st.sampled_from(["array", "list", "float64"]))
        return {"array": x, "list": x.tolist(), "float64": x.astype(np.float64)}[kind], n
    kind = draw(
        st.sampled_from(
            [
                "nan",
                "inf",
                "empty",
                "wide",
                "scalar",
                "none",
                "text",
                "object",
                "complex",
                "generator",
                "two",
                "dict",
            ]
        )
    )
    if kind in ("nan", "inf"):
        where = draw(st.integers(0, n - 1)), draw(st.integers(0, 2))
        x[where] = np.nan if kind == "nan" else np.inf
        return x, n
    return {
        "empty": x[:0],
        "wide": np.ones((n, 4), "float32"),
        "scalar": np.float32(draw(st.floats(width=32))),
        "none": None,
        "text": draw(st.text(max_size=5)),
        "object": np.array([object()] * n),
        "complex": x.astype(np.complex64),
        "generator": (row for row in x),
        "two": [x, x],
        "dict": {"x": x},
    }[kind], n


def _targets_case(draw, n: int, bad: bool):
    """(targets, loss)."""
    t = np.random.default_rng(n + 1).normal(size=(n, 2)).astype("float32")
    if not bad:
        return draw(
            st.sampled_from(
                [
                    (None, None),
                    (t, None),
                    (t, "mean_absolute_error"),
                    # class indices of shape (n,)
                    (np.zeros((n,), "int32"), "sparse_categorical_crossentropy"),
                ]
            )
        )
    return draw(
        st.sampled_from(
            [
                (np.ones((n, 3), "float32"), None),
                (np.ones((n + 1, 2), "float32"), None),
                (np.full((n, 2), np.nan, "float32"), None),
                ("labels", None),
                ([t, t], None),
            ]
        )
    )


STRAY_LAYER = keras.layers.Dense(2, name="stray")  # not in the model


@st.composite
def diagnose_arguments(draw):
    """Arguments with at most one of them bad, and which one."""
    bad = draw(st.sampled_from([None, "data", "targets", "loss", "layers", "thresholds"]))
    data, n = _data_case(draw, bad == "data")
    targets, loss = _targets_case(draw, n, bad == "targets")
    if bad == "loss":
        targets, loss = draw(st.sampled_from([(None, "mse"), (targets, "bogus_loss")]))
    good_layers = [None, ["out"], ["out", "hidden"]]
    bad_layers = ["hidden", ["nope"], [0], [], [STRAY_LAYER]]
    layers = draw(st.sampled_from(bad_layers if bad == "layers" else good_layers))
    if bad == "thresholds":
        thresholds = draw(st.sampled_from([{"signal_low": 0.1}, 0.5, "default"]))
    else:
        low = draw(st.floats(min_value=1e-6, max_value=0.5))
        thresholds = draw(st.sampled_from([None, Thresholds(signal_low=low)]))
    kwargs = dict(data=data, targets=targets, loss=loss, layers=layers, thresholds=thresholds)
    return kwargs, bad


PROPERTY_MODEL = two_layer_model()


@settings(
    max_examples=12 if keras.backend.backend() == "jax" else 30,  # JAX compiles each batch size
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(diagnose_arguments())
def test_any_arguments_give_a_result_or_name_the_bad_one(case):
    kwargs, bad = case
    data = kwargs.pop("data")
    try:
        result = diagnose(PROPERTY_MODEL, data, **kwargs)
    except (ValueError, TypeError) as error:
        assert bad, f"valid arguments refused: {error}"
        assert f"`{bad}`" in str(error) and "Received" in str(error), f"bad {bad}: {error}"
        return
    assert bad is None, f"bad {bad} accepted"
    expected = kwargs["layers"] or ["hidden", "out"]
    assert [row.name for row in result] == expected
    for row in result:
        assert all(math.isfinite(v) for v in (row.mean, row.std, row.grad_norm, row.weight_norm))
    assert math.isfinite(result.loss)


# -- residual branches that initialize zeroes ---------------------------------


def residual_cnn(blocks: int = 3) -> keras.Model:
    """Stem, then Conv-BN-ReLU-Conv-BN blocks added to their shortcut.

    Block 0 halves the resolution, so its shortcut is a 1x1 projection
    convolution with its BatchNormalization; the others are identities.
    """
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    h = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    h = layers.ReLU()(layers.BatchNormalization(name="stem_bn")(h))
    for i in range(blocks):
        stride = 2 if i == 0 else 1
        b = layers.Conv2D(8, 3, strides=stride, padding="same", name=f"b{i}_conv1")(h)
        b = layers.ReLU()(layers.BatchNormalization(name=f"b{i}_bn1")(b))
        b = layers.Conv2D(8, 3, padding="same", name=f"b{i}_conv2")(b)
        b = layers.BatchNormalization(name=f"b{i}_bn2")(b)
        if stride == 2:
            h = layers.Conv2D(8, 1, strides=2, name="proj")(h)
            h = layers.BatchNormalization(name="proj_bn")(h)
        h = layers.ReLU()(layers.Add(name=f"b{i}_add")([h, b]))
    outputs = layers.Dense(4, name="head")(layers.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, outputs)


BRANCH_CONVS = {f"b{i}_conv{j}" for i in range(3) for j in (1, 2)}
CNN_X = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")


def test_branch_kernels_are_the_kernels_between_fork_and_add():
    from keras_weightinit import _residual

    model = residual_cnn()
    branches = _residual.find(model)
    assert [b.site for b in branches] == ["b0_add", "b1_add", "b2_add"]
    for i, branch in enumerate(branches):
        assert branch.layer.name == f"b{i}_bn2"
        assert _residual.end_variable(branch) is branch.layer.gamma
        # The projection shortcut, the stem and the head are not on any branch.
        names = {v.path.split("/")[0] for v in _residual.branch_kernels(branch)}
        assert names == {f"b{i}_conv1", f"b{i}_conv2"}


def test_zeroed_residual_branch_is_noted_not_flagged_vanishing():
    model = residual_cnn()
    kwi.initialize(model, seed=0)  # residual="auto": each b{i}_bn2 gamma is zeroed
    result = diagnose(model, CNN_X)
    noted = {row.name for row in result if row.note}
    assert noted == BRANCH_CONVS, result.table()
    for row in result:
        assert "vanishing gradient" not in row.flags, result.table()
        if row.note:
            # Gamma = 0 in inference mode multiplies the branch by exactly 0.
            assert row.grad_norm == 0.0
            assert row.note.startswith("zeroed residual branch")
            assert "gamma" in row.note
    assert result.ok, result.table()
    assert "zeroed residual branch: its gradient arrives once" in result.table()
    assert {r["name"] for r in result.rows() if r["note"]} == BRANCH_CONVS
    assert {r["name"] for r in result.to_dict()["layers"] if r["note"]} == BRANCH_CONVS


def test_branch_left_unzeroed_gets_no_note():
    model = residual_cnn()
    kwi.initialize(model, seed=0, residual="none")
    result = diagnose(model, CNN_X)
    assert not any(row.note for row in result), result.table()
    assert all(row.grad_norm > 0 for row in result), result.table()


def test_zeroed_gamma_set_by_hand_is_noted_too():
    # The note follows the weight, not initialize: zero one gamma by hand.
    model = residual_cnn()
    kwi.initialize(model, seed=0, residual="none")
    gamma = model.get_layer("b1_bn2").gamma
    gamma.assign(np.zeros(gamma.shape, "float32"))
    result = diagnose(model, CNN_X)
    assert {row.name for row in result if row.note} == {"b1_conv1", "b1_conv2"}
    assert result.ok, result.table()


def test_a_deep_glorot_relu_mlp_is_still_flagged_vanishing_gradient():
    # Glorot on 32x32 kernels: variance 2/(32+32) = 1/32, so ReLU keeps half
    # the variance per layer; over 24 layers the first kernel's gradient is
    # about 2**-12 of the last one's, far below spread_low. No residual branch.
    data = np.random.default_rng(0).normal(size=(64, 32)).astype("float32")
    model = deep_relu(24, 1.0)
    result = diagnose(model, data)
    assert "vanishing gradient" in result.layers[0].flags, result.table()
    assert not any(row.note for row in result)
    assert not result.ok
