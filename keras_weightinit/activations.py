"""Every form of a Keras activation, resolved to one canonical description.

`resolve_activation` accepts what a Keras layer accepts as `activation`
(a name or alias, a `keras.activations` or `keras.ops` function, a
`functools.partial` of one, an activation layer such as `ReLU()` or
`Activation("gelu")`, or `None`) and returns a `ResolvedActivation`: the
canonical Keras name, its parameters (Keras's own defaults filled in), the
initializer family it calls for, and a NumPy float64 version of the function
for numerical work (quadrature in `keras_weightinit.gains`).

The family of every activation Keras 3 knows, and the reason for it, is one
row of `_SPECS` (identity and saturating ones: Glorot; rectifiers and their
smooth variants: He; selu: LeCun). `NOTES` (name -> reason) is read from it,
`REFUSED` holds the forms refused on purpose, and the docs page's activation
table is generated from it by `docs/hooks/activation_table.py`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import keras
import numpy as np
from scipy import special

from keras_weightinit._validation import check_finite_real

Family = Literal["glorot", "lecun", "he"]
FAMILIES = ("glorot", "lecun", "he")

# -- NumPy float64 versions of Keras's activations ---------------------------
# Written from the definitions in Keras's docstrings; tests compare each one
# with Keras itself on every backend.


def _relu(negative_slope=0.0, max_value=None, threshold=0.0):
    def f(x):
        y = np.where(x > threshold, x, 0.0) if threshold != 0 else np.maximum(x, 0.0)
        if max_value is not None:
            y = np.clip(y, 0.0, max_value)
        if negative_slope != 0:
            y = y - negative_slope * np.maximum(threshold - x, 0.0)
        return y

    return f


def _leaky_relu(negative_slope=0.2):
    return lambda x: np.where(x > 0, x, negative_slope * x)


def _elu(alpha=1.0):
    return lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _celu(alpha=1.0):
    return lambda x: np.maximum(x, 0.0) + alpha * np.expm1(np.minimum(x, 0.0) / alpha)


# SELU's constants (Klambauer et al., 2017): they make N(0, 1) its fixed point.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _selu():
    elu = _elu(SELU_ALPHA)
    return lambda x: SELU_SCALE * elu(x)


def _gelu(approximate=False):
    if approximate:
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**3)))
    return lambda x: x * special.ndtr(x)


def _softplus():
    return lambda x: np.logaddexp(x, 0.0)


def _mish():
    return lambda x: x * np.tanh(np.logaddexp(x, 0.0))


def _hard_sigmoid():
    return lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _hard_silu():
    return lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _squareplus(b=4):
    return lambda x: 0.5 * (x + np.sqrt(x * x + b))


def _sparse_plus():
    return lambda x: np.where(x <= -1.0, 0.0, np.where(x < 1.0, 0.25 * (x + 1.0) ** 2, x))


def _soft_shrink(threshold=0.5):
    return lambda x: np.sign(x) * np.maximum(np.abs(x) - threshold, 0.0)


def _hard_shrink(threshold=0.5):
    return lambda x: np.where(np.abs(x) > threshold, x, 0.0)


def _threshold(threshold, default_value):
    return lambda x: np.where(x > threshold, x, default_value)


def _softmax(axis=-1):
    def f(x):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    return f


def _log_softmax(axis=-1):
    def f(x):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    return f


def _sparsemax(axis=-1):
    # Martins & Astudillo (2016): project onto the simplex, z -> max(z - tau, 0).
    def f(x):
        z = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
        z_sorted = -np.sort(-z, axis=-1)
        k = np.arange(1, z.shape[-1] + 1)
        cumsum = np.cumsum(z_sorted, axis=-1)
        support = 1.0 + k * z_sorted > cumsum
        k_z = np.sum(support, axis=-1, keepdims=True)
        tau = (np.take_along_axis(cumsum, k_z - 1, axis=-1) - 1.0) / k_z
        return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis)

    return f


def _glu(axis=-1):
    def f(x):
        a, b = np.split(x, 2, axis=axis)
        return a * special.expit(b)

    return f


def _fixed(fn):
    return lambda: fn


@dataclass(frozen=True)
class _Spec:
    family: Family
    make_fn: Callable[..., Callable[[np.ndarray], np.ndarray]]
    why: str
    elementwise: bool = True


# Reasons that hold for several rows, each written once.
_SATURATING = "Saturating: Glorot's derivation assumes the linear regime around 0."
_NORMALIZATION = "A normalization over an axis, used on outputs: Glorot."
_SHRINKAGE = (
    "Shrinkage (sparse coding): odd and slope 1 in both tails like `linear`, with a "
    "dead zone around 0. No constant scale is depth-stable for it, so the neutral "
    "Glorot is kept; pass `gain=` for a variance-preserving scale."
)
_SMOOTH_RECTIFIER = "A rectifier smoothed below 0, so He."
_UNSTABLE_RECTIFIER = (
    "A smooth ReLU, so He by default; no constant gain is depth-stable for it "
    "(`E[f(s z)²] / s²` grows with s: see `keras_weightinit.gains`), so deep "
    "stacks want LSUV."
)

#: The one activation table: canonical Keras name -> the family it calls for,
#: why, and a NumPy float64 version of the function. `NOTES`, the docstrings
#: and docs/activations.md's table (docs/hooks/activation_table.py) read it.
_SPECS: dict[str, _Spec] = {
    # Identity and saturating: Glorot.
    "linear": _Spec(
        "glorot",
        _fixed(lambda x: x),
        "No nonlinearity (`None` means linear): Glorot's derivation is exact for it.",
    ),
    "tanh": _Spec(
        "glorot",
        _fixed(np.tanh),
        "Glorot's derivation assumes the linear regime around 0, where tanh'(0) = 1. "
        "PyTorch's 5/3 gain is an empirical choice that keeps the std of a deep tanh "
        "stack from shrinking, not a variance-preserving constant: "
        "`E[tanh(s z)²] < 1` for every s, so none exists. Ask for it with `gain=5/3`.",
    ),
    "sigmoid": _Spec("glorot", _fixed(special.expit), _SATURATING),
    "hard_sigmoid": _Spec("glorot", _hard_sigmoid, _SATURATING),
    "sparse_sigmoid": _Spec("glorot", _fixed(lambda x: np.clip(0.5 * (x + 1), 0, 1)), _SATURATING),
    "hard_tanh": _Spec("glorot", _fixed(lambda x: np.clip(x, -1.0, 1.0)), _SATURATING),
    "softsign": _Spec("glorot", _fixed(lambda x: x / (1.0 + np.abs(x))), _SATURATING),
    "softmax": _Spec("glorot", _softmax, _NORMALIZATION, elementwise=False),
    "log_softmax": _Spec("glorot", _log_softmax, _NORMALIZATION, elementwise=False),
    "sparsemax": _Spec("glorot", _sparsemax, _NORMALIZATION, elementwise=False),
    "glu": _Spec(
        "glorot",
        _glu,
        "Not elementwise: half of the features times the sigmoid of the other half. "
        "The gate saturates like a sigmoid, so Glorot.",
        elementwise=False,
    ),
    "exponential": _Spec(
        "glorot",
        _fixed(np.exp),
        "An output activation for positive quantities (rates, scales). "
        "`E[exp(s z)²] = exp(2 s²) > 1` for every s > 0, so no scale preserves "
        "variance; Keras's default family, Glorot, is kept.",
    ),
    "hard_shrink": _Spec("glorot", _hard_shrink, _SHRINKAGE),
    "soft_shrink": _Spec("glorot", _soft_shrink, _SHRINKAGE),
    "tanh_shrink": _Spec(
        "glorot",
        _fixed(lambda x: x - np.tanh(x)),
        "Shrinkage: x - tanh(x) is odd and slope 1 in both tails like `linear`, flat "
        "around 0. No constant scale is depth-stable for it, so the neutral Glorot is "
        "kept; pass `gain=` for a variance-preserving scale.",
    ),
    # Rectifiers and their smooth variants: He.
    "relu": _Spec(
        "he",
        _relu,
        "The rectifier He et al. derived their scale for (`E[relu(z)²] = 1/2`). "
        "`ReLU(negative_slope=a)` is a leaky rectifier, see `leaky_relu`.",
    ),
    "relu6": _Spec(
        "he",
        _fixed(lambda x: np.clip(x, 0.0, 6.0)),
        "A ReLU clipped at 6: the clip only touches inputs beyond about 4 std at He scale, so He.",
    ),
    "leaky_relu": _Spec(
        "he",
        _leaky_relu,
        "He et al.'s own formula for a negative slope a, variance "
        "`2 / ((1 + a²) fan_in)`. Keras's two defaults differ: a = 0.2 for the "
        "function, 0.3 for the `LeakyReLU` layer; `PReLU` counts with the slope it "
        "starts from (0 by default: a ReLU).",
    ),
    "elu": _Spec("he", _elu, _SMOOTH_RECTIFIER),
    "celu": _Spec("he", _celu, _SMOOTH_RECTIFIER),
    "gelu": _Spec("he", _gelu, _UNSTABLE_RECTIFIER),
    "silu": _Spec("he", _fixed(lambda x: x * special.expit(x)), _UNSTABLE_RECTIFIER),
    "hard_silu": _Spec("he", _hard_silu, _UNSTABLE_RECTIFIER),
    "mish": _Spec("he", _mish, _UNSTABLE_RECTIFIER),
    "softplus": _Spec(
        "he",
        _softplus,
        "A smooth ReLU (softplus(x) - relu(x) -> 0 far from 0), so He.",
    ),
    "squareplus": _Spec("he", _squareplus, "A smooth ReLU, (x + sqrt(x² + b)) / 2, so He."),
    "sparse_plus": _Spec("he", _sparse_plus, "A ReLU with its kink smoothed over [-1, 1], so He."),
    "log_sigmoid": _Spec(
        "he",
        _fixed(special.log_expit),
        "log_sigmoid(x) = -softplus(-x): a mirrored softplus, one-sided like a "
        "rectifier, with the same second moment as softplus, so He.",
    ),
    "threshold": _Spec(
        "he",
        _threshold,
        "x above the threshold, a constant below: a shifted ReLU, so He.",
    ),
    # Self-normalizing: LeCun.
    "selu": _Spec(
        "lecun",
        _selu,
        "SELU's constants make N(0, 1) an attracting fixed point of the layer map "
        "when the weights have variance `1 / fan_in`: mean 0 and variance 1 come back "
        "by themselves, layer after layer (Klambauer et al., 2017), and its gain is "
        "exactly 1. Any other scale gives that self-normalization up, so LeCun.",
    ),
}

#: Other names Keras accepts for the same function (`keras.activations.get`).
ALIASES: dict[str, str] = {"swish": "silu", "hard_swish": "hard_silu"}

#: Why each activation gets its family: read from the table above.
NOTES: dict[str, str] = {name: spec.why for name, spec in _SPECS.items()}

#: Forms refused on purpose, with the reason (shown in the error).
REFUSED: dict[str, str] = {
    "threshold": (
        "`keras.activations.threshold` has no defaults for its `threshold` "
        "and `default_value` arguments, so a layer cannot call it by name. "
        "Pass it with its arguments, e.g. functools.partial("
        "keras.activations.threshold, threshold=0.0, default_value=0.0)."
    ),
}


def known_names() -> list[str]:
    """Every activation name accepted, aliases included."""
    return sorted(set(_SPECS) | set(ALIASES))


# -- the result ----------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedActivation:
    """One activation, described canonically.

    Two forms of the same activation resolve to equal objects
    (`fn` takes no part in the comparison):

    >>> resolve_activation("relu") == resolve_activation(keras.layers.ReLU())
    True
    >>> resolve_activation(keras.layers.LeakyReLU())
    ResolvedActivation(name='leaky_relu', params={'negative_slope': 0.3}, family='he')

    Attributes:
        name: The canonical Keras name (`"relu"`, `"leaky_relu"`, ...; `None`
            resolves to `"linear"`, aliases to their target: `"swish"` to
            `"silu"`).
        params: The activation's parameters with Keras's defaults filled in,
            e.g. `{"negative_slope": 0.2}` for the `leaky_relu` function and
            `0.3` for the `LeakyReLU` layer. Read-only.
        family: `"glorot"`, `"lecun"` or `"he"`: the initializer the
            activation calls for.
        fn: The function on NumPy float64 arrays.
        elementwise: Whether `fn` acts on each element on its own (False for
            the activations that act along `params["axis"]`).
    """

    name: str
    params: Mapping[str, Any] = field(hash=False)
    family: Family
    fn: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)
    elementwise: bool = field(default=True, repr=False)

    def __repr__(self) -> str:
        return (
            f"ResolvedActivation(name={self.name!r}, params={dict(self.params)!r}, "
            f"family={self.family!r})"
        )


def _make(name: str, params: dict[str, Any]) -> ResolvedActivation:
    spec = _SPECS[name]
    return ResolvedActivation(
        name=name,
        params=types.MappingProxyType(dict(params)),
        family=spec.family,
        fn=spec.make_fn(**params),
        elementwise=spec.elementwise,
    )


# -- Keras's own functions, layers and defaults ---------------------------------


def _keras_function(name: str) -> Callable:
    return getattr(keras.activations, name)


def _defaults(fn: Callable) -> tuple[dict[str, Any], list[str]]:
    """Keyword defaults of an activation function, and the required names."""
    defaults, required = {}, []
    params = list(inspect.signature(fn).parameters.values())[1:]  # skip x
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            required.append(p.name)
        else:
            defaults[p.name] = p.default
    return defaults, required


#: Activation functions that other Keras libraries register under their own
#: names, each exactly a Keras activation with fixed keywords: registered name
#: -> (canonical name, keywords). keras-hub's BERT, GPT-2 and other feed-forward
#: layers use `gelu_approximate`, which is `keras.activations.gelu(x,
#: approximate=True)` (keras_hub/src/utils/keras_utils.py).
_REGISTERED: dict[str, tuple[str, dict[str, Any]]] = {
    "keras_hub>gelu_approximate": ("gelu", {"approximate": True}),
    "keras_nlp>gelu_approximate": ("gelu", {"approximate": True}),
}


def _registered_name(fn: Any) -> str | None:
    """The name `keras.saving.register_keras_serializable` gave `fn`, if any."""
    if not callable(fn) or isinstance(fn, (type, keras.layers.Layer)):
        return None
    try:
        name = keras.saving.get_registered_name(fn)
    except Exception:  # objects without a __name__ and the like
        return None
    return name if isinstance(name, str) and ">" in name else None


@functools.lru_cache(maxsize=1)
def _known_callables() -> dict[int, tuple[str, Callable]]:
    """id -> (canonical name, callable) for Keras's activation functions.

    Covers `keras.activations.<name>` and the `keras.ops` function of the same
    name (`keras.ops.gelu` defaults to `approximate=True`, its signature says
    so, and the defaults are read from the callable actually passed).
    """
    table: dict[int, tuple[str, Callable]] = {}
    spellings = {name: name for name in _SPECS} | ALIASES | {"exp": "exponential"}
    for module in (keras.ops, keras.activations):  # activations win on a tie
        for spelling, name in spellings.items():
            fn = getattr(module, spelling, None)
            if callable(fn):
                table[id(fn)] = (name, fn)
    return table


def _activation_layer_classes() -> dict[type, str]:
    layers = keras.layers
    return {
        layers.Activation: "activation",
        layers.ReLU: "relu",
        layers.LeakyReLU: "leaky_relu",
        layers.ELU: "elu",
        layers.PReLU: "prelu",
        layers.Softmax: "softmax",
    }


def is_activation_layer(layer: Any) -> bool:
    """Whether `layer` is one of Keras's pure activation layers.

    Those are `Activation`, `ReLU`, `LeakyReLU`, `ELU`, `PReLU` and `Softmax`
    (every class Keras ships in `keras.layers` from its activation-layer
    module), and their subclasses. Anything else, layer or not, gives False.

    >>> is_activation_layer(keras.layers.ReLU())
    True
    >>> is_activation_layer(keras.layers.Dense(4))
    False
    """
    return isinstance(layer, tuple(_activation_layer_classes()))


def _check_real(value: Any, what: str, activation: Any) -> float:
    """A parameter read off an activation: a finite real number, or a ValueError."""
    return check_finite_real(value, what, subject=f"The {what} of activation {activation!r}")


def _prelu_slope(layer: Any) -> float:
    """The slope a PReLU layer starts from (built: the RMS of its slopes).

    The He variance 2 / ((1 + a^2) fan_in) depends on a^2 only, and a layer
    with per-channel slopes passes on the average of (1 + a_c^2) / 2, hence the
    root mean square. Unbuilt, the slope is its constant initializer's value
    (Keras's default `"zeros"` gives 0, a ReLU at the start); a random
    initializer also counts as 0.
    """
    alpha = getattr(layer, "alpha", None)
    if alpha is not None and getattr(layer, "built", False):
        a = np.asarray(keras.ops.convert_to_numpy(alpha), dtype=np.float64)
        return float(np.sqrt(np.mean(a * a))) if a.size else 0.0
    init = layer.alpha_initializer
    if isinstance(init, keras.initializers.Zeros):
        return 0.0
    if isinstance(init, keras.initializers.Ones):
        return 1.0
    if isinstance(init, keras.initializers.Constant):
        return float(np.asarray(keras.ops.convert_to_numpy(init.value)).mean())
    return 0.0


def _from_layer(layer: Any) -> ResolvedActivation:
    kind = next(k for cls, k in _activation_layer_classes().items() if isinstance(layer, cls))
    if kind == "activation":
        return resolve_activation(layer.activation)
    if kind == "relu":
        params = {
            "negative_slope": _check_real(layer.negative_slope, "negative_slope", layer),
            "max_value": None
            if layer.max_value is None
            else _check_real(layer.max_value, "max_value", layer),
            "threshold": _check_real(layer.threshold, "threshold", layer),
        }
        return _make("relu", params)
    if kind == "leaky_relu":
        slope = _check_real(layer.negative_slope, "negative_slope", layer)
        return _make("leaky_relu", {"negative_slope": slope})
    if kind == "elu":
        return _make("elu", {"alpha": _check_real(layer.alpha, "alpha", layer)})
    if kind == "prelu":
        return _make("leaky_relu", {"negative_slope": _prelu_slope(layer)})
    return _make("softmax", {"axis": layer.axis})


def _from_name(name: str, given: Mapping[str, Any], source: Any) -> ResolvedActivation:
    """Canonical name + the keywords the form gave -> ResolvedActivation."""
    defaults, required = _defaults(_keras_function(name))
    params = dict(defaults)
    params.update(given)
    missing = [r for r in required if r not in params]
    if missing:
        raise ValueError(
            f"Activation {name!r} is refused without its arguments "
            f"({', '.join(missing)}): {REFUSED.get(name, '')} "
            f"Received: activation={source!r}"
        )
    for key, value in params.items():
        if key in ("max_value",) and value is None:
            continue
        if key in ("axis",) or isinstance(value, bool):
            continue
        params[key] = _check_real(value, key, source)
    return _make(name, params)


def _unknown_name(name: str) -> ValueError:
    close = difflib.get_close_matches(name.lower(), known_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return ValueError(
        f"Unknown activation name {name!r}.{hint} Known names: "
        f"{', '.join(known_names())}. Received: activation={name!r}"
    )


def _from_string(name: str) -> ResolvedActivation:
    canonical = ALIASES.get(name, name)
    if canonical not in _SPECS:
        raise _unknown_name(name)
    return _from_name(canonical, {}, name)


def _from_partial(activation: functools.partial) -> ResolvedActivation:
    """A `functools.partial` of a Keras activation function, with keywords only."""
    known = _known_callables().get(id(activation.func))
    if known is None or known[1] is not activation.func:
        raise ValueError(
            "A functools.partial activation must wrap a Keras activation "
            f"function. Received: activation={activation!r}"
        )
    if activation.args:
        raise ValueError(
            "A functools.partial activation may bind keyword arguments "
            f"only. Received: activation={activation!r}"
        )
    name, fn = known
    defaults, required = _defaults(fn)
    allowed = set(defaults) | set(required)
    extra = sorted(set(activation.keywords) - allowed)
    if extra:
        raise ValueError(
            f"Activation {name!r} takes no argument(s) {', '.join(extra)}; "
            f"it takes {', '.join(sorted(allowed)) or 'none'}. "
            f"Received: activation={activation!r}"
        )
    return _from_name(name, {**defaults, **activation.keywords}, activation)


def _from_function(activation: Any) -> ResolvedActivation | None:
    """A Keras activation function, or one another library registered; else None."""
    known = _known_callables().get(id(activation))
    if known is not None and known[1] is activation:
        name, fn = known
        return _from_name(name, _defaults(fn)[0], activation)
    registered = _REGISTERED.get(_registered_name(activation))
    if registered is not None:
        name, keywords = registered
        return _from_name(name, keywords, activation)
    return None


def _not_an_activation(activation: Any) -> ValueError:
    """The error for an object that is no form of a Keras activation."""
    if isinstance(activation, keras.layers.Layer):
        *others, last = (cls.__name__ for cls in _activation_layer_classes())
        return ValueError(
            f"{type(activation).__name__} is not an activation layer. Activation "
            f"layers are {', '.join(others)} and {last}. Received: activation={activation!r}"
        )
    if callable(activation):
        return ValueError(
            "Unknown activation: the callable is not one of Keras's activation "
            "functions, so its initializer family is unknown. For a function "
            "of your own, `keras_weightinit.gain(fn)` derives its gain and "
            "`for_activation(fn, gain='second_moment')` (or 'fixed_point') an "
            f"initializer from it. Received: activation={activation!r}"
        )
    return ValueError(
        "Argument `activation` must be None, an activation name, a Keras "
        "activation function or a Keras activation layer. "
        f"Received: activation={activation!r} (of type {type(activation).__name__})"
    )


def resolve_activation(activation: Any) -> ResolvedActivation:
    """Resolves any form of a Keras activation to a `ResolvedActivation`.

    Accepted forms:

    - `None` (Keras's "no activation") and `"linear"`;
    - a name or alias Keras accepts (`"relu"`, `"swish"` for `"silu"`,
      `"hard_swish"` for `"hard_silu"`, ...);
    - a Keras activation function (`keras.activations.relu`,
      `keras.ops.gelu`), or a `functools.partial` of one with keyword
      arguments (`partial(keras.activations.leaky_relu, negative_slope=0.1)`);
    - a Keras activation layer: `Activation("gelu")`, `ReLU(...)`,
      `LeakyReLU(negative_slope=...)`, `ELU(alpha=...)`, `PReLU()` (resolved
      as `leaky_relu` with the slope it starts from) and `Softmax()`;
    - a `ResolvedActivation`, returned as is.

    Examples:

    >>> resolve_activation(None)
    ResolvedActivation(name='linear', params={}, family='glorot')
    >>> resolve_activation("swish")
    ResolvedActivation(name='silu', params={}, family='he')
    >>> resolve_activation("leaky_relu").params["negative_slope"]
    0.2
    >>> resolve_activation(keras.layers.Activation("selu")).family
    'lecun'

    Args:
        activation: The activation, in any of the forms above.

    Returns:
        A `ResolvedActivation`.

    Raises:
        ValueError: for an unknown name (with the closest known names), an
            object that is no Keras activation (say, a function of your own:
            `keras_weightinit.gain` accepts those), or a form refused on
            purpose (`"threshold"` without its arguments).
    """
    if isinstance(activation, ResolvedActivation):
        return activation
    if activation is None:
        return _make("linear", {})
    if isinstance(activation, str):
        return _from_string(activation)
    if is_activation_layer(activation):
        return _from_layer(activation)
    if isinstance(activation, functools.partial):
        return _from_partial(activation)
    resolved = _from_function(activation)
    if resolved is None:
        raise _not_an_activation(activation)
    return resolved
