"""Property-based tests: odd shapes, dtypes, seeds and configs.

The one property: given any input, an initializer either returns a finite
tensor of exactly the requested shape and dtype, or raises a `ValueError` or
`TypeError` whose message names what was wrong. Never another exception,
never nan or inf, never a silently different dtype.

Examples are derandomized (the same ones on every run, so CI cannot flake)
and kept few and small, so that the file stays well under a minute on every
backend (JAX compiles each new shape once).
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import keras_weightinit as kwi
from keras_weightinit.initializers import DISTRIBUTIONS, MODES
from keras_weightinit.registry import ALIASES
from tests.helpers import PRESET_CLASSES, to_numpy

PRESETS = PRESET_CLASSES
CLASSES = [*PRESETS, kwi.VarianceScalingCustom]
FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]
NON_FLOAT_DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint32",
    "bool",
    "complex64",
    "string",
    "float",
    "half_precision",
    "",
    np.int32,
    np.bool_,
    np.complex64,
]


def _x64_off() -> bool:
    if keras.backend.backend() != "jax":
        return False
    import jax

    return not jax.config.jax_enable_x64


def _budget(n: int):
    # JAX compiles its random kernels once per shape and dtype (about half a
    # second each here), so it gets half the examples.
    if keras.backend.backend() == "jax":
        n = max(10, n // 2)
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _expect_clear_error(exc: BaseException) -> None:
    """A raised error must be a ValueError/TypeError with a real message."""
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert len(message) > 20, f"uninformative message: {message!r}"


def _values(x) -> np.ndarray:
    """The tensor's values in NumPy, widened without loss (float64 stays)."""
    if keras.backend.standardize_dtype(x.dtype) == "float64":
        return np.asarray(keras.ops.convert_to_numpy(x))
    return to_numpy(x)  # via float32, exact for float16 and bfloat16


def _check_tensor(x, shape: tuple[int, ...], dtype: str) -> None:
    assert tuple(x.shape) == tuple(shape)
    assert keras.backend.standardize_dtype(x.dtype) == dtype
    assert np.all(np.isfinite(_values(x))), "non-finite weights"


def _call(init, shape, dtype):
    """Calls `init`; returns the tensor, or None after checking the error."""
    try:
        x = init(shape, dtype=dtype)
    except Exception as exc:  # any type: the property is about which one
        event(f"call refused: {type(exc).__name__}")
        _expect_clear_error(exc)
        return None
    event("call gave weights")
    _check_tensor(x, shape, dtype)
    return x


# -- strategies --------------------------------------------------------------

# Few distinct sizes, zero included: enough to cover ranks 0-5 and empty
# tensors while letting backends reuse their compiled kernels.
dims = st.sampled_from([0, 1, 2, 3])
shapes = st.lists(dims, min_size=0, max_size=5).map(tuple)
few_shapes = st.sampled_from([(), (0,), (3,), (2, 3), (2, 0, 3), (1, 2, 1, 2, 1)])
classes = st.sampled_from(CLASSES)
float_dtypes = st.sampled_from(FLOAT_DTYPES)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "__import__('os').system('touch PWNED')",
            "fan_in",
            "fan_avg",
            "normal",
            "uniform",
            "truncated_normal",
            "untruncated_normal",
        ]
    )
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
seeds = (
    st.none()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.integers(min_value=0, max_value=2**31 - 1).map(keras.random.SeedGenerator)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64)
    | json_values
    | st.just({"class_name": "SeedGenerator", "config": {"seed": 3, "name": "g"}})
    | st.just({"class_name": "SeedGenerator", "config": {"seed": "os.system('x')"}})
)
plausible_values = {
    "scale": st.floats(min_value=1e-3, max_value=10.0) | st.integers(1, 4),
    "mode": st.sampled_from(MODES),
    "distribution": st.sampled_from([*DISTRIBUTIONS, "untruncated_normal"]),
    "seed": st.integers(min_value=-(2**40), max_value=2**40) | st.none(),
    "input_axes": st.none() | st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    "output_axes": st.none() | st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
}


@st.composite
def configs(draw, keys):
    """A config as a config.json could hold it: plausible, or anything."""
    plausible = draw(st.booleans())
    config = {}
    for key in keys:
        if draw(st.booleans()):
            values = plausible_values[key] if plausible else plausible_values[key] | json_values
            config[key] = draw(values)
    if draw(st.integers(0, 5)) == 0:  # now and then an unknown key
        config[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return json.loads(json.dumps(config))


def _keys(cls) -> list[str]:
    return list(cls(seed=0).get_config())


# -- shapes and dtypes -------------------------------------------------------


@_budget(60)
@given(cls=classes, shape=shapes, dtype=float_dtypes)
# Always covered, whatever the budget: rank 4 and 5, empty, every float dtype.
@example(cls=kwi.HeNormalCustom, shape=(2, 1, 3, 2), dtype="float16")
@example(cls=kwi.GlorotUniformCustom, shape=(1, 2, 0, 3, 1), dtype="bfloat16")
@example(cls=kwi.VarianceScalingCustom, shape=(3, 2, 1, 1, 2), dtype="float32")
@example(cls=kwi.LecunNormalCustom, shape=(0,), dtype="float64")
def test_float_dtype_any_shape_gives_exact_finite_tensor(cls, shape, dtype):
    event(f"rank {len(shape)}")
    event("empty" if 0 in shape else "non-empty")
    init = cls(seed=1)
    if dtype == "float64" and _x64_off():
        # JAX without 64-bit mode would hand back float32: refused instead.
        with pytest.raises(ValueError, match="dtype=float64"):
            init(shape, dtype=dtype)
        return
    x = init(shape, dtype=dtype)
    _check_tensor(x, shape, dtype)
    values = _values(x)
    if values.size:
        # Uniform draws stay within sqrt(3)*std, truncated within
        # 2*std/0.8796 (< 2.28*std); an untruncated normal practically
        # never passes 10 std. Fans of the rank-0/1 cases are per `compute_fans`.
        assert np.max(np.abs(values)) <= 10 * init.stddev(shape) * (1 + 1e-2)


@_budget(40)
@given(cls=classes, shape=shapes, dtype=st.sampled_from(NON_FLOAT_DTYPES))
def test_non_float_dtype_is_refused(cls, shape, dtype):
    with pytest.raises((ValueError, TypeError)) as info:
        cls(seed=1)(shape, dtype=dtype)
    assert "dtype" in str(info.value)


junk_shapes = (
    st.lists(st.integers(min_value=-(2**70), max_value=-1), min_size=1, max_size=3)
    | st.lists(st.floats(allow_nan=True) | st.text(max_size=3) | st.none(), min_size=1, max_size=3)
    | st.just([2**70, 0])
    | st.just([0, 2**64])
    | st.just([True, 2])
    | json_leaves
)


@_budget(40)
@given(cls=classes, shape=junk_shapes)
def test_junk_shape_is_refused_clearly(cls, shape):
    with pytest.raises((ValueError, TypeError)) as info:
        cls(seed=1)(shape)
    _expect_clear_error(info.value)
    assert "shape" in str(info.value)


# -- seeds -------------------------------------------------------------------


@_budget(60)
@given(cls=classes, seed=seeds, shape=few_shapes)
def test_any_seed_gives_weights_or_a_clear_error(cls, seed, shape):
    try:
        init = cls(seed=seed)
    except Exception as exc:  # any type: checked below
        event(f"seed refused: {type(exc).__name__}")
        _expect_clear_error(exc)
        assert "seed" in str(exc)
        return
    first = _call(init, shape, "float32")
    second = _call(init, shape, "float32")
    assert first is not None and second is not None, "a valid seed must give weights"
    if math.prod(shape) >= 4:
        # Every call draws fresh values.
        assert not np.array_equal(to_numpy(first), to_numpy(second))
    # The config still round-trips through JSON.
    config = json.loads(json.dumps(init.get_config()))
    assert type(init).from_config(config).get_config() == init.get_config()


# -- configs -----------------------------------------------------------------


@st.composite
def class_and_config(draw):
    cls = draw(classes)
    return cls, draw(configs(_keys(cls)))


@_budget(80)
@given(pair=class_and_config(), shape=few_shapes, dtype=float_dtypes)
def test_any_json_config_to_from_config(pair, shape, dtype):
    cls, config = pair
    try:
        init = cls.from_config(config)
    except Exception as exc:  # any type: checked below
        event(f"from_config refused: {type(exc).__name__}")
        _expect_clear_error(exc)
        # The message names the offending key (or says the config is bad).
        message = str(exc)
        assert "config" in message or any(f"`{key}`" in message for key in config), message
        return
    event("from_config accepted")
    assert isinstance(init, cls)
    _call(init, shape, dtype)
    # An accepted config serializes back to JSON and rebuilds the same thing.
    again = json.loads(json.dumps(init.get_config()))
    assert cls.from_config(again).get_config() == init.get_config()


ALIAS_OF = {cls: alias for alias, cls in ALIASES.items()}


@st.composite
def identifier_dicts(draw):
    """A dict as an edited config.json could hold it, mostly naming ours."""
    cls = draw(classes)
    registered = f"keras_weightinit>{cls.__name__}"
    kind = draw(st.sampled_from(["full", "short+registered", "alias", "short", "other"]))
    other = draw(st.sampled_from(["Nope", "keras_weightinit>Nope"]) | st.text(max_size=10))
    identifier = {
        "class_name": {
            "full": registered,
            "short+registered": cls.__name__,
            "alias": ALIAS_OF[cls],
            "short": cls.__name__,
            "other": other,
        }[kind],
        "config": draw(configs(_keys(cls)) | configs(_keys(cls)) | json_values),
    }
    if kind == "short+registered":
        identifier["registered_name"] = registered
    elif draw(st.integers(0, 3)) == 0:
        identifier["registered_name"] = draw(
            st.sampled_from(["os>system", "builtins>eval"]) | st.text(max_size=10)
        )
    if draw(st.integers(0, 3)) == 0:
        identifier["module"] = draw(st.sampled_from(["os", "builtins", "subprocess"]) | json_leaves)
    return json.loads(json.dumps(identifier))


@_budget(60)
@given(identifier=identifier_dicts(), which=st.sampled_from(["keras", "keras_weightinit"]))
def test_any_json_identifier_to_get(identifier, which):
    get = keras.initializers.get if which == "keras" else kwi.get
    try:
        init = get(identifier)
    except Exception as exc:  # any type: checked below
        event(f"get refused: {type(exc).__name__}")
        _expect_clear_error(exc)
        return
    event("get resolved")
    ours = {c.__name__ for c in CLASSES} | {f"keras_weightinit>{c.__name__}" for c in CLASSES}
    if identifier["class_name"] in ours | set(ALIAS_OF.values()):
        # Our name resolves to our class, never to a Keras built-in.
        assert isinstance(init, kwi.VarianceScalingCustom), repr(init)
        _call(init, (3, 4), "float32")
    else:
        assert isinstance(init, keras.initializers.Initializer), repr(init)


@_budget(40)
@given(name=st.text(max_size=20) | st.sampled_from(["he_normal_custom", "glorot_uniform_custom"]))
def test_any_string_to_get(name):
    try:
        init = kwi.get(name)
    except Exception as exc:  # any type: checked below
        _expect_clear_error(exc)
        assert repr(name) in str(exc) or name in str(exc)
        return
    # Only known names resolve; they give weights.
    assert init is None or callable(init)
    if isinstance(init, kwi.VarianceScalingCustom):
        _call(init, (2, 3), "float32")


# -- scale against dtype range -----------------------------------------------


@_budget(40)
@given(
    scale=st.floats(min_value=1e-30, max_value=1e300),
    fan=st.integers(min_value=1, max_value=4),
    dtype=float_dtypes,
    distribution=st.sampled_from(DISTRIBUTIONS),
)
def test_huge_scale_never_gives_inf(scale, fan, dtype, distribution):
    init = kwi.VarianceScalingCustom(scale=scale, distribution=distribution, seed=0)
    _call(init, (fan, 3), dtype)


# -- for_activation, gain, initialize ------------------------------------------
#
# The same property one level up: a correct result, or a ValueError/TypeError
# that names the argument it refuses. Never another exception, a NaN, a
# hang, or an argument silently ignored.


def _mostly(good, bad, one_in: int = 8):
    """`good`, and `bad` about once in `one_in` draws, so that most examples
    get far enough to test the result, and each argument is junk now and then."""
    return st.integers(1, one_in).flatmap(lambda i: bad if i == 1 else good)


def _names_an_argument(exc: BaseException, names) -> None:
    _expect_clear_error(exc)
    message = str(exc)
    assert any(f"`{n}`" in message or f"{n}=" in message for n in names), message


junk = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.lists(st.integers(0, 3), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.just(object())
)
user_functions = st.sampled_from(
    [
        np.tanh,
        np.sign,
        np.abs,
        lambda x: np.maximum(x, 0.0),
        lambda x: x * x,
        lambda x: np.exp(x**2 / 4),  # E[f²] infinite
        lambda x: np.exp(x) / np.exp(x).sum(),  # not elementwise
        lambda x: x * np.nan,
        lambda x: x * 1j,
        lambda x: np.zeros_like(x),
        lambda x: "a string",
        lambda x: x[:1],
        lambda x, y: x,
    ]
)
activations = _mostly(
    st.sampled_from(["relu", "tanh", "gelu", "selu", "softmax", "glu", "elu", "linear", None])
    | st.sampled_from([keras.layers.LeakyReLU(), keras.activations.relu, np.tanh])
    | user_functions,
    junk | st.just(keras.layers.Dense(2)),
)
gains_args = _mostly(
    st.none()
    | st.sampled_from(["second_moment", "fixed_point"])
    | st.floats(min_value=0.1, max_value=3.0)
    | st.integers(1, 3),
    st.sampled_from(["fixed", "", "2"])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-3, 0)
    | junk,
)


@_budget(60)
@given(
    activation=activations,
    method=_mostly(st.sampled_from(["second_moment", "fixed_point"]), junk),
    breakpoints=_mostly(
        st.none() | st.lists(st.floats(-3, 3), max_size=3),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3) | junk,
    ),
)
def test_gain_any_arguments(activation, method, breakpoints):
    try:
        value = kwi.gain(activation, method, breakpoints=breakpoints)
    except Exception as exc:  # any type: the property is about which one
        event(f"gain refused: {type(exc).__name__}")
        _names_an_argument(exc, ["activation", "method", "breakpoints"])
        return
    event("gain computed")
    assert isinstance(value, float) and math.isfinite(value) and value > 0.0


@_budget(60)
@given(
    activation=activations,
    distribution=_mostly(st.sampled_from(["normal", "uniform"]), junk),
    seed=_mostly(
        st.none() | st.integers(0, 2**64 - 1), st.integers(-(2**70), 2**70) | junk, one_in=4
    ),
    gain=gains_args,
    axes=_mostly(
        st.sampled_from([(None, None), ([0], [1])]), st.sampled_from([([0], None), ("0", [1])])
    ),
)
def test_for_activation_any_arguments(activation, distribution, seed, gain, axes):
    input_axes, output_axes = axes
    try:
        init = kwi.for_activation(
            activation,
            distribution,
            seed=seed,
            gain=gain,
            input_axes=input_axes,
            output_axes=output_axes,
        )
    except Exception as exc:  # any type: checked below
        event(f"for_activation refused: {type(exc).__name__}")
        _names_an_argument(
            exc, ["activation", "distribution", "seed", "gain", "input_axes", "output_axes"]
        )
        return
    event("for_activation gave an initializer")
    assert isinstance(init, kwi.VarianceScalingCustom)
    config = init.get_config()
    # No argument silently ignored: each one shows in the result.
    assert init.distribution == distribution
    assert config["seed"] == seed
    assert (config["input_axes"], config["output_axes"]) == (input_axes, output_axes)
    if isinstance(gain, (int, float)) and not isinstance(gain, bool):
        assert init.scale == pytest.approx(float(gain) ** 2, rel=1e-15)
    assert math.isfinite(init.scale) and init.scale > 0.0
    assert type(init).from_config(json.loads(json.dumps(config))).get_config() == config


def _tiny_model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="relu"),
            keras.layers.Dense(3, activation="elu"),  # every gain exists
            keras.layers.Dense(2),
        ]
    )


_GOOD = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
data_args = _mostly(
    st.sampled_from([None, _GOOD, _GOOD.astype("float64")]),
    st.sampled_from(
        [
            _GOOD[:0],  # empty
            _GOOD[:3],  # too few examples
            np.full((32, 4), np.nan, "float32"),
            np.full((32, 4), np.inf, "float32"),
            _GOOD[:, :3],  # wrong shape
            [_GOOD, _GOOD],  # wrong container for one input
            {"x": _GOOD},
            _GOOD.astype("int32"),
            np.array(["a"] * 32),
            "not data",
            3.0,
        ]
    )
    | st.builds(lambda: (row for row in _GOOD)),
    one_in=4,
)


@settings(
    max_examples=25 if keras.backend.backend() == "jax" else 50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=data_args,
    method=_mostly(st.sampled_from(["auto", "analytic", "lsuv"]), junk, one_in=12),
    distribution=_mostly(st.sampled_from(["normal", "uniform"]), junk, one_in=12),
    seed=_mostly(st.none() | st.integers(0, 2**64 - 1), st.integers(-(2**70), -1) | junk, 12),
    gain=gains_args,
    bias=_mostly(st.sampled_from(["zeros", "keep"]), junk, one_in=12),
    orthogonal=_mostly(st.booleans(), junk, one_in=12),
    tol=_mostly(st.floats(0.01, 0.5), st.floats(allow_nan=True, allow_infinity=True) | junk, 12),
    max_iter=_mostly(st.integers(1, 12), st.integers(-2, 0) | junk, one_in=12),
)
def test_initialize_any_arguments(
    data, method, distribution, seed, gain, bias, orthogonal, tol, max_iter
):
    model = _tiny_model()
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]
    kwargs = dict(
        method=method,
        distribution=distribution,
        seed=seed,
        gain=gain,
        bias=bias,
        orthogonal=orthogonal,
        tol=tol,
        max_iter=max_iter,
    )
    try:
        report = kwi.initialize(model, data, **kwargs)
    except Exception as exc:  # any type: checked below
        event(f"initialize refused: {type(exc).__name__}")
        _names_an_argument(exc, ["data", *kwargs])
        # A refusal changes nothing.
        for old, w in zip(before, model.weights):
            np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(w))
        return
    event(f"initialize ran: {report.method}")
    after = [np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float64) for w in model.weights]
    assert all(np.all(np.isfinite(w)) for w in after), "non-finite weights"
    kernels = [row for row in report]
    assert len(kernels) == 3 and not report.skipped
    assert {row.mode for row in kernels} <= {"orthogonal", "fan_in", "fan_avg"}
    assert all(row.mode == "orthogonal" for row in kernels) == bool(orthogonal)
