"""The data-free moments mode: Gaussian moments, hand-computed layers, real graphs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import integrate, special

import keras_weightinit as kwi
from keras_weightinit import _moments
from tests.helpers import to_numpy

L = keras.layers


def _quad(f, mu, sd):
    """E[f(z)] for z ~ N(mu, sd²) by adaptive quadrature (independent of the code)."""

    def g(t):
        return f(mu + sd * t) * math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    return integrate.quad(g, -14, 14, points=[-mu / sd] if sd > 0 else None, limit=200)[0]


ACTS = {
    "relu": lambda x: max(x, 0.0),
    "tanh": math.tanh,
    "elu": lambda x: x if x > 0 else math.expm1(x),
    "selu": lambda x: 1.0507009873554805 * (x if x > 0 else 1.6732632423543772 * math.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))),
    "leaky_relu": lambda x: x if x > 0 else 0.2 * x,
    "silu": lambda x: x * special.expit(x),
}


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("mu, sd", [(0.0, 1.0), (0.7, 0.4), (-1.3, 2.5)])
def test_activation_moments_match_scipy_quadrature(name, mu, sd):
    f = ACTS[name]
    m1 = _quad(f, mu, sd)
    var = _quad(lambda x: f(x) ** 2, mu, sd) - m1 * m1
    got_m1, got_var = _moments.activation_moments(name, np.array([mu]), np.array([sd * sd]))
    # Closed forms (relu, leaky relu, elu, selu) are exact to rounding; the
    # composite Gauss-Legendre rule integrates smooth activations to ~1e-9,
    # and scipy's quad is good to ~1e-10: 1e-7 relative leaves room for both.
    assert got_m1[0] == pytest.approx(m1, rel=1e-7, abs=1e-9)
    assert got_var[0] == pytest.approx(var, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize(
    "name, verdict", [("relu", "marginal"), ("linear", "marginal"), ("tanh", "contractive"),
                      ("elu", "contractive"), ("gelu", "unstable"), ("silu", "unstable")]
)  # fmt: skip
def test_chi_is_the_slope_of_the_variance_map(name, verdict):
    f = {**ACTS, "linear": lambda x: x}[name]
    eps = 1e-3

    def m2(q):
        return _quad(lambda x: f(x) ** 2, 0.0, math.sqrt(q))

    expected = (math.log(m2(1 + eps)) - math.log(m2(1 - eps))) / (
        math.log(1 + eps) - math.log(1 - eps)
    )
    # Central differences: O(eps²) = 1e-6 truncation error.
    assert _moments.chi(name) == pytest.approx(expected, abs=1e-5)
    assert kwi.report.verdict(_moments.chi(name)) == verdict


def _dense_model(units, activation=None, depth=1, width=64):
    layers = [keras.Input((width,))]
    for i in range(depth):
        layers.append(L.Dense(units if i == depth - 1 else width, activation=activation))
    return keras.Sequential(layers)


def test_one_dense_layer_gets_unit_variance_from_its_drawn_kernel():
    model = _dense_model(48)
    kwi.initialize(model, seed=3)
    analytic = to_numpy(model.layers[0].kernel)
    report = kwi.initialize(model, seed=3, method="moments")
    w = to_numpy(model.layers[0].kernel)
    # For x ~ N(0, I) and a zero bias, z_j = sum_i x_i W_ij has variance
    # sum_i W_ij² and mean 0: the std over examples and units is the root
    # mean of the column norms². float32 rounding: 1e-6.
    assert np.mean(np.sum(w**2, axis=0)) == pytest.approx(1.0, rel=1e-5)
    c = 1 / math.sqrt(np.mean(np.sum(analytic**2, axis=0)))
    np.testing.assert_allclose(w, c * analytic, rtol=1e-5)
    row = report.layers[0]
    assert row.moments_factor == pytest.approx(c, rel=1e-5)
    assert row.moments_std == pytest.approx(1.0, rel=1e-6)
    # The factor is folded into the written initializer.
    assert model.layers[0].kernel_initializer.stddev(row.shape) == pytest.approx(
        row.weight_std, rel=1e-9
    )


def test_second_relu_layer_matches_the_hand_computed_moments():
    model = keras.Sequential(
        [keras.Input((32,)), L.Dense(40, activation="relu"), L.Dense(24, activation="relu")]
    )
    kwi.initialize(model, seed=5, method="moments")
    w1, w2 = to_numpy(model.layers[0].kernel), to_numpy(model.layers[1].kernel)
    v = np.sum(w1**2, axis=0)  # z1_j ~ N(0, v_j)
    mean_h = np.sqrt(v / (2 * math.pi))  # E[relu(z)] = sd / sqrt(2 pi)
    var_h = v / 2 - v / (2 * math.pi)  # E[relu(z)²] = sd² / 2
    mean2, var2 = mean_h @ w2, var_h @ w2**2
    total = np.mean(var2) + np.var(mean2)
    assert total == pytest.approx(1.0, rel=1e-5)  # float32 rounding of the kernels


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "leaky_relu", "selu"])
def test_deep_mlp_holds_every_layer_near_one_on_real_data(activation):
    depth, width = 20, 128
    model = keras.Sequential(
        [keras.Input((width,))] + [L.Dense(width, activation=activation) for _ in range(depth)]
    )
    kwi.initialize(model, seed=0, method="moments")
    x = np.random.default_rng(0).standard_normal((2048, width)).astype("float32")
    h, stds = keras.ops.convert_to_tensor(x), []
    for layer in model.layers:
        pre = keras.ops.matmul(h, layer.kernel) + layer.bias
        stds.append(float(to_numpy(pre).std()))
        h = layer.activation(pre)
    # The analytic scale's log-std drifts by about sqrt(5 L / n) / 2 = 0.44
    # at L = 20, n = 128 (Hanin & Rolnick 2018); the per-unit moments follow
    # the drawn kernels and land within a few percent (what remains: the
    # units' covariances, which they leave out, and the batch's 2% sampling
    # error). [0.85, 1.18] is 0.16 in log: well inside the analytic spread.
    assert 0.85 <= min(stds) and max(stds) <= 1.18, np.round(stds, 3)


def _functional():
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(16, 3, padding="same", name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.Activation("relu")(y)
    y = L.SeparableConv2D(16, 3, padding="same", name="sep")(y)
    x = L.Add()([x, y])
    x = L.Activation("gelu")(x)
    x = L.MaxPooling2D()(x)
    z = L.Conv2D(8, 1, name="side")(x)
    x = L.Concatenate()([x, z])
    x = L.Dropout(0.3)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10, name="head")(x)
    return keras.Model(inp, x)


@pytest.mark.slow  # compiles convolutions on JAX
def test_functional_graph_with_convolutions_branches_and_merges():
    model = _functional()
    report = kwi.initialize(model, seed=0, method="moments")
    names = ["conv", "dw", "sep", "side", "head"]
    solved = [r for r in report if r.weight != "depthwise_kernel"]  # sep's first half: linear
    assert all(r.moments_factor is not None and not r.note for r in solved)
    x = np.random.default_rng(1).standard_normal((256, 12, 12, 3)).astype("float32")
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
    stds = {n: float(to_numpy(o).std()) for n, o in zip(names, probe(x))}
    # Inside a window of the convolutions the elements are not independent,
    # as the moments assume, and the pooled layers see correlated positions.
    # Before the pooling every pre-activation std lands within x1.5 of 1; the
    # 1x1 convolution right after the 2x2 max pooling comes out higher (the
    # moments take a window's max for its mean: an under-estimate, ~x1.7
    # here, documented), and within x2; so does the head, whose input
    # concatenates the max-pooled signal with that convolution's output.
    after_max_pooling = ("side", "head")
    for name, std in stds.items():
        bound = 2.0 if name in after_max_pooling else 1.5
        assert 1 / bound <= std <= bound, (name, std)
    # The kernels before the merge are solved exactly: the first one's
    # pre-activation has std 1 over independent N(0, 1) pixels, up to the
    # sampling error (1/sqrt(2 * 256 * 144 * 16) ~ 0.1%) and the zero padding
    # of the borders (which the moments see: they run the layer itself).
    assert stds["conv"] == pytest.approx(1.0, rel=0.02)


def test_a_layer_it_cannot_follow_keeps_the_analytic_scale_after_it():
    inp = keras.Input((6, 8))
    x = L.Dense(16, activation="relu", name="before")(inp)
    x = L.SimpleRNN(16, return_sequences=True, name="rnn")(x)
    x = L.Dense(16, name="after")(x)
    model = keras.Model(inp, x)
    kwi.initialize(model, seed=2)
    analytic = to_numpy(model.get_layer("after").kernel)
    report = kwi.initialize(model, seed=2, method="moments")
    after = report["after"][0]
    assert after.moments_factor is None or after.moments_factor == 1.0
    assert "analytic scale kept" in after.note and "rnn (SimpleRNN)" in after.note
    np.testing.assert_array_equal(to_numpy(model.get_layer("after").kernel), analytic)
    assert report["before"][0].moments_factor is not None
    assert "analytic scale kept" in str(report)


def test_subclassed_model_keeps_the_analytic_scale_with_a_note():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = L.Dense(8)

        def call(self, x):
            return self.a(x)

    net = Net()
    net(np.zeros((2, 4), "float32"))
    report = kwi.initialize(net, seed=0, method="moments")
    assert "no graph" in report.layers[0].note


def test_data_gives_the_input_moments():
    model = _dense_model(32, width=16)
    x = (3.0 * np.random.default_rng(0).standard_normal((512, 16)) + 1.0).astype("float32")
    report = kwi.initialize(model, x, seed=0, method="moments")
    assert report.method == "moments" and report.measured
    # From the batch's own per-feature mean and variance, the first layer's
    # pre-activation std on that batch is 1, up to the batch's sample
    # covariances between features, which the moments leave out: each is
    # ~1/sqrt(512) = 4% of a variance, of random sign, averaged over 16 * 15
    # pairs and 32 units: well under 3%.
    assert report.layers[0].std_after == pytest.approx(1.0, rel=0.03)
    # Standard-normal input moments would be wrong by x sqrt(3² + 1²) here.
    free = kwi.initialize(model, x, seed=0, method="moments")
    assert free.layers[0].std_after == pytest.approx(1.0, rel=0.03)
    kwi.initialize(model, seed=0, method="moments")
    h = to_numpy(model.layers[0](x))
    assert h.std() > 2.5


def test_auto_without_data_stays_analytic():
    model = _dense_model(16, activation="relu")
    report = kwi.initialize(model, seed=1)
    assert report.method == "analytic"
    assert report.layers[0].moments_factor is None


def test_target_std_hook_and_a_zeroed_gamma_compose():
    inp = keras.Input((32,))
    h = L.Dense(32, name="branch")(inp)
    h = L.BatchNormalization(name="bn", gamma_initializer="zeros")(h)
    x = L.Add()([inp, h])
    out = L.Dense(32, name="next")(x)
    model = keras.Model(inp, out)
    kwi.initialize(model, seed=0)
    kernels = {
        id(model.get_layer(n)): [(s, True)]
        for n in ("branch", "next")
        for s in kwi.model_init.table.kernel_slots(model.get_layer(n))
    }
    solved = _moments.solve(model, kernels, {id(model.get_layer("branch")): 0.5})
    assert solved[id(model.get_layer("branch"))].std == pytest.approx(0.5, rel=1e-6)
    # gamma = 0: the branch adds nothing, so "next" sees the N(0, 1) skip only,
    # and its kernel's column norms² average to 1.
    w = to_numpy(model.get_layer("next").kernel)
    assert np.mean(np.sum(w**2, axis=0)) == pytest.approx(1.0, rel=1e-5)


def test_stability_in_the_report_and_check_require_stable():
    gelu = _dense_model(16, activation="gelu", depth=4)
    report = kwi.initialize(gelu, seed=0, method="moments")
    (row,) = report.stability
    assert row.activation == "gelu" and row.verdict == "unstable" and row.layers == 4
    assert row.growth == pytest.approx(row.chi**4)
    assert "unstable" in str(report)
    with pytest.raises(kwi.UnstableActivationError, match="gelu"):
        report.check(require_stable=True)
    with pytest.raises(ValueError, match="no measured signal"):
        report.check()  # data-free, and stability not asked for
    x = np.random.default_rng(0).standard_normal((64, 64)).astype("float32")
    kwi.initialize(gelu, x, seed=0).check(0.9, 1.1, require_stable=True)  # LSUV holds it
    relu = _dense_model(16, activation="relu", depth=3)
    kwi.initialize(relu, seed=0).check(require_stable=True)  # marginal: passes
    with pytest.raises(TypeError, match="require_stable"):
        report.check(require_stable="yes")
