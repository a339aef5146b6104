"""Gains for every activation: exact where a closed form exists, numerical otherwise.

A gain `g` sets the weights' variance to `g² / fan_in` (so the
`VarianceScalingCustom` scale is `g²`). It undoes what the activation does to
the second moment of the signal. With `z ~ N(0, 1)` there are two natural
definitions, and `gain(..., method=...)` computes either:

- `"second_moment"`: `g = 1 / sqrt(E[f(z)²])`. If a layer's pre-activations
  have unit variance, the next layer's pre-activations have unit variance
  too. It is He's derivation (`E[relu(z)²] = 1/2`, so `g = sqrt(2)`).
- `"fixed_point"`: `g = σ*` with `E[f(σ* z)²] = 1`. The pre-activations
  have std `σ*` and the layer's *outputs* have unit second moment, the
  "unit-variance input" the next layer's fan-in rule assumes.

Both are fixed points of the layer-to-layer variance map
`q -> g² · E[f(sqrt(q) z)²]` (`q` the pre-activations' variance), at
different operating points: `q = 1` and `q = σ*²`. They coincide when `f` is
positively homogeneous (`f(s x) = s f(x)` for `s > 0`: linear, relu, leaky
relu), since then every `q` is a fixed point, and differ for every other
activation (elu: 1.2452 and 1.2780).

Whether a constant gain keeps a *deep* stack at its fixed point depends on the
slope of that map there: the fixed point attracts when the ratio
`E[f(sqrt(q) z)²] / q` falls as `q` grows, and repels when it rises. For elu,
celu, softplus, log_sigmoid and sparse_plus it falls (elu: from 1 for small
inputs, where elu(x) ≈ x, to 1/2, where it is a relu), so either gain is
depth-stable. For gelu, silu/swish, hard_silu and mish it rises, from 1/4
(near 0, f(x) ≈ x/2) to 1/2 (for large inputs f is a relu): the fixed point
repels, and a small deviation grows layer after layer, towards zero below it
(He's scale 2 is below every fixed point, so the signal vanishes) or towards
the relu regime above it. No constant gain is depth-stable for them;
data-driven rescaling (LSUV) is the remedy.

Bounded activations (tanh, sigmoid, softsign, hard_tanh, ...) have no fixed
point: `E[f(s z)²] < 1` for every `s`, so `method="fixed_point"` raises.

Numerics: `E[f(σ z)²]` is computed by Gauss–Hermite quadrature (probabilists'
form, `numpy.polynomial.hermite_e.hermegauss`, 201 nodes: exact to rounding
for smooth activations). For piecewise activations with kinks or jumps
(relu6, hard_silu, hard_tanh, elu, ...) a Gauss–Hermite rule converges
slowly across the kink (1e-3 relative and worse), so the integral is split at
the known breakpoints and each piece integrated by Gauss–Legendre; pass
`breakpoints=` for a function of your own that has kinks. The fixed point is
found with `scipy.optimize.brentq`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import keras
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import Legendre, leggauss
from scipy import optimize, special

from keras_weightinit._validation import check_choice, check_finite_numbers
from keras_weightinit.activations import (
    ResolvedActivation,
    is_activation_layer,
    resolve_activation,
)

Method = Literal["second_moment", "fixed_point"]
METHODS = ("second_moment", "fixed_point")

# Gauss–Hermite nodes: 201 make the rule exact to rounding for every smooth
# Keras activation at the scales the root search visits.
_HERMITE_NODES = 201
# Split integration: |z| <= 12 holds all but ~4e-33 of the Gaussian mass.
_Z_MAX = 12.0
_LEGENDRE_NODES = 64
# Where each rule's range ends, for the tail check: Gauss–Hermite's largest
# node is 27.4, the Legendre rules stop at Z.
_HERMITE_TAIL = np.array([30.0, 36.0])
_LEGENDRE_TAIL = np.array([_Z_MAX, 14.0, 16.0, 20.0, 24.0, 32.0])
# Adaptive rule for functions of the user's own: 11-node Gauss–Lobatto
# against 20-node Gauss–Legendre on each panel (odd against even: two
# symmetric rules with even counts would agree on a jump near a panel's
# middle, both reading it as half the panel),
# panels of 0.5 to start, halved at most 60 times (a jump is then fenced in
# to 1e-13), at most 4096 unsettled panels at once.
_LOBATTO_NODES = 11
_LEGENDRE_PANEL_NODES = 20
_START_PANELS = 48
_MAX_ROUNDS = 60
_MAX_PANELS = 4096
# Below this E[f(z)²] (a gain above 1e6) an activation is zero almost everywhere.
_SMALLEST_MOMENT = 1e-12
# Fixed-point search grid for sigma (the std of the pre-activations).
_SIGMA_GRID = np.logspace(-3, 3, 121)


@functools.lru_cache(maxsize=1)
def _hermite_rule() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = hermegauss(_HERMITE_NODES)
    return nodes, weights / math.sqrt(2.0 * math.pi)  # weights of N(0, 1)


@functools.lru_cache(maxsize=1)
def _legendre_rule() -> tuple[np.ndarray, np.ndarray]:
    return leggauss(_LEGENDRE_NODES)


def _as_float64(y: Any) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        y = keras.ops.convert_to_numpy(y)
    return np.asarray(y, dtype=np.float64)


class _NoDecay(ArithmeticError):
    """The integrand f(σz)²φ(z) has not decayed where the rule stops.

    `partial` is the integral over the rule's range: a lower bound of
    E[f(σz)²], which is infinite or out of reach of the rule.
    """

    def __init__(self, partial: float, z: float, value: float):
        super().__init__(partial, z, value)
        self.partial, self.z, self.value = partial, z, value


def _density(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _checked_tail(fn, sigma: float, total: float, edges: np.ndarray) -> float:
    """`total`, or NaN if `fn` is NaN in the tail; raises `_NoDecay` if that tail counts.

    The mass the rule leaves out, past |z| = Z, is at most about
    max_{z >= Z} f(σz)²φ(z)·z for any f that grows no faster than a
    polynomial; it must be below 1e-12 of the total (or below 1e-24). A function whose square
    grows like exp(z²/2) (`exp(x**2/4)`) never decays, and its E[f²] is
    infinite, where a fixed rule would return a finite number.
    """
    z = np.concatenate([edges, -edges])
    g = _as_float64(fn(sigma * z)) ** 2 * _density(z) * np.abs(z)
    if np.isnan(g).any():
        return math.nan
    worst = int(np.argmax(g))
    # The floor: moments below 1e-12 (gains above 1e6, refused) only matter
    # to the fixed-point search as "below 1", which a tail under 1e-24 cannot
    # change (soft_shrink at small σ is zero up to |z| = 1/σ).
    if not g[worst] <= 1e-12 * abs(total) + 1e-24:
        raise _NoDecay(total, float(z[worst]), float(g[worst]))
    return total


def _expect_square(
    fn: Callable[[np.ndarray], Any], sigma: float, breakpoints: Sequence[float] = ()
) -> float:
    """`E[fn(sigma z)²]` for `z ~ N(0, 1)`, for a built-in activation."""
    if sigma <= 0.0:
        return float(_as_float64(fn(np.zeros(1)))[0] ** 2)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        cuts = sorted({b / sigma for b in breakpoints if abs(b / sigma) < _Z_MAX})
        if not cuts:
            z, w = _hermite_rule()
            total = float(np.sum(w * _as_float64(fn(sigma * z)) ** 2))
            return _checked_tail(fn, sigma, total, _HERMITE_TAIL)
        # Gauss–Legendre on each smooth piece of [-Z, Z].
        t, w = _legendre_rule()
        edges = [-_Z_MAX, *cuts, _Z_MAX]
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            half = 0.5 * (hi - lo)
            z = lo + half * (t + 1.0)
            total += half * float(np.sum(w * _density(z) * _as_float64(fn(sigma * z)) ** 2))
        return _checked_tail(fn, sigma, total, _LEGENDRE_TAIL)


@functools.lru_cache(maxsize=1)
def _panel_rules() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A Gauss–Lobatto rule (it includes both ends) and a Gauss–Legendre one.

    The ends matter: a jump between a panel's end and its first Gauss node
    is invisible to every Gauss rule, which would then agree on a wrong value.
    """
    n = _LOBATTO_NODES
    p = Legendre.basis(n - 1)
    inner = np.sort(p.deriv().roots().real)
    t1 = np.concatenate([[-1.0], inner, [1.0]])
    w1 = 2.0 / (n * (n - 1) * p(t1) ** 2)
    t2, w2 = leggauss(_LEGENDRE_PANEL_NODES)
    return t1, w1, t2, w2


def _adaptive_expect_square(fn, sigma: float, breakpoints: Sequence[float] = ()) -> float:
    """`E[fn(sigma z)²]` for a function whose smoothness is unknown.

    Adaptive quadrature on [-Z, Z]: every panel is integrated by Gauss–Lobatto
    (11 nodes, both ends among them) and Gauss–Legendre (20 nodes), and split
    in two until both agree to 1e-14 of the total. A jump
    or a kink is thus found and fenced in by ever smaller panels, without
    being told where it is (`np.sign` integrates to 1 within 1e-13, where a
    fixed Gauss–Hermite rule gives 0.91). Given breakpoints start as panel
    edges.
    """
    if sigma <= 0.0:
        return float(fn(np.zeros(1))[0] ** 2)
    t1, w1, t2, w2 = _panel_rules()
    eps = getattr(fn, "eps", np.finfo(np.float64).eps)
    edges = np.union1d(
        np.linspace(-_Z_MAX, _Z_MAX, _START_PANELS + 1),
        [b / sigma for b in breakpoints if abs(b / sigma) < _Z_MAX],
    )
    lo, hi = edges[:-1], edges[1:]
    accepted = 0.0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for _ in range(_MAX_ROUNDS):
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
            z1 = mid[:, None] + half[:, None] * t1
            z2 = mid[:, None] + half[:, None] * t2
            values = fn(sigma * np.concatenate([z1.ravel(), z2.ravel()])) ** 2
            v1 = values[: z1.size].reshape(z1.shape) * _density(z1)
            v2 = values[z1.size :].reshape(z2.shape) * _density(z2)
            coarse, fine = half * (v1 @ w1), half * (v2 @ w2)
            total = accepted + float(np.sum(fine))
            if not math.isfinite(total):
                return total  # inf or nan: no refinement helps
            done = (
                (np.abs(fine - coarse) <= 1e-14 * abs(total))
                # A float32 function (a backend op on JAX) is noisy at 1e-7:
                # no panel agrees better than its own rounding.
                | (np.abs(fine - coarse) <= 8.0 * eps * np.abs(fine))
                | (half < 1e-13)
            )
            accepted += float(np.sum(fine[done]))
            lo, hi = lo[~done], hi[~done]
            if lo.size == 0:
                break
            if lo.size > _MAX_PANELS:
                break
            lo, hi = np.concatenate([lo, 0.5 * (lo + hi)]), np.concatenate([0.5 * (lo + hi), hi])
        # Panels narrower than 1e-13 are always accepted, so 60 halvings of
        # 0.5 end every refinement: what is left here was cut off by the cap.
        if lo.size:
            raise ValueError(
                "The activation is too irregular to integrate: after splitting "
                f"[-{_Z_MAX:g}σ, {_Z_MAX:g}σ] into {_MAX_PANELS} pieces the "
                "quadrature still disagrees with itself. Pass its jumps and kinks "
                "as `breakpoints=`."
            )
        return _checked_tail(fn, sigma, accepted, _LEGENDRE_TAIL)


_PROBE = np.array([-2.9, -1.7, -0.6, 0.0, 0.4, 1.1, 2.6])  # asymmetric on purpose


def _as_numpy_function(activation: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """`activation` with its output as a real float64 NumPy array, or a ValueError."""

    def evaluate(x: np.ndarray) -> np.ndarray:
        y = activation(x)
        if not isinstance(y, np.ndarray):
            y = keras.ops.convert_to_numpy(y)
        y = np.asarray(y)
        if y.dtype.kind == "c":
            raise ValueError(
                "The activation returns complex values (dtype "
                f"{y.dtype}); a gain is defined for real activations only, and "
                "the imaginary part is not dropped silently. "
                f"Received: activation={activation!r}"
            )
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"The activation must return numbers; it returned dtype {y.dtype}. "
                f"Received: activation={activation!r}"
            )
        return y.astype(np.float64)

    return evaluate


def _precision(activation: Callable, x: np.ndarray) -> float:
    """The machine epsilon of what `activation` returns (float64's for non-floats)."""
    y = activation(x)
    dtype = np.dtype(keras.backend.standardize_dtype(getattr(y, "dtype", "float64")))
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else np.finfo(np.float64).eps


def _on_probe(activation: Callable, evaluate: Callable) -> tuple[dict[str, np.ndarray], float]:
    """`evaluate` on the probe, on its two halves and on it reversed; the precision.

    An error the activation raises becomes a ValueError that says it could
    not be evaluated; one of `evaluate`'s own (it names the activation) stays.
    """
    probe = _PROBE
    try:
        with np.errstate(all="ignore"):
            out = {"whole": evaluate(probe)}
            if out["whole"].shape == probe.shape:
                out["its two halves alone"] = np.concatenate(
                    [evaluate(probe[:3]), evaluate(probe[3:])]
                )
                out["the array reversed"] = evaluate(probe[::-1])[::-1]
            eps = _precision(activation, probe)
    except ValueError as error:
        if "Received: activation=" in str(error):
            raise
        raise _not_evaluable(activation, error) from error
    except Exception as error:
        raise _not_evaluable(activation, error) from error
    return out, eps


def _check_elementwise(activation: Callable, values: dict[str, np.ndarray]) -> None:
    """Raises unless the probe's values agree however the array is cut or ordered."""
    probe, out = _PROBE, values.pop("whole")
    if out.shape != probe.shape:
        raise ValueError(
            "The activation is not elementwise: it must act elementwise, but on an "
            f"array of shape {probe.shape} it returned shape {out.shape}. "
            f"Received: activation={activation!r}"
        )
    for how, other in values.items():
        if other.shape != out.shape or not np.allclose(
            other, out, rtol=1e-9, atol=1e-12, equal_nan=True
        ):
            raise ValueError(
                "The activation is not elementwise: its value at a point depends on "
                f"the other values of the array. On {probe.tolist()} it gave "
                f"{out.tolist()}, on {how} {other.tolist()}. A gain is defined for "
                "functions applied to each value on its own (softmax-like "
                f"functions have none). Received: activation={activation!r}"
            )


def _checked_user_function(activation: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """`activation` as a NumPy function, after checking it works elementwise."""
    evaluate = _as_numpy_function(activation)
    values, evaluate.eps = _on_probe(activation, evaluate)
    _check_elementwise(activation, values)
    return evaluate


def _not_evaluable(activation: Any, error: BaseException) -> ValueError:
    return ValueError(
        "The activation could not be evaluated on a NumPy float64 array "
        f"({type(error).__name__}: {error}). `gain` calls it on arrays of "
        "Gaussian quadrature nodes; it may return a NumPy array or a "
        f"backend tensor. Received: activation={activation!r}"
    )


def _breakpoints(act: ResolvedActivation) -> tuple[float, ...]:
    """Where a built-in activation has a kink or a jump."""
    p = act.params
    name = act.name
    if name == "relu":
        points = {0.0, p["threshold"]}
        if p["max_value"] is not None:
            points.add(p["max_value"])
        return tuple(points)
    if name in ("leaky_relu", "elu", "celu", "selu", "softsign"):
        return (0.0,)  # softsign: |x| makes its second derivative jump
    if name == "relu6":
        return (0.0, 6.0)
    if name in ("hard_sigmoid", "hard_silu"):
        return (-3.0, 3.0)
    if name in ("sparse_sigmoid", "hard_tanh", "sparse_plus"):
        return (-1.0, 1.0)
    if name in ("soft_shrink", "hard_shrink"):
        return (-p["threshold"], p["threshold"])
    if name == "threshold":
        return (p["threshold"],)
    return ()


def _homogeneous_slope(act: ResolvedActivation) -> float | None:
    """Negative slope `a` if `f(x) = x (x > 0), a·x (x < 0)`, else None."""
    if act.name == "linear":
        return 1.0
    if act.name == "leaky_relu":
        return act.params["negative_slope"]
    if act.name == "relu" and act.params["max_value"] is None and act.params["threshold"] == 0:
        return act.params["negative_slope"]
    return None


def _moment_function(activation: Any, breakpoints: Sequence[float] | None):
    """(description, sigma -> E[f(sigma z)²], closed-form gain or None)."""
    try:
        act = resolve_activation(activation)
    except ValueError:
        if (
            not callable(activation)
            or isinstance(activation, keras.layers.Layer)
            or isinstance(activation, str)
        ):
            raise
        # A function of the user's own: elementwise, smoothness unknown.
        points = tuple(breakpoints or ())
        name = getattr(activation, "__name__", repr(activation))
        fn = _checked_user_function(activation)
        return name, lambda s: _adaptive_expect_square(fn, s, points), None

    points = tuple(breakpoints) if breakpoints is not None else _breakpoints(act)
    slope = _homogeneous_slope(act)
    if slope is not None:
        # E[f(z)²] = (1 + a²) / 2 for x -> x, a·x (linear: a = 1).
        return act.name, None, math.sqrt(2.0 / (1.0 + slope * slope))
    if act.name == "selu":
        # SELU's constants are chosen so that E[selu(z)²] = 1 (and the mean
        # 0): N(0, 1) is its fixed point, the gain is 1 by construction.
        return act.name, None, 1.0
    if act.name == "glu":
        # glu(a, b) = a · sigmoid(b), a and b independent N(0, sigma²):
        # E[glu²] = sigma² · E[sigmoid(sigma z)²].
        return (
            act.name,
            lambda s: s * s * _expect_square(special.expit, s),
            None,
        )
    if not act.elementwise:
        raise ValueError(
            f"Activation {act.name!r} normalizes across an axis (it is not "
            "elementwise): its output's second moment depends on the number of "
            "units, not only on the input's variance, so it has no gain. It "
            "belongs on an output layer; for_activation gives it Glorot. "
            f"Received: activation={activation!r}"
        )
    return act.name, lambda s: _expect_square(act.fn, s, points), None


def gain(
    activation: Any,
    method: Method = "second_moment",
    *,
    breakpoints: Sequence[float] | None = None,
) -> float:
    """The gain of an activation: weights' variance `gain² / fan_in`.

    `method="second_moment"` gives `1 / sqrt(E[f(z)²])`; `"fixed_point"`
    gives `σ*` with `E[f(σ* z)²] = 1`, `z ~ N(0, 1)` (see the module
    docstring for why they differ and when neither is depth-stable).
    `VarianceScalingCustom(scale=gain**2, mode="fan_in")` applies it.

    | activation           | second_moment | fixed_point   | PyTorch `calculate_gain` |
    | -------------------- | ------------- | ------------- | ------------------------ |
    | linear / None        | 1             | 1             | 1                        |
    | relu                 | √2 = 1.4142   | √2            | √2                       |
    | leaky_relu, slope a  | √(2/(1+a²))   | √(2/(1+a²))   | √(2/(1+a²)), a = 0.01    |
    | a = 0.2 (function)   | 1.3868        | 1.3868        |                          |
    | a = 0.3 (layer)      | 1.3546        | 1.3546        |                          |
    | selu                 | 1             | 1             | 3/4 (empirical)          |
    | elu                  | 1.2452        | 1.2780        | raises                   |
    | gelu (exact)         | 1.5335        | 1.4680        | raises                   |
    | silu / swish         | 1.6765        | 1.5588        | raises                   |
    | hard_silu            | 1.7367        | 1.5672        | raises                   |
    | mish                 | 1.4868        | 1.4515        | raises                   |
    | softplus             | 1.0419        | 1.0831        | raises                   |
    | tanh                 | 1.5925        | none: bounded | 5/3 (empirical)          |
    | sigmoid              | 1.8462        | none: bounded | 1                        |

    The scale is the square (relu 2, gelu fixed point 2.1551, silu 2.4297,
    mish 2.1068, elu 1.6332). linear, relu, leaky relu and selu are exact
    closed forms; the rest come from quadrature. Any other elementwise
    activation works, including a function of your own; activations that
    act across an axis (softmax, log_softmax, sparsemax) have no gain.

    Why PyTorch differs: its tanh 5/3 and selu 3/4 are empirical choices
    (5/3 keeps a deep tanh stack's std from shrinking; 3/4 is the SELU gain
    that keeps gradients tamer), not variance-preserving constants; its
    sigmoid 1 is Glorot's linear-regime assumption.

    Examples:

    >>> round(gain("relu"), 6)
    1.414214
    >>> round(gain(keras.layers.LeakyReLU(negative_slope=0.3)), 4)
    1.3546
    >>> round(gain("gelu", method="fixed_point") ** 2, 4)
    2.1551
    >>> round(gain(lambda x: 2 * x), 6)  # any elementwise function
    0.5

    Args:
        activation: Anything `resolve_activation` accepts (a name, a Keras
            activation function or layer, None), or any elementwise function
            of your own that takes a NumPy float64 array (returning a NumPy
            array or a backend tensor).
        method: `"second_moment"` (default, defined for every elementwise
            activation) or `"fixed_point"`.
        breakpoints: Positions of kinks or jumps of `activation`, where the
            integral is split; known for Keras's activations, give them for
            a piecewise function of your own.

    Returns:
        The gain, a positive float.

    Raises:
        ValueError: for an unknown method or activation; an activation that
            acts across an axis; `"fixed_point"` for an activation with no
            fixed point (bounded ones such as tanh and sigmoid, or one whose
            `E[f(σ z)²]` exceeds 1 at every σ, such as exponential); an
            activation that is zero almost everywhere.

    Reference:
        - He et al., 2015, "Delving Deep into Rectifiers" (relu, leaky relu).
        - Klambauer et al., 2017, "Self-Normalizing Neural Networks" (selu).
        - Poole et al., 2016, "Exponential expressivity in deep neural
          networks through transient chaos" (the variance map and its fixed
          points).
    """
    method = check_choice(method, "method", METHODS)
    if breakpoints is not None:
        breakpoints = check_finite_numbers(breakpoints, "breakpoints")
    if isinstance(activation, keras.layers.Layer) and not is_activation_layer(activation):
        resolve_activation(activation)  # raises the "not an activation layer" error
    name, moment, exact = _moment_function(activation, breakpoints)
    if exact is not None:
        return exact
    if method == "second_moment":
        try:
            m = moment(1.0)
        except _NoDecay as tail:
            raise ValueError(
                f"E[f(z)²] of activation {name!r} is infinite (or beyond any "
                f"quadrature): f(z)²·φ(z) has not decayed at z={tail.z:g}, where it "
                f"is still {tail.value:.4g}, so the integral diverges (it is at "
                f"least {tail.partial:.4g}). There is no second-moment gain. "
                f"Received: activation={activation!r}"
            ) from None
        if math.isnan(m):
            raise ValueError(
                f"E[f(z)²] of activation {name!r} is NaN: the activation returns NaN "
                "for some inputs, so it has no second-moment gain. "
                f"Received: activation={activation!r}"
            )
        if not (m > _SMALLEST_MOMENT and math.isfinite(m)):
            raise ValueError(
                f"E[f(z)²] of activation {name!r} is {m:.6g}, so it has no "
                "second-moment gain (the activation is zero, or nearly so, almost "
                f"everywhere). Received: activation={activation!r}"
            )
        return 1.0 / math.sqrt(m)
    return _fixed_point(name, moment, activation)


def _moment_or_bound(moment: Callable[[float], float], sigma: float, name: str, activation):
    """E[f(σz)²], or inf when it diverges past 1; raises when it cannot tell."""
    try:
        return moment(sigma)
    except _NoDecay as tail:
        if tail.partial >= 1.0:
            return math.inf  # whatever the tail holds, the moment exceeds 1
        raise ValueError(
            f"E[f(σ z)²] of activation {name!r} cannot be computed at σ={sigma:.4g}: "
            f"f(σz)²·φ(z) has not decayed at z={tail.z:g} (it is {tail.value:.4g}), "
            "so the integral diverges or lies beyond any quadrature. "
            f"Received: activation={activation!r}"
        ) from None


def _fixed_point(name: str, moment: Callable[[float], float], activation: Any) -> float:
    """The smallest sigma with E[f(sigma z)²] = 1, or a ValueError saying why not."""
    values = np.array([_moment_or_bound(moment, float(s), name, activation) for s in _SIGMA_GRID])
    nan = np.nonzero(np.isnan(values))[0]
    flat = np.abs(values - 1.0) <= 1e-9
    if np.count_nonzero(flat) >= 2:
        where = _SIGMA_GRID[flat]
        raise ValueError(
            f"Activation {name!r} has no single fixed-point gain: E[f(σ z)²] equals "
            f"1 for every σ from {where.min():.3g} to {where.max():.3g} (an "
            "activation such as sign does not depend on the weights' scale), so "
            "no σ is singled out. Use method='second_moment'. "
            f"Received: activation={activation!r}"
        )
    below = values < 1.0
    crossings = np.nonzero(below[:-1] != below[1:])[0]
    if nan.size:
        # Past a NaN nothing is known; a crossing before it is still a root.
        crossings = crossings[crossings + 1 < nan[0]]
        if crossings.size == 0:
            raise ValueError(
                f"E[f(σ z)²] of activation {name!r} is NaN at σ={_SIGMA_GRID[nan[0]]:.4g}: "
                "the activation returns NaN for some inputs, so its fixed point "
                f"cannot be found. Received: activation={activation!r}"
            )
    if crossings.size == 0:
        lo, hi = _SIGMA_GRID[0], _SIGMA_GRID[-1]
        if below.all():
            raise ValueError(
                f"Activation {name!r} has no fixed-point gain: E[f(σ z)²] "
                f"stays below 1 for every σ (it is {values[0]:.4g} at "
                f"σ={lo:g} and {values[-1]:.4g} at σ={hi:g}). A bounded "
                "activation (tanh, sigmoid, ...) cannot give its outputs unit "
                "second moment at any weight scale. Use "
                "method='second_moment', or the Glorot default. "
                f"Received: activation={activation!r}"
            )
        raise ValueError(
            f"Activation {name!r} has no fixed-point gain: E[f(σ z)²] "
            f"exceeds 1 for every σ (it is {values[0]:.4g} at σ={lo:g}), so "
            "no weight scale gives its outputs unit second moment. Use "
            f"method='second_moment'. Received: activation={activation!r}"
        )
    i = int(crossings[0])
    return float(
        optimize.brentq(
            lambda s: moment(s) - 1.0,
            _SIGMA_GRID[i],
            _SIGMA_GRID[i + 1],
            xtol=1e-14,
            rtol=1e-13,
        )
    )
