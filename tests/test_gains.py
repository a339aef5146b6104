"""gain(): closed forms, the documented gains table, an independent quadrature, errors."""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import pytest
from scipy import optimize

from keras_weightinit import gain
from tests.helpers import to_numpy

# -- an independent reference: Keras's own function on a fine grid ---------------
# Composite Simpson on z in [-12, 12] (all but ~4e-33 of the mass) with 4·10^5
# intervals, h = 6e-5. For a smooth integrand the error is ~h^4; a kink costs
# O(h²) ~ 4e-9 and a jump (hard_shrink) O(h) ~ 5e-6 relative, so 2e-5 relative
# is a safe tolerance. Keras computes in float32: ~1e-7 relative per value.
_Z = np.linspace(-12.0, 12.0, 400_001)
_PDF = np.exp(-0.5 * _Z**2) / math.sqrt(2 * math.pi)
_SIMPSON = np.ones_like(_Z)
_SIMPSON[1:-1:2], _SIMPSON[2:-1:2] = 4.0, 2.0
_SIMPSON *= (_Z[1] - _Z[0]) / 3.0
REF_RTOL = 2e-5


def keras_moment(activation, sigma: float) -> float:
    """E[f(sigma z)²], f evaluated by Keras, integrated by Simpson."""
    fn = keras.activations.get(activation) if isinstance(activation, str) else activation
    y = to_numpy(fn(keras.ops.convert_to_tensor(sigma * _Z, dtype="float32")))
    return float(np.sum(_SIMPSON * _PDF * y * y))


def reference_gains(activation) -> tuple[float, float | None]:
    """(second-moment gain, fixed-point gain or None), computed independently."""
    second = 1.0 / math.sqrt(keras_moment(activation, 1.0))
    grid = np.linspace(0.25, 6.0, 24)
    values = np.array([keras_moment(activation, s) for s in grid]) - 1.0
    change = np.nonzero(np.sign(values[:-1]) != np.sign(values[1:]))[0]
    if change.size == 0:
        return second, None
    i = change[0]
    fixed = optimize.brentq(
        lambda s: keras_moment(activation, s) - 1.0, grid[i], grid[i + 1], xtol=1e-10
    )
    return second, fixed


# -- exact closed forms ------------------------------------------------------------


@pytest.mark.parametrize("method", ["second_moment", "fixed_point"])
def test_exact_gains(method):
    assert gain(None, method) == 1.0
    assert gain("linear", method) == 1.0
    assert gain("relu", method) == math.sqrt(2.0)
    assert gain(keras.layers.ReLU(), method) == math.sqrt(2.0)
    assert gain("selu", method) == 1.0
    # He et al. 2015: var = 2 / ((1 + a²) fan_in), so gain = sqrt(2 / (1 + a²)).
    assert gain("leaky_relu", method) == math.sqrt(2.0 / (1.0 + 0.2**2))  # function: 0.2
    assert gain(keras.layers.LeakyReLU(), method) == math.sqrt(2.0 / (1.0 + 0.3**2))  # layer
    for a in (0.01, 0.1, 0.5, 1.0):
        expected = math.sqrt(2.0 / (1.0 + a * a))
        assert gain(keras.layers.LeakyReLU(negative_slope=a), method) == expected
        assert gain(keras.layers.ReLU(negative_slope=a), method) == expected
        leaky = functools.partial(keras.activations.leaky_relu, negative_slope=a)
        assert gain(leaky, method) == expected
    prelu = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25))
    assert gain(prelu, method) == math.sqrt(2.0 / (1.0 + 0.25**2))


def test_closed_forms_agree_with_quadrature():
    # The exact values are not just asserted: Keras's own functions integrate
    # to the same numbers (selu's constants make E[selu(z)²] = 1).
    for name in ("relu", "leaky_relu", "selu", "linear"):
        second, fixed = reference_gains(name)
        assert gain(name) == pytest.approx(second, rel=REF_RTOL)
        assert gain(name, "fixed_point") == pytest.approx(fixed, rel=REF_RTOL)


# -- the gains table of docs/activations.md, to 1e-3 relative -----------------------

# (activation, 1/E[f²], fixed-point scale σ*² or None), copied from
# that table.
GAINS_TABLE = [
    ("linear", 1.0, 1.0),
    ("relu", 2.0, 2.0),
    ("leaky_relu", 1.9231, 1.9231),  # a = 0.2, the function's default
    (keras.layers.LeakyReLU(), 1.8349, 1.8349),  # a = 0.3, the layer's default
    ("elu", 1.5505, 1.6332),
    ("selu", 1.0, 1.0),
    ("gelu", 2.3517, 2.1551),
    ("silu", 2.8108, 2.4297),
    ("swish", 2.8108, 2.4297),
    ("hard_silu", 3.0160, 2.4561),
    ("mish", 2.2107, 2.1068),
    ("softplus", 1.0855, 1.1732),
    ("tanh", 2.5362, None),
    ("sigmoid", 3.4086, None),
]


@pytest.mark.parametrize("activation,second_scale,fixed_scale", GAINS_TABLE, ids=str)
def test_gains_table(activation, second_scale, fixed_scale):
    # scale = gain²; the table gives 4-5 significant figures, hence 1e-3.
    assert gain(activation, "second_moment") ** 2 == pytest.approx(second_scale, rel=1e-3)
    if fixed_scale is None:
        with pytest.raises(ValueError, match="no fixed-point gain"):
            gain(activation, "fixed_point")
    else:
        assert gain(activation, "fixed_point") ** 2 == pytest.approx(fixed_scale, rel=1e-3)


def test_default_method_is_second_moment():
    assert gain("gelu") == gain("gelu", method="second_moment")
    assert gain("gelu") != gain("gelu", method="fixed_point")


# -- every elementwise Keras activation against the independent reference ----------

ELEMENTWISE = [
    "relu6", "elu", "celu", "gelu", "silu", "hard_silu", "mish", "softplus",
    "squareplus", "sparse_plus", "log_sigmoid", "tanh", "sigmoid", "hard_sigmoid",
    "sparse_sigmoid", "hard_tanh", "softsign", "exponential", "hard_shrink",
    "soft_shrink", "tanh_shrink",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_activation_matches_the_reference(name):
    second, fixed = reference_gains(name)
    assert gain(name, "second_moment") == pytest.approx(second, rel=REF_RTOL)
    if fixed is None:
        with pytest.raises(ValueError, match="no fixed-point gain"):
            gain(name, "fixed_point")
    else:
        assert gain(name, "fixed_point") == pytest.approx(fixed, rel=REF_RTOL)


@pytest.mark.parametrize(
    "form",
    [
        keras.layers.ReLU(max_value=3.0, threshold=0.5),
        keras.layers.ELU(alpha=0.5),
        keras.ops.gelu,  # approximate=True
        functools.partial(keras.activations.soft_shrink, threshold=1.0),
    ],
    ids=["relu layer", "elu layer", "gelu approx", "soft_shrink t=1"],
)
def test_parameters_reach_the_gain(form):
    second, fixed = reference_gains(form)
    assert gain(form) == pytest.approx(second, rel=REF_RTOL)
    assert gain(form, "fixed_point") == pytest.approx(fixed, rel=REF_RTOL)


def test_glu_gain():
    # glu(a, b) = a · sigmoid(b), a, b independent: E[glu²] = σ² E[sigmoid(σz)²],
    # so the second-moment gain is sigmoid's.
    assert gain("glu") == pytest.approx(gain("sigmoid"), rel=1e-12)
    g = gain("glu", "fixed_point")
    assert g**2 * keras_moment("sigmoid", g) == pytest.approx(1.0, rel=REF_RTOL)


# -- which fixed points a deep stack keeps ------------------------------------------


def map_slope(activation, g: float, q: float) -> float:
    """d/dq of the variance map q -> g² E[f(sqrt(q) z)²] at q (central difference)."""
    h = 1e-3 * q
    up = g * g * keras_moment(activation, math.sqrt(q + h))
    down = g * g * keras_moment(activation, math.sqrt(q - h))
    return (up - down) / (2 * h)


@pytest.mark.slow
def test_depth_stability_claims():
    # The documentation says: for gelu, silu, hard_silu and mish the fixed
    # point repels (slope > 1) at either gain, for elu, celu and softplus it
    # attracts (slope < 1), and relu is neutral (slope 1: homogeneous).
    for name in ("gelu", "silu", "hard_silu", "mish", "elu", "celu", "softplus", "relu"):
        for method in ("second_moment", "fixed_point"):
            g = gain(name, method)
            q = 1.0 if method == "second_moment" else g * g
            slope = map_slope(name, g, q)
            if name == "relu":
                assert slope == pytest.approx(1.0, abs=1e-4)
            elif name in ("elu", "celu", "softplus"):
                assert slope < 0.95, (name, method, slope)
            else:
                assert slope > 1.03, (name, method, slope)


def deep_mlp_pre_activations(act, scale: float, seed: int = 0) -> np.ndarray:
    """Per-sample mean square of the layer-50 pre-activations of a random MLP.

    The setting of docs/activations.md ("Why GELU and SiLU ..."): 50 layers
    of width 256, batch 512, weights N(0, scale / 256), no bias; NumPy float64
    and the activations written out here, independent of the library.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((512, 256))
    for _ in range(50):
        y = x @ (rng.standard_normal((256, 256)) * math.sqrt(scale / 256))
        x = act(y)
    return np.mean(y * y, axis=1)


@pytest.mark.slow
def test_deep_mlp_shows_which_gains_hold():
    from scipy.special import ndtr

    gelu = lambda x: x * ndtr(x)  # noqa: E731
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    elu = lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))  # noqa: E731
    # Thresholds are orders of magnitude from the measured values at this
    # seed (and at seeds 1, 2), because the effects are exponential in depth:
    # gelu under He: median std ~5e-6 (documented: 4e-7 to 1e-5 over seeds 0-2); under its
    # second-moment gain ~90 (documented: 40 to 110); under its fixed-point gain the
    # samples split apart (max/min mean square ~1e13: the fixed point repels);
    # elu at its fixed point: median std ~1.2-1.6 (σ* = 1.278), spread < 4;
    # relu under He: median std 1-2.5, spread < 11 (finite-width noise only).
    he_gelu = deep_mlp_pre_activations(gelu, 2.0)
    assert math.sqrt(np.median(he_gelu)) < 1e-3
    second_gelu = deep_mlp_pre_activations(gelu, gain("gelu") ** 2)
    assert math.sqrt(np.median(second_gelu)) > 10.0
    fixed_gelu = deep_mlp_pre_activations(gelu, gain("gelu", "fixed_point") ** 2)
    assert fixed_gelu.max() / fixed_gelu.min() > 1e6
    g_elu = gain("elu", "fixed_point")
    fixed_elu = deep_mlp_pre_activations(elu, g_elu**2)
    assert 0.5 * g_elu < math.sqrt(np.median(fixed_elu)) < 2.0 * g_elu
    assert fixed_elu.max() / fixed_elu.min() < 30.0
    he_relu = deep_mlp_pre_activations(relu, gain("relu") ** 2)
    assert 0.3 < math.sqrt(np.median(he_relu)) < 5.0
    assert he_relu.max() / he_relu.min() < 100.0


# -- functions of the user's own ----------------------------------------------------


def test_user_callables():
    assert gain(lambda x: 2.0 * x) == pytest.approx(0.5, rel=1e-14)
    assert gain(lambda x: 2.0 * x, "fixed_point") == pytest.approx(0.5, rel=1e-12)
    assert gain(np.tanh) == pytest.approx(gain("tanh"), rel=1e-12)
    # A function returning a backend tensor works too.
    assert gain(lambda x: keras.ops.sin(x)) == pytest.approx(
        1.0 / math.sqrt(0.5 * (1 - math.exp(-2.0))),
        rel=1e-5,  # E[sin²z] = (1-e^-2)/2
    )


def test_user_bounded_callable_has_no_fixed_point():
    with pytest.raises(ValueError, match="stays below 1 for every σ"):
        gain(lambda x: np.clip(x, -0.5, 0.5), "fixed_point")


def test_breakpoints_for_a_kinked_user_function():
    # relu clipped at 1.5: E[f(z)²] = ∫_0^1.5 z² φ + 2.25·P(z > 1.5), exactly.
    from scipy import stats

    def clipped(x):
        return np.clip(x, 0.0, 1.5)

    exact_m = (
        0.5 * (2 * stats.norm.cdf(1.5) - 1) - 1.5 * stats.norm.pdf(1.5)
    ) + 2.25 * stats.norm.sf(1.5)
    exact = 1.0 / math.sqrt(exact_m)
    assert gain(clipped, breakpoints=[0.0, 1.5]) == pytest.approx(exact, rel=1e-12)
    # Without them the adaptive rule finds both kinks itself (a fixed
    # Gauss–Hermite rule used to land only within 1e-2).
    assert gain(clipped) == pytest.approx(exact, rel=1e-10)


def test_breakpoints_given_as_a_generator_are_read_once():
    # hard_tanh: E[f(z)²] = ∫_{-1}^{1} z² φ + 2·P(z > 1) = (2Φ(1) - 1) - 2φ(1) + 2·P(z > 1).
    # Split at ±1 the rule is exact to rounding; a check that consumed the
    # generator left no breakpoints, and Gauss–Hermite across the kinks is
    # 2e-3 off, far outside 1e-12.
    from scipy import stats

    exact_m = (2 * stats.norm.cdf(1.0) - 1) - 2 * stats.norm.pdf(1.0) + 2 * stats.norm.sf(1.0)
    given = (b for b in (-1.0, 1.0))
    assert gain("hard_tanh", breakpoints=given) == pytest.approx(exact_m**-0.5, rel=1e-12)


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softsign", "hard_tanh", "hard_sigmoid"])
def test_bounded_activations_say_why(name):
    with pytest.raises(ValueError) as info:
        gain(name, "fixed_point")
    message = str(info.value)
    assert "stays below 1 for every σ" in message and "bounded" in message
    assert f"Received: activation={name!r}" in message


def test_exponential_has_no_fixed_point_either():
    # E[exp(σ z)²] = exp(2σ²) > 1 for every σ > 0.
    with pytest.raises(ValueError, match="exceeds 1 for every σ"):
        gain("exponential", "fixed_point")
    assert gain("exponential") == pytest.approx(math.exp(-1.0), rel=1e-12)  # 1/sqrt(e²)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sparsemax"])
def test_axis_activations_have_no_gain(name):
    with pytest.raises(ValueError, match="not elementwise"):
        gain(name)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"Argument `method`.*Received: method='fixed'"):
        gain("relu", method="fixed")
    with pytest.raises(ValueError, match="Did you mean 'gelu'"):
        gain("gelo")
    with pytest.raises(ValueError, match="not an activation layer"):
        gain(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="Argument `breakpoints`"):
        gain(np.tanh, breakpoints=[float("nan")])
    with pytest.raises(ValueError, match="no second-moment gain"):
        gain(lambda x: 0.0 * x)


def test_squareplus_against_its_closed_form():
    # squareplus_b(x) = (x + sqrt(x² + b)) / 2, so f² = (2x² + b + 2x sqrt(x² + b)) / 4
    # and, the last term being odd, E[f(σz)²] = (2σ² + b) / 4.
    for b in (0.5, 1.0, 2.0):
        act = functools.partial(keras.activations.squareplus, b=b)
        assert gain(act) == pytest.approx(2.0 / math.sqrt(2.0 + b), rel=1e-12)
        assert gain(act, "fixed_point") == pytest.approx(math.sqrt((4.0 - b) / 2.0), rel=1e-10)
    # Keras's default b = 4: E[f(σz)²] = 1 + σ²/2 > 1, no fixed point.
    assert gain("squareplus") == pytest.approx(math.sqrt(2.0 / 3.0), rel=1e-12)
    with pytest.raises(ValueError, match="exceeds 1 for every σ"):
        gain("squareplus", "fixed_point")


def test_user_callables_that_cannot_be_integrated():
    def needs_a_string(x):
        return x.upper()

    with pytest.raises(ValueError, match="could not be evaluated.*AttributeError") as info:
        gain(needs_a_string)
    assert "needs_a_string" in str(info.value)
    with pytest.raises(ValueError, match="must act elementwise.*shape \\(7,\\).*shape \\(\\)"):
        gain(lambda x: np.sum(x**2))
