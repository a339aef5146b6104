"""Seeds: every call draws fresh weights, and runs stay reproducible."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit._draw import draw
from keras_weightinit.initializers import derive_seed
from tests.helpers import PRESET_CLASSES, to_numpy

CLASSES = PRESET_CLASSES
SHAPE = (32, 16)
ids = [c.__name__ for c in CLASSES]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("seed", [None, 42])
def test_every_call_is_fresh(cls, seed):
    init = cls(seed=seed)
    a, b, c = (to_numpy(init(SHAPE)) for _ in range(3))
    assert not np.array_equal(a, b)
    assert not np.array_equal(b, c)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_same_int_seed_same_sequence(cls):
    first, second = cls(seed=42), cls(seed=42)
    for _ in range(3):
        np.testing.assert_array_equal(to_numpy(first(SHAPE)), to_numpy(second(SHAPE)))
    assert not np.array_equal(to_numpy(cls(seed=42)(SHAPE)), to_numpy(cls(seed=43)(SHAPE)))


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_set_random_seed_makes_unseeded_reproducible(cls):
    keras.utils.set_random_seed(123)
    a = to_numpy(cls()(SHAPE))
    keras.utils.set_random_seed(123)
    b = to_numpy(cls()(SHAPE))
    np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(124)
    assert not np.array_equal(a, to_numpy(cls()(SHAPE)))


@pytest.mark.parametrize(
    "ours, keras_dist",
    [(kwi.HeNormalCustom, "untruncated_normal"), (kwi.HeUniformCustom, "uniform")],
)
def test_seed_generator_behaves_as_in_keras(ours, keras_dist):
    # Keras's VarianceScaling with the same SeedGenerator is the reference:
    # same scale and mode, so the same draws, advancing call after call.
    mine = ours(seed=keras.random.SeedGenerator(7))
    reference = keras.initializers.VarianceScaling(
        2.0, "fan_in", keras_dist, seed=keras.random.SeedGenerator(7)
    )
    for _ in range(2):
        np.testing.assert_allclose(
            to_numpy(mine(SHAPE)), to_numpy(reference(SHAPE)), rtol=1e-6, atol=1e-7
        )


@pytest.mark.parametrize("seed", [None, 3])
def test_shared_instance_gives_layers_different_kernels(seed):
    # Keras's own HeUniform() shared by two Dense layers gives both the same
    # kernel; ours must not.
    init = kwi.HeUniformCustom(seed=seed)
    a, b = (
        keras.layers.Dense(16, kernel_initializer=init),
        keras.layers.Dense(16, kernel_initializer=init),
    )
    a.build((None, 32))
    b.build((None, 32))
    assert not np.array_equal(to_numpy(a.kernel), to_numpy(b.kernel))


def test_seeded_model_build_is_reproducible():
    def build():
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, kernel_initializer=kwi.HeNormalCustom(seed=1)),
                keras.layers.Dense(4, kernel_initializer=kwi.GlorotUniformCustom(seed=2)),
            ]
        )
        return [to_numpy(w) for w in model.weights]

    for x, y in zip(build(), build()):
        np.testing.assert_array_equal(x, y)


def test_multi_head_attention_seeding():
    # MultiHeadAttention rebuilds its initializer from the config once per
    # projection. Unseeded + set_random_seed: distinct and reproducible.
    def kernels(init):
        mha = keras.layers.MultiHeadAttention(2, 8, kernel_initializer=init)
        x = np.zeros((1, 3, 8), dtype="float32")
        mha(x, x)
        return [to_numpy(d.kernel) for d in (mha._query_dense, mha._key_dense, mha._value_dense)]

    keras.utils.set_random_seed(5)
    q, k, v = kernels("he_normal_custom")
    assert not np.array_equal(q, k) and not np.array_equal(k, v)
    keras.utils.set_random_seed(5)
    for x, y in zip((q, k, v), kernels("he_normal_custom")):
        np.testing.assert_array_equal(x, y)

    # An int seed is copied into each projection's initializer: equally
    # shaped projections come out the same, as with Keras's built-ins. This
    # is the documented behaviour; the test keeps the documentation honest.
    q, k, _ = kernels(kwi.HeNormalCustom(seed=4))
    np.testing.assert_array_equal(q, k)


def test_pickled_copy_continues_the_same_sequence():
    import pickle

    init = kwi.LecunNormalCustom(seed=8)
    init(SHAPE)
    copy = pickle.loads(pickle.dumps(init))
    assert copy.get_config() == init.get_config()
    np.testing.assert_array_equal(to_numpy(init(SHAPE)), to_numpy(copy(SHAPE)))


@pytest.mark.parametrize("base", [0, 7, 2**40 + 3, 2**64 - 1])
def test_one_derivation_serves_calls_copies_and_models(base):
    # A 31-bit seed is the first 32-bit word of NumPy's SeedSequence hash,
    # shifted by one: computed here from NumPy directly.
    for key in [(0,), (1,), (5,), (3, 1)]:
        first = np.random.SeedSequence(base, spawn_key=key).generate_state(1, dtype=np.uint32)
        assert derive_seed(base, key, 31) == int(first[0]) >> 1
        assert derive_seed(base, key, 31) == derive_seed(base, key, 64) >> 33
    # Call k of an initializer draws with key (k,) ...
    init = kwi.HeNormalCustom(seed=base)
    std = init.stddev(SHAPE)
    for k in range(2):
        expected = draw("normal", SHAPE, "float32", std, derive_seed(base, (k,), 31))
        np.testing.assert_array_equal(to_numpy(init(SHAPE)), to_numpy(expected))
    # ... and kernel i of `initialize(model, seed=base)` gets derive_seed(base, (i,), 31)
    # as the seed of the initializer it writes.
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
    )
    kwi.initialize(model, seed=base)
    for i, layer in enumerate(model.layers):
        assert layer.kernel_initializer.get_config()["seed"] == derive_seed(base, (i,), 31)
