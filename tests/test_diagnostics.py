"""diagnose: its numbers against a forward and backward pass done by hand."""

from __future__ import annotations

import math

import keras
import matplotlib
import numpy as np
import pytest

from keras_weightinit import Diagnosis, Thresholds, diagnose

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
    assert f"{result.layers[1].grad_norm:.3e}" in lines[3]
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
