"""`VarianceScalingCustom.replace`: a copy with named fields changed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests.helpers import PRESET_CLASSES, to_numpy

SHAPE = (48, 32)
ids = [c.__name__ for c in PRESET_CLASSES]

# A general instance with no field at its default, so that a field the copy
# forgot would show as a default.
GENERAL = dict(
    scale=1.5,
    mode="fan_out",
    distribution="truncated_normal",
    seed=9,
    input_axes=[0],
    output_axes=[1],
)
# A new value for every field, each different from GENERAL's.
CHANGES = [
    ("scale", 0.25),
    ("mode", "fan_avg"),
    ("distribution", "uniform"),
    ("seed", 10),
    ("input_axes", [1]),
    ("output_axes", [0]),
]


@pytest.mark.parametrize("cls", PRESET_CLASSES, ids=ids)
def test_a_preset_stays_itself_when_only_seed_and_axes_change(cls):
    init = cls(seed=5)
    copy = init.replace(seed=6, input_axes=[0], output_axes=[1])
    assert type(copy) is cls
    assert copy.get_config() == {"seed": 6, "input_axes": [0], "output_axes": [1]}
    # The original is left as it was.
    assert init.get_config() == {"seed": 5, "input_axes": None, "output_axes": None}


@pytest.mark.parametrize("cls", PRESET_CLASSES, ids=ids)
def test_naming_a_field_a_preset_fixes_gives_the_general_class(cls):
    # Even with the preset's own value: the class follows the names given.
    init = cls(seed=5, input_axes=[0], output_axes=[1])
    copy = init.replace(scale=cls.SCALE)
    assert type(copy) is kwi.VarianceScalingCustom
    assert copy.get_config() == {
        "scale": cls.SCALE,
        "mode": cls.MODE,
        "distribution": cls.DISTRIBUTION,
        "seed": 5,
        "input_axes": [0],
        "output_axes": [1],
    }
    # And the same draw: the general class with the preset's fields is the preset.
    np.testing.assert_array_equal(to_numpy(init(SHAPE)), to_numpy(copy(SHAPE)))


@pytest.mark.parametrize("field, value", CHANGES, ids=[c[0] for c in CHANGES])
def test_only_the_named_field_changes(field, value):
    init = kwi.VarianceScalingCustom(**GENERAL)
    copy = init.replace(**{field: value})
    assert type(copy) is kwi.VarianceScalingCustom
    assert copy.get_config() == {**GENERAL, field: value}
    assert init.get_config() == GENERAL


def test_the_copy_draws_as_a_fresh_instance_with_its_fields():
    init = kwi.VarianceScalingCustom(**GENERAL)
    init(SHAPE)  # a call advances the original's stream, not the copy's
    copy = init.replace(scale=0.5, seed=3)
    fresh = kwi.VarianceScalingCustom(**{**GENERAL, "scale": 0.5, "seed": 3})
    np.testing.assert_array_equal(to_numpy(copy(SHAPE)), to_numpy(fresh(SHAPE)))


def test_seed_is_carried_as_it_was_given():
    unseeded = kwi.HeNormalCustom().replace(input_axes=[0], output_axes=[1])
    assert unseeded.get_config()["seed"] is None
    generator = keras.random.SeedGenerator(4)
    shared = kwi.VarianceScalingCustom(seed=generator).replace(mode="fan_avg")
    assert shared.seed is generator


@pytest.mark.parametrize("bad", ["sclae", "gain"])
def test_an_unknown_field_is_a_type_error_that_names_it(bad):
    with pytest.raises(TypeError, match=f"has no field '{bad}'.*Received: {bad}=2"):
        kwi.HeNormalCustom(seed=1).replace(**{bad: 2})


@pytest.mark.parametrize(
    "field, value",
    [
        ("scale", -1.0),
        ("scale", float("nan")),
        ("mode", "fan"),
        ("distribution", "cauchy"),
        ("seed", -1),
        ("seed", "zero"),
        ("input_axes", [0, 0]),
    ],
)
def test_a_bad_value_fails_as_in_the_constructor(field, value):
    with pytest.raises((TypeError, ValueError)) as by_constructor:
        kwi.VarianceScalingCustom(**{**GENERAL, field: value})
    with pytest.raises(by_constructor.type) as by_replace:
        kwi.VarianceScalingCustom(**GENERAL).replace(**{field: value})
    assert str(by_replace.value) == str(by_constructor.value)


def test_axes_given_alone_are_refused():
    # Validated as a whole: the pair must still be given together.
    with pytest.raises(ValueError, match="must be given together"):
        kwi.HeNormalCustom(seed=1).replace(input_axes=[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: kwi.HeNormalCustom(seed=1).replace(input_axes=[0], output_axes=[1]),
        lambda: kwi.GlorotUniformCustom(seed=2).replace(scale=0.5),
        lambda: kwi.VarianceScalingCustom(**GENERAL).replace(distribution="normal"),
    ],
    ids=["preset", "preset_to_general", "general"],
)
def test_a_copy_serializes_and_draws_the_same_after_a_round_trip(make):
    copy = make()
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(copy))
    assert type(back) is type(copy)
    assert back.get_config() == copy.get_config()
    np.testing.assert_array_equal(to_numpy(back(SHAPE)), to_numpy(copy(SHAPE)))
