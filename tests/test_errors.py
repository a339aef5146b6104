"""Bad input: a clear error naming the argument and the value, never a bad weight."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests.helpers import PRESET_CLASSES

ALL = PRESET_CLASSES


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool", "complex64"])
def test_non_float_dtype(cls, dtype):
    if dtype == "complex64" and keras.backend.backend() != "tensorflow":
        pytest.skip("complex dtypes are TensorFlow-only in Keras")
    with pytest.raises(ValueError, match=f"Received: dtype={dtype}"):
        cls(seed=0)((3, 3), dtype=dtype)


def test_unknown_dtype_name():
    with pytest.raises(ValueError, match="Received: dtype='floaty'"):
        kwi.HeNormalCustom()((3, 3), dtype="floaty")


@pytest.mark.parametrize(
    "shape, error, fragment",
    [
        ((-1, 3), ValueError, "non-negative"),
        ((None, 3), ValueError, "None"),
        ((2.5, 3), TypeError, "integer"),
        ((True, 3), TypeError, "integer"),
        ("abc", TypeError, "shape='abc'"),
        (None, ValueError, "shape=None"),
        (3, TypeError, "shape=3"),
    ],
)
def test_bad_shapes(shape, error, fragment):
    with pytest.raises(error, match="shape") as info:
        kwi.HeUniformCustom(seed=0)(shape)
    assert fragment in str(info.value)


def test_numpy_integer_dims_are_fine():
    x = kwi.HeUniformCustom(seed=0)((np.int64(4), np.int32(3)))
    assert tuple(x.shape) == (4, 3)


@pytest.mark.parametrize("seed", ["abc", 1.5, True, [1], object()])
def test_bad_seed(seed):
    with pytest.raises(TypeError, match="Received: seed="):
        kwi.HeNormalCustom(seed=seed)


def test_seed_dict_must_be_a_seed_generator():
    with pytest.raises(ValueError, match="Received: seed="):
        kwi.HeNormalCustom(seed={"class_name": "Dense", "config": {"units": 3}})


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_bad_scale_value(scale):
    with pytest.raises(ValueError, match="Received: scale="):
        kwi.VarianceScalingCustom(scale=scale)


@pytest.mark.parametrize("scale", ["2", None, True, [2.0]])
def test_bad_scale_type(scale):
    with pytest.raises(TypeError, match="Received: scale="):
        kwi.VarianceScalingCustom(scale=scale)


def test_bad_mode_and_distribution():
    with pytest.raises(ValueError, match="Received: mode='fan'"):
        kwi.VarianceScalingCustom(mode="fan")
    with pytest.raises(ValueError, match="Received: distribution='gauss'"):
        kwi.VarianceScalingCustom(distribution="gauss")


def test_bad_axes():
    with pytest.raises(ValueError, match="together"):
        kwi.HeNormalCustom(input_axes=[0])
    with pytest.raises(TypeError, match="Received: input_axes="):
        kwi.HeNormalCustom(input_axes="0", output_axes=[1])
    with pytest.raises(ValueError, match="out of range"):
        kwi.HeNormalCustom(input_axes=[0], output_axes=[5])((3, 3))


@pytest.mark.parametrize("cls", ALL + [kwi.VarianceScalingCustom], ids=lambda c: c.__name__)
def test_unknown_config_key(cls):
    config = cls().get_config()
    config["sclae"] = 2.0
    with pytest.raises(ValueError, match="'sclae'"):
        cls.from_config(config)


def test_preset_refuses_scale_in_config():
    # A preset's scale is fixed: a config that tries to change it is an
    # unknown key, not a silently different initializer.
    with pytest.raises(ValueError, match="'scale'"):
        kwi.HeNormalCustom.from_config({"scale": 1.0, "seed": None})


def test_bad_config_reaches_the_user_through_deserialize():
    with pytest.raises(ValueError, match="Received: scale=nan"):
        keras.initializers.deserialize(
            {
                "module": "keras_weightinit.initializers",
                "class_name": "VarianceScalingCustom",
                "config": {"scale": float("nan")},
                "registered_name": "keras_weightinit>VarianceScalingCustom",
            }
        )


def test_misspelt_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'he_uniform_custom'") as info:
        kwi.get("he_uniform_custm")
    assert "Received: initializer='he_uniform_custm'" in str(info.value)
    # Keras's own lookup also refuses it (without the hint).
    with pytest.raises(ValueError):
        keras.initializers.get("he_uniform_custm")
