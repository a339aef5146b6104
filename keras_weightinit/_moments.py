"""Data-free scales by moment propagation (`initialize(model, method="moments")`).

After the analytic draw, the mean and the variance of every element of the
signal (one example's shape, no batch axis) are carried through the model's
graph, layer by layer, from the input's (standard normal, or a batch's).
At each kernel, the pre-activation moments are computed through the kernel
*actually drawn*, and the kernel is scaled once so that the pre-activation
std over all its elements is the unit's target (1; see `target_std`):

    std² = mean_j(var_j) + var_j(mean_j)

which is what a batch would measure over examples and units. Per-unit
moments through the drawn kernels, rather than one constant per activation,
follow a given network's own finite-width drift: the mean of a rectifier's
output, for one, is a single direction that each kernel maps with its own
random gain.

Assumptions, each stated where it is used:

- Pre-activations are Gaussian, element by element (a sum over a fan-in of
  many terms), so an activation's output moments are Gaussian expectations:
  closed forms for linear, relu, leaky relu (and PReLU), elu and selu;
  composite Gauss–Legendre quadrature for the others (the rule
  `keras_weightinit.gains` uses across kinks).
- The elements a kernel sums are independent: the mean of a linear layer's
  output is the layer applied to the mean (exact), its variance the layer
  with squared weights applied to the variance.
- Branches that meet in `Add`/`Subtract`/`Average` are independent (true at
  initialization: zero-mean weights make a branch uncorrelated with its
  input).
- Pooling windows are fully correlated: the window's moments pass through
  unchanged. For average pooling this bounds the next variance from above
  (a layer after it is never scaled up for a reduction that may not
  happen). For max pooling it is an under-estimate: the maximum of a window
  exceeds its mean, so a kernel right after a max pooling can come out
  above 1 (x1.7 in the test model, after gelu and a 2x2 max).
- Dropout and noise layers are the identity (inference).

Layers followed: Dense, EinsumDense, ConvND, ConvNDTranspose, DepthwiseConvND,
SeparableConvND (own activations too), activation layers, BatchNormalization
(inference, its real statistics), LayerNormalization and RMSNormalization
(which restart the moments: their outputs are known whatever came in),
pooling, padding, cropping, upsampling, Flatten, Reshape, Permute,
RepeatVector, dropout and noise layers, Add, Subtract, Average, Multiply,
Concatenate and Embedding (the table's per-dimension moments over the
vocabulary), in functional and Sequential graphs, nested ones included.
Anything else (a recurrent layer, attention, an op of `keras.ops` in the
graph, a subclassed model, which has no graph) cuts the trail: the kernels
after it keep their analytic scale, and the report says why.

Residual schemes compose: a zeroed BatchNormalization γ is read as it is (the
branch's moments become zero), and a branch's last kernel that a scheme
scales by `a` gets `target_std = a` (the moments are solved for it, not 1).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import keras
import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy import special

from keras_weightinit import _forward
from keras_weightinit import _graph as graph
from keras_weightinit import _keras_internals as internals
from keras_weightinit.activations import (
    SELU_ALPHA,
    SELU_SCALE,
    is_activation_layer,
    resolve_activation,
)
from keras_weightinit.report import ActivationStability, verdict

# Activations without a closed form: 24 Gauss–Legendre panels of 8 nodes on
# [-10, 10] standard deviations (the mass beyond is 1.5e-23). Smooth ones
# (tanh, gelu, silu, ...) come out within ~1e-9 even at N(-1.3, 2.5²), where
# 128 Gauss–Hermite nodes still miss tanh's mean by 1e-6 (its poles at
# ±iπ/2 slow a global rule); a kink costs O(h²) ~ 1e-4 on its panel.
_PANELS, _PANEL_NODES, _Z_MAX = 24, 8, 10.0


@dataclasses.dataclass
class Moments:
    """Per-element mean and variance of one example of a tensor (None: unknown)."""

    mean: np.ndarray | None
    var: np.ndarray | None
    why: str = ""  # why the moments are unknown

    @property
    def known(self) -> bool:
        return self.mean is not None

    def total_std(self) -> float:
        """The std a batch would show over examples and elements."""
        return math.sqrt(float(np.mean(self.var) + np.var(self.mean)))


def _unknown(why: str) -> Moments:
    return Moments(None, None, why)


@dataclasses.dataclass
class Solved:
    """What the solve did to one kernel layer."""

    factor: float = 1.0
    std: float | None = None  # the predicted pre-activation std after the factor
    note: str = ""


# -- activations -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _legendre():
    t, w = leggauss(_PANEL_NODES)
    edges = np.linspace(-_Z_MAX, _Z_MAX, _PANELS + 1)
    half = 0.5 * (edges[1:] - edges[:-1])
    z = (edges[:-1, None] + half[:, None] * (t[None, :] + 1.0)).ravel()
    weights = (half[:, None] * w[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z, weights


def _relu_moments(mu, sd):
    """E[max(z, 0)] and E[max(z, 0)²] for z ~ N(mu, sd²)."""
    a = mu / sd
    cdf, pdf = special.ndtr(a), np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return mu * cdf + sd * pdf, (mu * mu + sd * sd) * cdf + mu * sd * pdf


def _exp_below(mu, sd, k):
    """E[exp(k z) 1{z < 0}] for z ~ N(mu, sd²)."""
    return np.exp(k * mu + 0.5 * k * k * sd * sd) * special.ndtr(-(mu + k * sd * sd) / sd)


def _elu_moments(mu, sd, alpha):
    """E[elu(z)] and E[elu(z)²]: relu's part above 0, alpha (e^z - 1) below."""
    m1, m2 = _relu_moments(mu, sd)
    below = special.ndtr(-mu / sd)
    e1, e2 = _exp_below(mu, sd, 1.0), _exp_below(mu, sd, 2.0)
    return m1 + alpha * (e1 - below), m2 + alpha * alpha * (e2 - 2.0 * e1 + below)


def activation_moments(activation, mean: np.ndarray, var: np.ndarray):
    """Elementwise output mean and variance of `activation` for N(mean, var) inputs."""
    act = resolve_activation(activation)
    if not act.elementwise:
        raise ValueError(f"{act.name} is not elementwise")
    mu = np.asarray(mean, np.float64)
    sd = np.sqrt(np.maximum(np.asarray(var, np.float64), 1e-300))
    p = act.params
    name = act.name
    slope = p.get("negative_slope", 0.0) if name in ("relu", "leaky_relu") else None
    if name == "linear":
        return mu, sd * sd
    if slope is not None and (
        name == "leaky_relu" or (p["max_value"] is None and p["threshold"] == 0)
    ):
        # x -> x (x > 0), a x (x < 0) = relu(x) - a relu(-x).
        up1, up2 = _relu_moments(mu, sd)
        dn1, dn2 = _relu_moments(-mu, sd)
        m1, m2 = up1 - slope * dn1, up2 + slope * slope * dn2
    elif name == "elu":
        m1, m2 = _elu_moments(mu, sd, p["alpha"])
    elif name == "selu":
        m1, m2 = _elu_moments(mu, sd, SELU_ALPHA)
        m1, m2 = SELU_SCALE * m1, SELU_SCALE**2 * m2
    else:
        z, w = _legendre()
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.asarray(act.fn(mu[..., None] + sd[..., None] * z), np.float64)
        m1, m2 = y @ w, (y * y) @ w
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def chi(activation) -> float:
    """`d log E[f(sqrt(q) z)²] / d log q` at q = 1, z ~ N(0, 1).

    The slope of the variance map at the unit-variance fixed point of
    `q -> E[f(sqrt(q) z)²] / E[f(z)²]`: below 1 an error in a layer's
    variance shrinks layer after layer, at 1 it persists, above 1 it grows.
    """
    eps = 1e-4

    def m2(q):
        m1, v = activation_moments(activation, np.zeros(1), np.full(1, q))
        return float(v[0] + m1[0] ** 2)

    return (math.log(m2(1 + eps)) - math.log(m2(1 - eps))) / (math.log(1 + eps) - math.log(1 - eps))


# -- layers ------------------------------------------------------------------

_STRUCTURAL = (
    graph.RESHAPING_NAMES
    + ("RepeatVector",)
    + graph.PADDING_NAMES
    + graph.UPSAMPLING_NAMES
    + graph.POOLING_NAMES
    + graph.GLOBAL_POOLING_NAMES
)
_IDENTITY = graph.PASS_NAMES + ("Masking",)


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")), np.float64)


def _call(layer, x: np.ndarray) -> np.ndarray:
    """The layer on one example (a batch of 1), without its own activation."""
    out = _forward._preactivation(
        layer, layer.__call__, (keras.ops.convert_to_tensor(x[None].astype("float32")),), {}
    )
    return _np(out)[0]


class _Swap:
    """Temporarily gives variables other values (squared kernels, a zero bias)."""

    def __init__(self, pairs):
        self.pairs = [(v, keras.ops.cast(value, v.dtype)) for v, value in pairs]

    def __enter__(self):
        self.saved = _forward.snapshot([v for v, _ in self.pairs])
        for v, value in self.pairs:
            v.assign(value)

    def __exit__(self, *exc):
        _forward.restore(self.saved)


def _broadcast_axis(params: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over one example of rank `ndim`.

    `axis` counts the batch axis, as a Keras layer's `axis` does.
    """
    shape = [1] * ndim
    shape[(axis if axis >= 0 else ndim + 1 + axis) - 1] = -1
    return params.reshape(shape)


def _merge(op, inputs: list[Moments]) -> Moments | None:
    """The moments of a merge layer's output (independent inputs); None for another layer."""
    if isinstance(op, (keras.layers.Add, keras.layers.Subtract)):
        return Moments(
            inputs[0].mean
            + sum(
                m.mean * (-1 if isinstance(op, keras.layers.Subtract) else 1) for m in inputs[1:]
            ),
            sum(m.var for m in inputs),
        )
    if isinstance(op, keras.layers.Average):
        k = len(inputs)
        return Moments(sum(m.mean for m in inputs) / k, sum(m.var for m in inputs) / k**2)
    if isinstance(op, keras.layers.Multiply):
        mean, m2 = inputs[0].mean, inputs[0].var + inputs[0].mean ** 2
        for m in inputs[1:]:
            mean, m2 = mean * m.mean, m2 * (m.var + m.mean**2)
        return Moments(mean, np.maximum(m2 - mean**2, 0.0))
    if isinstance(op, keras.layers.Concatenate):
        axis = op.axis - 1 if op.axis > 0 else op.axis
        return Moments(
            np.concatenate([m.mean for m in inputs], axis=axis),
            np.concatenate([m.var for m in inputs], axis=axis),
        )
    return None


class _Solver:
    def __init__(self, kernels: dict[int, list], targets: dict[int, float]):
        self.kernels = kernels  # id(layer) -> [(slot, is_target)]
        self.targets = targets
        self.solved: dict[int, Solved] = {}
        self.structural = graph.layer_types(_STRUCTURAL)
        self.identity = graph.layer_types(_IDENTITY)

    # The function `run_through_graph` calls for each operation.
    def op(self, operation):
        return lambda *args, **kwargs: self.apply(operation, args, kwargs)

    def apply(self, op, args, kwargs):
        inputs = [a for a in keras.tree.flatten((args, kwargs)) if isinstance(a, Moments)]
        if isinstance(op, internals.functional_class()) or graph.graph_of(op) is not None:
            inner = graph.graph_of(op)
            return internals.run_through_graph(
                inner, args[0] if len(args) == 1 else list(args), self.op
            )
        healed = self._normalization(op, inputs)
        if healed is not None:
            return healed
        if id(op) in self.kernels:
            return self._kernel(op, inputs)
        unknown = next((m for m in inputs if not m.known), None)
        if unknown is not None:
            return unknown
        if isinstance(op, self.identity):
            return inputs[0]
        if is_activation_layer(op) or isinstance(op, keras.layers.Activation):
            try:
                mean, var = activation_moments(op, inputs[0].mean, inputs[0].var)
            except ValueError as e:
                return _unknown(f"activation {op.name}: {e}")
            return Moments(mean, var)
        if isinstance(op, keras.layers.BatchNormalization):
            return self._batch_norm(op, inputs[0])
        if isinstance(op, self.structural):
            m = inputs[0]
            return Moments(_call(op, m.mean), np.maximum(_call(op, m.var), 0.0))
        merged = _merge(op, inputs)
        if merged is not None:
            return merged
        return _unknown(f"{op.name} ({type(op).__name__}) is not followed")

    def _normalization(self, op, inputs):
        """LayerNormalization / RMSNormalization: moments known whatever came in."""
        ln = isinstance(op, keras.layers.LayerNormalization)
        rms = hasattr(keras.layers, "RMSNormalization") and isinstance(
            op, keras.layers.RMSNormalization
        )
        if not (ln or rms) or not inputs:
            return None
        shape = inputs[0].mean.shape if inputs[0].known else tuple(op.output.shape[1:])
        axes = op.axis if isinstance(op.axis, (list, tuple)) else [op.axis]
        axes = tuple(a - 1 if a > 0 else a for a in axes)
        gamma = getattr(op, "gamma", None) if ln else getattr(op, "scale", None)
        beta = getattr(op, "beta", None) if ln else None
        if inputs[0].known:
            m, v = inputs[0].mean, inputs[0].var
            center = np.mean(m, axis=axes, keepdims=True) if (ln and op.center) else 0.0
            power = np.mean(v + (m - center) ** 2, axis=axes, keepdims=True)
            s = np.sqrt(power + getattr(op, "epsilon", 0.0))
            mean, var = (m - center) / s, v / s**2
        else:
            # Unknown input: a normalized output has zero mean, unit variance.
            mean, var = np.zeros(shape), np.ones(shape)
        g = 1.0 if gamma is None else _np(gamma)
        b = 0.0 if beta is None else _np(beta)
        return Moments(mean * g + b, var * np.square(g))

    def _batch_norm(self, op, m: Moments) -> Moments:
        a = 1.0 / np.sqrt(_np(op.moving_variance) + op.epsilon)
        if op.scale:
            a = a * _np(op.gamma)
        shift = -_np(op.moving_mean) * a + (_np(op.beta) if op.center else 0.0)
        nd = m.mean.ndim
        a, shift = _broadcast_axis(a, op.axis, nd), _broadcast_axis(shift, op.axis, nd)
        return Moments(m.mean * a + shift, m.var * a * a)

    def _kernel(self, layer, inputs):
        slots = self.kernels[id(layer)]
        solved = self.solved.setdefault(id(layer), Solved())
        m = inputs[0] if inputs else _unknown("no input")
        if not m.known:
            solved.note = f"moments: analytic scale kept ({m.why})"
            return m
        if isinstance(layer, keras.layers.Embedding):
            e = _np(layer.embeddings)
            return Moments(
                np.broadcast_to(e.mean(0), (*m.mean.shape, e.shape[1])).copy(),
                np.broadcast_to(e.var(0), (*m.mean.shape, e.shape[1])).copy(),
            )
        if not _forward._has_elementwise_tail(layer):
            why = f"{layer.name} ({type(layer).__name__}) is not followed"
            solved.note = f"moments: analytic scale kept ({why})"
            return _unknown(why)
        kernels = [s.variable for s, _ in slots]
        bias = getattr(layer, "bias", None)
        zero_bias = [] if bias is None else [(bias, keras.ops.zeros_like(bias.value))]
        mean = _call(layer, m.mean)
        with _Swap([(k, keras.ops.square(k.value)) for k in kernels] + zero_bias):
            var = np.maximum(_call(layer, m.var), 0.0)
        target = next((s for s, is_target in slots if is_target), None)
        if target is not None:
            t = self.targets.get(id(layer), 1.0)
            b = 0.0
            if bias is not None and bool(np.any(_np(bias) != 0)):
                with _Swap(zero_bias):
                    mw = _call(layer, m.mean)
                b, mean = mean - mw, mw
            c = self._factor(mean, var, b, t)
            if c is None:
                solved.note = "moments: analytic scale kept (zero or non-finite signal)"
            else:
                _forward._rescale(target.variable, c)
                solved.factor = c
                mean, var = c * mean + b, c * c * var
                solved.std = Moments(mean, var).total_std()
        out = Moments(mean, var)
        act = getattr(layer, "activation", None)
        if _forward._tail(layer) is not None:
            try:
                out = Moments(*activation_moments(act, mean, var))
            except ValueError as e:
                return _unknown(f"activation of {layer.name}: {e}")
        return out

    @staticmethod
    def _factor(mean, var, b, t) -> float | None:
        """c with std(c·mean + b, c²·var) = t over the elements."""
        a = float(np.mean(var) + np.var(mean))
        if not (math.isfinite(a) and a > 0):
            return None
        if np.ndim(b) == 0:
            return t / math.sqrt(a)
        cross = float(np.mean((mean - mean.mean()) * (b - np.mean(b))))
        rest = float(np.var(b))
        disc = cross * cross + a * (t * t - rest)
        if disc < 0 or t * t <= rest:
            return t / math.sqrt(a)  # the kept bias alone exceeds the target
        return (-cross + math.sqrt(disc)) / a


def input_moments(model, data) -> list[Moments]:
    """Per-element moments of each model input: a batch's, or standard normal."""
    if data is not None:
        arrays = keras.tree.flatten(data)
        return [Moments(a.astype(np.float64).mean(0), a.astype(np.float64).var(0)) for a in arrays]
    out = []
    for t in model.inputs:
        shape = tuple(t.shape[1:])
        if any(d is None for d in shape):
            out.append(_unknown(f"input {t.name} has unknown dimensions {shape}"))
        elif "int" in str(t.dtype):
            out.append(Moments(np.zeros(shape), np.ones(shape)))  # token ids: see Embedding
        else:
            out.append(Moments(np.zeros(shape), np.ones(shape)))
    return out


def solve(model, kernels: dict[int, list], targets: dict[int, float], data=None):
    """Scales every target kernel in place; returns {id(layer): Solved}.

    Args:
        model: The model, its kernels already drawn.
        kernels: id(layer) -> [(slot, is_target)] for every kernel layer.
        targets: id(layer) -> the pre-activation std to aim for (default 1).
        data: A prepared batch (NumPy), for the input moments; None: N(0, 1).
    """
    solver = _Solver(kernels, targets)
    g = graph.graph_of(model)
    if g is None:
        for key in kernels:
            solver.solved[key] = Solved(
                note="moments: analytic scale kept (a subclassed model has no graph to follow)"
            )
        return solver.solved
    moments = input_moments(model, data)
    internals.run_through_graph(g, moments, solver.op)
    for key in kernels:
        solver.solved.setdefault(
            key, Solved(note="moments: analytic scale kept (not reached from the inputs)")
        )
    return solver.solved


def stability_of(rows: list) -> list[ActivationStability]:
    """One `ActivationStability` per activation that follows a kernel."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.checked and r.layer_type not in ("Embedding", "MultiHeadAttention"):
            counts[r.activation] = counts.get(r.activation, 0) + 1
    out = []
    for name, n in counts.items():
        try:
            c = chi(name)
        except ValueError:
            continue  # not elementwise (softmax): no variance map
        try:
            growth = c**n
        except OverflowError:
            growth = math.inf
        out.append(ActivationStability(name, c, verdict(c), n, growth))
    return out
