"""for_activation: the family and distribution per activation, gains, saving."""

from __future__ import annotations

import functools
import json
import math

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import activations as A
from keras_weightinit import for_activation, gains
from tests.helpers import KURTOSIS, assert_mean, assert_std, check_ok, run_python, to_numpy
from tests.test_activations import EXPECTED_FAMILY

FAN_IN, FAN_OUT = 1000, 500
SHAPE = (FAN_IN, FAN_OUT)
N = FAN_IN * FAN_OUT

# The variance each family draws for SHAPE, from the three rules' formulas
# (docs/initializers.md).
FAMILY_VARIANCE = {
    "glorot": 2.0 / (FAN_IN + FAN_OUT),
    "lecun": 1.0 / FAN_IN,
    "he": 2.0 / FAN_IN,
}


def leaky_variance(a: float) -> float:
    # He et al. 2015: var = 2 / ((1 + a²) fan_in).
    return 2.0 / ((1.0 + a * a) * FAN_IN)


# Tolerances for n = 500,000 draws:
# - sample std: `assert_std` at 5 standard errors (0.5% normal, 0.32% uniform,
#   from n and the kurtosis), which still tells He (2e-3) from leaky 0.2
#   (1.923e-3, 2% away in std), leaky 0.3 (4%), Glorot (1.333e-3) and LeCun (1e-3).
# - sample kurtosis: standard error sqrt(24/n) = 0.007 (normal), less for the
#   uniform; 0.05 is 7 standard errors, and normal and uniform are 1.2 apart.
KURT_ATOL = 0.05


def check_draw(init, variance: float, distribution: str) -> None:
    w = to_numpy(init(SHAPE, dtype="float32")).astype(np.float64).ravel()
    sigma = math.sqrt(variance)
    assert_mean(w, 0.0, sigma, 5)
    assert_std(w, sigma, 5, distribution=distribution)
    kurt = float(np.mean(w**4)) / float(np.mean(w * w)) ** 2
    assert kurt == pytest.approx(KURTOSIS[distribution], abs=KURT_ATOL)


# -- the default table, from sampled kernels -----------------------------------------

NAMES = sorted(set(EXPECTED_FAMILY) - set(A.REFUSED))


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("name", NAMES)
def test_family_and_distribution_per_name(name, distribution):
    init = for_activation(name, distribution, seed=11)
    if name == "leaky_relu":
        variance = leaky_variance(0.2)  # the function's default slope
    else:
        variance = FAMILY_VARIANCE[EXPECTED_FAMILY[name]]
    check_draw(init, variance, distribution)


LAYER_FORMS = [
    ("LeakyReLU()", keras.layers.LeakyReLU(), leaky_variance(0.3)),
    ("LeakyReLU(0.1)", keras.layers.LeakyReLU(negative_slope=0.1), leaky_variance(0.1)),
    ("ReLU(negative_slope=0.5)", keras.layers.ReLU(negative_slope=0.5), leaky_variance(0.5)),
    ("ReLU(max_value=6)", keras.layers.ReLU(max_value=6.0), FAMILY_VARIANCE["he"]),
    ("PReLU()", keras.layers.PReLU(), FAMILY_VARIANCE["he"]),  # starts at slope 0
    (
        "PReLU(0.25)",
        keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25)),
        leaky_variance(0.25),
    ),
    ("ELU()", keras.layers.ELU(), FAMILY_VARIANCE["he"]),
    ("Softmax()", keras.layers.Softmax(), FAMILY_VARIANCE["glorot"]),
    ("Activation('selu')", keras.layers.Activation("selu"), FAMILY_VARIANCE["lecun"]),
    ("Activation('gelu')", keras.layers.Activation("gelu"), FAMILY_VARIANCE["he"]),
    ("None", None, FAMILY_VARIANCE["glorot"]),
    ("keras.activations.tanh", keras.activations.tanh, FAMILY_VARIANCE["glorot"]),
    (
        "partial(leaky_relu, 0.01)",
        functools.partial(keras.activations.leaky_relu, negative_slope=0.01),
        leaky_variance(0.01),
    ),
    (
        "partial(threshold)",
        functools.partial(keras.activations.threshold, threshold=0.0, default_value=0.0),
        FAMILY_VARIANCE["he"],
    ),
]


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("label,form,variance", LAYER_FORMS, ids=[f[0] for f in LAYER_FORMS])
def test_family_and_distribution_per_form(label, form, variance, distribution):
    check_draw(for_activation(form, distribution, seed=5), variance, distribution)


def test_default_returns_the_presets():
    expected = {
        ("tanh", "normal"): kwi.GlorotNormalCustom,
        ("tanh", "uniform"): kwi.GlorotUniformCustom,
        ("selu", "normal"): kwi.LecunNormalCustom,
        ("selu", "uniform"): kwi.LecunUniformCustom,
        ("relu", "normal"): kwi.HeNormalCustom,
        ("relu", "uniform"): kwi.HeUniformCustom,
    }
    for (name, distribution), cls in expected.items():
        init = for_activation(name, distribution, seed=3)
        assert type(init) is cls
        assert init.get_config()["seed"] == 3
    leaky = for_activation("leaky_relu", "uniform")
    assert type(leaky) is kwi.VarianceScalingCustom
    assert (leaky.scale, leaky.mode, leaky.distribution) == (2.0 / 1.04, "fan_in", "uniform")
    assert for_activation("relu").get_config()["seed"] is None  # unseeded stays unseeded


def test_axes_are_passed_on():
    init = for_activation("relu", input_axes=[0], output_axes=[1, 2])
    assert init.get_config()["input_axes"] == [0]
    # fan_in = 4 from axis 0 only: var = 2 / 4.
    assert init.stddev((4, 3, 5)) == pytest.approx(math.sqrt(2 / 4))


# -- opt-in gains ------------------------------------------------------------------------


def test_gain_fixed_point_stores_the_scale():
    init = for_activation("gelu", gain="fixed_point", seed=0)
    assert type(init) is kwi.VarianceScalingCustom
    config = init.get_config()
    assert config["scale"] == pytest.approx(2.1551, rel=1e-3)  # gains table, docs/activations.md
    assert config["scale"] == gains.gain("gelu", "fixed_point") ** 2
    assert config["mode"] == "fan_in"
    check_draw(init, config["scale"] / FAN_IN, "normal")


def test_gain_second_moment_and_number():
    init = for_activation("silu", "uniform", gain="second_moment")
    assert init.scale == pytest.approx(2.8108, rel=1e-3)  # gains table, docs/activations.md
    check_draw(init, init.scale / FAN_IN, "uniform")
    # PyTorch's 5/3 for tanh, on request.
    tanh = for_activation("tanh", gain=5 / 3, seed=1)
    assert tanh.scale == pytest.approx(25 / 9, rel=1e-15)
    check_draw(tanh, 25 / 9 / FAN_IN, "normal")


def test_gain_for_a_function_of_ones_own():
    def doubled(x):
        return 2.0 * x

    init = for_activation(doubled, gain="fixed_point")
    assert init.scale == pytest.approx(0.25, rel=1e-12)  # E[(2σz)²] = 1 at σ = 1/2
    with pytest.raises(ValueError, match="gain='second_moment'"):
        for_activation(doubled)  # no family without a gain


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["truncated_normal", "gaussian", "Normal", None, 1])
def test_bad_distribution(bad):
    with pytest.raises(ValueError, match=r"Argument `distribution`") as info:
        for_activation("relu", bad)
    assert f"Received: distribution={bad!r}" in str(info.value)


def test_bad_gain():
    with pytest.raises(ValueError, match=r"Argument `gain`.*Received: gain='fixed'"):
        for_activation("relu", gain="fixed")
    with pytest.raises(TypeError, match=r"Argument `gain`.*Received: gain=True"):
        for_activation("relu", gain=True)
    with pytest.raises(ValueError, match=r"Argument `gain`.*Received: gain=-1.0"):
        for_activation("relu", gain=-1.0)
    with pytest.raises(ValueError, match="no fixed-point gain.*bounded"):
        for_activation("tanh", gain="fixed_point")
    with pytest.raises(ValueError, match="Did you mean 'gelu'"):
        for_activation("gelo", gain=1.5)  # a typo is caught even with a number


def test_bad_activation():
    with pytest.raises(ValueError, match="Did you mean 'silu'"):
        for_activation("sil")
    with pytest.raises(ValueError, match="not an activation layer"):
        for_activation(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="refused"):
        for_activation("threshold")


# -- serialization -----------------------------------------------------------------------

FACTORY_MADE = {
    "gelu": lambda: for_activation("gelu", seed=1),
    "leaky layer uniform": lambda: for_activation(keras.layers.LeakyReLU(), "uniform", seed=2),
    "silu fixed point": lambda: for_activation("silu", gain="fixed_point", seed=3),
    "selu uniform unseeded": lambda: for_activation("selu", "uniform"),
    "tanh 5/3": lambda: for_activation("tanh", gain=5 / 3, seed=4),
}


@pytest.mark.parametrize("make", FACTORY_MADE.values(), ids=list(FACTORY_MADE))
def test_serialize_json_deserialize(make):
    init = make()
    restored = keras.initializers.deserialize(
        json.loads(json.dumps(keras.initializers.serialize(init)))
    )
    assert type(restored) is type(init)
    assert restored.get_config() == init.get_config()


CHILD = """
import json
import numpy as np
import keras
import keras_weightinit
import keras_weightinit.gains as gains

def boom(*args, **kwargs):
    raise AssertionError("a gain was recomputed while loading")

gains.gain = boom                  # loading must only read the stored scale
gains._expect_square = boom
model = keras.saving.load_model("model.keras", compile=False)
np.save("pred_child.npy", np.asarray(model.predict(np.load("x.npy"), verbose=0)))
out = {}
for layer in model.layers:
    init = getattr(layer, "kernel_initializer", None)
    if init is not None:
        out[layer.name] = {
            "class": type(init).__module__ + "." + type(init).__name__,
            "config": layer.get_config()["kernel_initializer"],
            "scale": repr(init.scale),
        }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    inits = {
        name.replace(" ", "_").replace("/", "_"): make() for name, make in FACTORY_MADE.items()
    }
    activations = {
        "gelu": "gelu",
        "leaky_layer_uniform": None,
        "silu_fixed_point": "silu",
        "selu_uniform_unseeded": "selu",
        "tanh_5_3": "tanh",
    }
    inputs = keras.Input((6,))
    x = inputs
    for name, init in inits.items():
        dense = keras.layers.Dense(
            5, activation=activations[name], kernel_initializer=init, name=name
        )
        x = dense(x)
        if name == "leaky_layer_uniform":
            x = keras.layers.LeakyReLU(name="leaky")(x)
    model = keras.Model(inputs, x)
    data = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    np.save(tmp_path / "x.npy", data)
    expected = np.asarray(model.predict(data, verbose=0))
    model.save(tmp_path / "model.keras")

    result = json.loads(check_ok(run_python(CHILD, cwd=tmp_path)).strip().splitlines()[-1])

    np.testing.assert_array_equal(np.load(tmp_path / "pred_child.npy"), expected)
    assert set(result) == set(inits)
    for name, init in inits.items():
        layer_config = model.get_layer(name).get_config()["kernel_initializer"]
        assert result[name]["config"] == json.loads(json.dumps(layer_config)), name
        cls = type(init)
        assert result[name]["class"] == f"{cls.__module__}.{cls.__name__}", name
        assert result[name]["scale"] == repr(init.scale), name  # bit for bit
    silu_scale = gains.gain("silu", "fixed_point") ** 2
    assert result["silu_fixed_point"]["scale"] == repr(silu_scale)
    assert result["silu_fixed_point"]["config"]["config"]["scale"] == silu_scale
    assert result["tanh_5_3"]["config"]["config"]["scale"] == (5 / 3) ** 2
