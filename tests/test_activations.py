"""resolve_activation and is_activation_layer: every Keras activation, every form."""

from __future__ import annotations

import dataclasses
import functools
import inspect

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import activations as A
from keras_weightinit.activations import is_activation_layer, resolve_activation
from tests.helpers import to_numpy

# The family each Keras activation calls for, written from the technique's
# rules (docs/activations.md), not from the module under test: saturating ones and the identity ->
# Glorot, rectifiers and smooth rectifiers -> He, selu -> LeCun. The choices
# the spec leaves open are decided, with their reasons, in the rows of
# keras_weightinit.activations._SPECS (read out as NOTES).
EXPECTED_FAMILY = {
    "linear": "glorot",
    "tanh": "glorot",
    "sigmoid": "glorot",
    "softmax": "glorot",
    "log_softmax": "glorot",
    "sparsemax": "glorot",
    "hard_sigmoid": "glorot",
    "sparse_sigmoid": "glorot",
    "hard_tanh": "glorot",
    "softsign": "glorot",
    "glu": "glorot",
    "exponential": "glorot",
    "hard_shrink": "glorot",
    "soft_shrink": "glorot",
    "tanh_shrink": "glorot",
    "relu": "he",
    "relu6": "he",
    "leaky_relu": "he",
    "elu": "he",
    "celu": "he",
    "gelu": "he",
    "silu": "he",
    "swish": "he",
    "hard_silu": "he",
    "hard_swish": "he",
    "mish": "he",
    "softplus": "he",
    "squareplus": "he",
    "sparse_plus": "he",
    "log_sigmoid": "he",
    "threshold": "he",  # only with its arguments, see REFUSED
    "selu": "lecun",
}

NOT_ACTIVATIONS = {"get", "serialize", "deserialize"}


def keras_activation_names() -> set[str]:
    """Every activation name Keras 3 itself knows, from Keras itself."""
    from keras.src.activations import ALL_OBJECTS_DICT

    public = {
        name
        for name, obj in vars(keras.activations).items()
        if not name.startswith("_") and inspect.isfunction(obj) and name not in NOT_ACTIVATIONS
    }
    return public | set(ALL_OBJECTS_DICT)


def keras_activation_layer_classes() -> set[type]:
    """Every layer class Keras ships from its activation-layer package."""
    return {
        obj
        for obj in vars(keras.layers).values()
        if isinstance(obj, type)
        and issubclass(obj, keras.layers.Layer)
        and obj.__module__.startswith("keras.src.layers.activations")
    }


# -- coverage of Keras's own list ------------------------------------------------


def test_every_keras_activation_is_mapped_or_refused():
    # A new Keras activation fails here until it is given a family (in the
    # module and in EXPECTED_FAMILY) or refused with a reason.
    names = keras_activation_names()
    assert len(names) >= 32  # 30 functions + swish + hard_swish in Keras 3.15
    assert names == set(EXPECTED_FAMILY)
    assert names == set(A.known_names())


@pytest.mark.parametrize("name", sorted(EXPECTED_FAMILY))
def test_family_of_each_name(name):
    if name in A.REFUSED:
        with pytest.raises(ValueError, match="refused") as info:
            resolve_activation(name)
        assert A.REFUSED[name] in str(info.value)
        return
    resolved = resolve_activation(name)
    assert resolved.family == EXPECTED_FAMILY[name]
    assert resolved.name == A.ALIASES.get(name, name)
    # The same function object, as Keras hands it to a layer.
    assert resolve_activation(keras.activations.get(name)) == resolved


def test_every_non_obvious_choice_is_explained():
    # Everything off the technique's own short table carries a reason.
    obvious = {"tanh", "sigmoid", "relu", "leaky_relu", "elu", "celu", "hard_silu"}
    obvious |= {"hard_sigmoid", "sparse_sigmoid", "hard_tanh", "softsign"}
    for name in set(A.known_names()) - set(A.ALIASES) - obvious:
        assert name in A.NOTES, name


def test_every_row_carries_its_reason_and_notes_reads_them():
    # NOTES is the table's reasons, one per canonical name, each a sentence;
    # an alias shares its target's row and reason.
    canonical = set(A.known_names()) - set(A.ALIASES)
    assert set(A.NOTES) == canonical
    assert all(why.strip().endswith(".") for why in A.NOTES.values()), A.NOTES


def test_aliases_resolve_to_their_target():
    assert resolve_activation("swish") == resolve_activation("silu")
    assert resolve_activation("hard_swish") == resolve_activation("hard_silu")
    assert keras.activations.get("swish") is keras.activations.silu  # Keras agrees


def test_none_and_linear():
    assert resolve_activation(None) == resolve_activation("linear")
    assert resolve_activation(None).name == "linear"
    assert resolve_activation(keras.activations.linear).family == "glorot"


# -- the forms ---------------------------------------------------------------------


def test_forms_of_relu_are_equal():
    expected = resolve_activation("relu")
    assert expected.params == {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
    forms = [
        keras.activations.relu,
        keras.ops.relu,
        keras.layers.ReLU(),
        keras.layers.Activation("relu"),
        keras.layers.Activation(keras.activations.relu),
        keras.layers.Dense(3, activation="relu").activation,
    ]
    for form in forms:
        assert resolve_activation(form) == expected, form


def test_leaky_relu_defaults_follow_keras():
    # Keras's own defaults differ between the function and the layer.
    assert resolve_activation("leaky_relu").params == {"negative_slope": 0.2}
    assert resolve_activation(keras.activations.leaky_relu).params == {"negative_slope": 0.2}
    assert resolve_activation(keras.layers.LeakyReLU()).params == {"negative_slope": 0.3}
    layer = keras.layers.LeakyReLU(negative_slope=0.05)
    assert resolve_activation(layer) == A.resolve_activation(
        functools.partial(keras.activations.leaky_relu, negative_slope=0.05)
    )


def test_layer_parameters():
    relu = resolve_activation(keras.layers.ReLU(max_value=4.0, negative_slope=0.1, threshold=0.5))
    assert (relu.name, relu.family) == ("relu", "he")
    assert relu.params == {"negative_slope": 0.1, "max_value": 4.0, "threshold": 0.5}
    elu = resolve_activation(keras.layers.ELU(alpha=0.5))
    assert (elu.name, elu.params, elu.family) == ("elu", {"alpha": 0.5}, "he")
    softmax = resolve_activation(keras.layers.Softmax(axis=1))
    assert (softmax.name, softmax.params, softmax.family) == ("softmax", {"axis": 1}, "glorot")
    gelu = resolve_activation(keras.layers.Activation("gelu"))
    assert gelu.params == {"approximate": False}
    assert resolve_activation(keras.layers.Activation("selu")).family == "lecun"


def test_keras_ops_functions_keep_their_own_defaults():
    # keras.ops.gelu defaults to the tanh approximation, keras.activations.gelu not.
    assert resolve_activation(keras.ops.gelu).params == {"approximate": True}
    assert resolve_activation(keras.activations.gelu).params == {"approximate": False}
    assert resolve_activation(keras.ops.silu) == resolve_activation("silu")
    assert resolve_activation(keras.ops.exp).name == "exponential"


def test_prelu_slope():
    # Unbuilt: the constant its alpha starts from (Keras's default: zeros).
    assert resolve_activation(keras.layers.PReLU()).params == {"negative_slope": 0.0}
    prelu = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25))
    assert resolve_activation(prelu).params == {"negative_slope": 0.25}
    assert resolve_activation(prelu).name == "leaky_relu"
    # Built: the root mean square of its per-unit slopes (He's variance
    # depends on a² only).
    prelu.build((None, 2))
    prelu.alpha.assign(np.array([0.1, 0.7], dtype="float32"))
    rms = np.sqrt((0.1**2 + 0.7**2) / 2)
    assert resolve_activation(prelu).params["negative_slope"] == pytest.approx(rms, rel=1e-6)


def test_partial_with_arguments():
    act = functools.partial(keras.activations.threshold, threshold=0.5, default_value=0.0)
    resolved = resolve_activation(act)
    assert (resolved.name, resolved.family) == ("threshold", "he")
    assert resolved.params == {"threshold": 0.5, "default_value": 0.0}
    elu = resolve_activation(functools.partial(keras.activations.elu, alpha=2.0))
    assert elu.params == {"alpha": 2.0}


def test_resolved_is_frozen_and_passes_through():
    resolved = resolve_activation("elu")
    assert resolve_activation(resolved) is resolved
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.name = "relu"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resolved.params["alpha"] = 2.0  # type: ignore[index]
    assert hash(resolved) == hash(resolve_activation(keras.layers.ELU()))


# -- is_activation_layer ------------------------------------------------------------


def test_every_keras_activation_layer_is_recognized_and_resolves():
    classes = keras_activation_layer_classes()
    names = {cls.__name__ for cls in classes}
    assert names >= {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"}
    for cls in classes:
        layer = cls("tanh") if cls is keras.layers.Activation else cls()
        assert is_activation_layer(layer), cls
        assert resolve_activation(layer).family in A.FAMILIES


@pytest.mark.parametrize(
    "obj",
    [
        keras.layers.Dense(3),
        keras.layers.Dropout(0.5),
        keras.layers.Identity(),
        keras.activations.relu,
        "relu",
        None,
        keras.layers.ReLU,  # the class, not a layer
    ],
)
def test_not_activation_layers(obj):
    assert is_activation_layer(obj) is False


# -- the NumPy functions agree with Keras ------------------------------------------

ELEMENTWISE_CASES = [
    ("relu", None),
    ("relu6", None),
    ("leaky_relu", None),
    ("elu", None),
    ("celu", None),
    ("selu", None),
    ("gelu", None),
    ("silu", None),
    ("hard_silu", None),
    ("mish", None),
    ("softplus", None),
    ("squareplus", None),
    ("sparse_plus", None),
    ("log_sigmoid", None),
    ("linear", None),
    ("tanh", None),
    ("sigmoid", None),
    ("hard_sigmoid", None),
    ("sparse_sigmoid", None),
    ("hard_tanh", None),
    ("softsign", None),
    ("exponential", None),
    ("hard_shrink", None),
    ("soft_shrink", None),
    ("tanh_shrink", None),
    ("softmax", None),
    ("log_softmax", None),
    ("glu", None),
    ("relu layer", keras.layers.ReLU(max_value=3.0, negative_slope=0.2, threshold=0.5)),
    (
        "relu function, negative threshold",
        functools.partial(keras.activations.relu, max_value=2.0, threshold=-0.5),
    ),
    ("elu layer", keras.layers.ELU(alpha=0.4)),
    ("celu partial", functools.partial(keras.activations.celu, alpha=0.5)),
    ("gelu approximate", keras.ops.gelu),
    ("squareplus b=1", functools.partial(keras.activations.squareplus, b=1.0)),
    (
        "threshold",
        functools.partial(keras.activations.threshold, threshold=0.3, default_value=-1.0),
    ),
]


@pytest.mark.parametrize("label,form", ELEMENTWISE_CASES, ids=[c[0] for c in ELEMENTWISE_CASES])
def test_numpy_function_matches_keras(label, form):
    form = label if form is None else form
    resolved = resolve_activation(form)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 16)) * 3).astype("float32")
    x[0, :8] = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0]  # the kinks
    keras_fn = keras.activations.get(form) if isinstance(form, str) else form
    expected = to_numpy(keras_fn(keras.ops.convert_to_tensor(x)))
    got = resolved.fn(x.astype(np.float64))
    # float32 evaluation in Keras against float64 here: a few ulps of the
    # largest value (exp(3·4) ~ 1.6e5 for "exponential").
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


def test_sparsemax_is_a_projection_onto_the_simplex():
    # Checked against the definition (Martins & Astudillo, 2016), not against
    # Keras: keras 3.15's sparsemax sums the cumulative sums over the whole
    # support when it computes tau, so its rows do not sum to 1 once the
    # support has two or more elements.
    fn = resolve_activation("sparsemax").fn
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 7))
    p = fn(z)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    # Euclidean projection: z - p is constant (= tau) on the support, and
    # z <= tau off it.
    for row_z, row_p in zip(z, p):
        support = row_p > 0
        tau = (row_z - row_p)[support]
        np.testing.assert_allclose(tau, tau[0], atol=1e-12)
        assert np.all(row_z[~support] <= tau[0] + 1e-12)
    # Where the support is one element Keras is right, and agrees.
    spike = np.array([[5.0, 0.0, 0.1, -1.0]])
    np.testing.assert_allclose(fn(spike), [[1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        to_numpy(keras.activations.sparsemax(keras.ops.convert_to_tensor(spike, "float32"))),
        fn(spike),
    )


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typo,suggested",
    [("relu_", "relu"), ("Swish", "swish"), ("leakyrelu", "leaky_relu"), ("gelu2", "gelu")],
)
def test_misspelling_suggests_the_closest_names(typo, suggested):
    with pytest.raises(ValueError) as info:
        resolve_activation(typo)
    message = str(info.value)
    assert f"Did you mean {suggested!r}" in message or f"or {suggested!r}" in message
    assert f"Received: activation={typo!r}" in message


def test_unknown_name_without_close_match_lists_known_names():
    with pytest.raises(ValueError, match="Received: activation='xyzzy'") as info:
        resolve_activation("xyzzy")
    assert "Did you mean" not in str(info.value)
    assert "selu" in str(info.value)


def test_user_callable_is_refused_with_a_hint():
    def my_activation(x):
        return x

    with pytest.raises(ValueError, match="gain") as info:
        resolve_activation(my_activation)
    assert "my_activation" in str(info.value)


@pytest.mark.parametrize("obj", [3, 2.5, ["relu"], {"class_name": "ReLU"}])
def test_non_activation_objects(obj):
    with pytest.raises(ValueError, match="Received: activation=") as info:
        resolve_activation(obj)
    assert repr(obj) in str(info.value)


def test_non_activation_layer():
    with pytest.raises(ValueError, match="Dense is not an activation layer"):
        resolve_activation(keras.layers.Dense(3))


def test_threshold_needs_its_arguments():
    for form in ("threshold", keras.activations.threshold):
        with pytest.raises(ValueError, match="functools.partial"):
            resolve_activation(form)


def test_bad_partials():
    with pytest.raises(ValueError, match="keyword arguments only"):
        resolve_activation(functools.partial(keras.activations.elu, 1.0))
    with pytest.raises(ValueError, match="takes no argument.*slope"):
        resolve_activation(functools.partial(keras.activations.leaky_relu, slope=0.1))
    with pytest.raises(ValueError, match="must wrap a Keras activation"):
        resolve_activation(functools.partial(np.tanh))
    with pytest.raises(ValueError, match="negative_slope.*real number"):
        resolve_activation(functools.partial(keras.activations.leaky_relu, negative_slope="x"))
    with pytest.raises(ValueError, match="alpha.*finite"):
        resolve_activation(keras.layers.ELU(alpha=float("nan")))


def test_keras_hub_gelu_approximate_is_gelu_with_the_tanh_approximation():
    keras_utils = pytest.importorskip("keras_hub.src.utils.keras_utils")
    resolved = resolve_activation(keras_utils.gelu_approximate)
    assert (resolved.name, resolved.params, resolved.family) == (
        "gelu",
        {"approximate": True},
        "he",
    )
    # It is exactly Keras's gelu(approximate=True), so the gains must agree.
    assert kwi.gain(keras_utils.gelu_approximate) == kwi.gain(
        functools.partial(keras.activations.gelu, approximate=True)
    )
