"""The cases a black-box probe of the public API found: each one pinned.

Every test here failed before the fix it pins (a silent wrong result, a
crash, or an error that named nothing) and runs on every backend where the
case applies.
"""

from __future__ import annotations

import math
import threading
import warnings

import keras
import numpy as np
import pytest
from scipy import stats

import keras_weightinit as kwi
from keras_weightinit import gain
from keras_weightinit.initializers import TracedCallWarning
from tests.helpers import to_numpy

SHAPE = (16, 8)


def _backend() -> str:
    return keras.backend.backend()


# -- seeds and streams -------------------------------------------------------


@pytest.mark.parametrize("seed", [2**70, 2**64, -1, -(2**63), np.int64(-5)])
def test_out_of_range_int_seeds_are_refused(seed):
    # 2**70 used to draw what 0 draws and -1 what 2**64 - 1 draws.
    with pytest.raises(ValueError, match=f"Received: seed={int(seed)}") as info:
        kwi.HeNormalCustom(seed=seed)
    assert "0 to 2**64 - 1" in str(info.value)


def test_the_ends_of_the_seed_range_draw_distinct_streams():
    lowest, highest = kwi.HeNormalCustom(seed=0), kwi.HeNormalCustom(seed=2**64 - 1)
    assert not np.array_equal(to_numpy(lowest(SHAPE)), to_numpy(highest(SHAPE)))


def test_serialized_seed_generator_seed_is_range_checked():
    # Each backend takes a generator seed in its own range (JAX uint32,
    # PyTorch int32): outside [0, 2**31) it used to fail inside the backend.
    config = {"class_name": "SeedGenerator", "config": {"seed": 2**40, "name": None}}
    with pytest.raises(ValueError, match=f"Received: seed={2**40}"):
        kwi.HeNormalCustom(seed=config)


@pytest.mark.parametrize("seed", [7, None])
def test_reading_seed_changes_nothing(seed):
    keras.utils.set_random_seed(11)
    a = kwi.HeNormalCustom(seed=seed)
    keras.utils.set_random_seed(11)
    b = kwi.HeNormalCustom(seed=seed)
    first, second = b.seed, b.seed
    assert first == second  # the same value on every read
    np.testing.assert_array_equal(to_numpy(a(SHAPE)), to_numpy(b(SHAPE)))
    np.testing.assert_array_equal(to_numpy(a(SHAPE)), to_numpy(b(SHAPE)))


def test_seed_of_a_generator_seeded_instance_is_the_generator():
    generator = keras.random.SeedGenerator(3)
    assert kwi.HeNormalCustom(seed=generator).seed is generator


def test_einsum_dense_copies_differ_and_reproduce():
    # EinsumDense reads `seed` once per build to seed the copy it draws from.
    def kernels():
        init = kwi.GlorotNormalCustom(seed=9)
        layers = [
            keras.layers.EinsumDense("ab,bc->ac", output_shape=16, kernel_initializer=init)
            for _ in range(2)
        ]
        for layer in layers:
            layer.build((None, 32))
        return [to_numpy(layer.kernel) for layer in layers], init

    (k1, k2), init = kernels()
    assert not np.array_equal(k1, k2)
    (again1, again2), _ = kernels()
    np.testing.assert_array_equal(k1, again1)
    np.testing.assert_array_equal(k2, again2)
    # The shared instance's own stream is not disturbed by the copies.
    fresh = kwi.GlorotNormalCustom(seed=9)
    np.testing.assert_array_equal(to_numpy(init(SHAPE)), to_numpy(fresh(SHAPE)))


def test_generator_seeded_instance_is_thread_safe():
    # Keras's SeedGenerator alone is not: threads read the same state and
    # draw the same kernel (as few as 1 distinct of 8 before the lock).
    init = kwi.HeNormalCustom(seed=keras.random.SeedGenerator(1))
    outs: list = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        outs[i] = to_numpy(init((64, 64)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({o.tobytes() for o in outs}) == 8


def test_traced_call_warns_once_tensorflow():
    if _backend() != "tensorflow":
        pytest.skip("tf.function is TensorFlow's")
    import tensorflow as tf

    init = kwi.HeNormalCustom(seed=3)
    f = tf.function(lambda: init((4, 4)))
    with pytest.warns(TracedCallWarning, match="same tensor"):
        a = f().numpy()
    # The documented behaviour: the trace froze the seed.
    np.testing.assert_array_equal(a, f().numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.function(lambda: init((5, 5)))()  # a second trace: no second warning

    # A SeedGenerator is a variable the graph advances: fresh values, no warning.
    gen = kwi.HeNormalCustom(seed=keras.random.SeedGenerator(3))
    g = tf.function(lambda: gen((4, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not np.array_equal(g().numpy(), g().numpy())


def test_traced_call_jax():
    if _backend() != "jax":
        pytest.skip("jax.jit is JAX's")
    import jax

    init = kwi.HeNormalCustom(seed=3)
    f = jax.jit(lambda: init((4, 4)))
    with pytest.warns(TracedCallWarning, match="same tensor"):
        a = np.asarray(f())
    np.testing.assert_array_equal(a, np.asarray(f()))

    # A generator cannot advance inside jit: refused, and left intact.
    generator = keras.random.SeedGenerator(3)
    gen = kwi.HeNormalCustom(seed=generator)
    with pytest.raises(ValueError, match="jax.jit"):
        jax.jit(lambda: gen((4, 4)))()
    assert not np.array_equal(to_numpy(gen((4, 4))), to_numpy(gen((4, 4))))


def test_eager_calls_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kwi.HeUniformCustom(seed=1)(SHAPE)
        keras.layers.Dense(4, kernel_initializer=kwi.HeUniformCustom()).build((None, 3))


# -- scales and dtypes -------------------------------------------------------


@pytest.mark.parametrize(
    "scale, dtype",
    [(1e-30, "float16"), (1e-95, "float32"), (1e-95, "bfloat16"), (1e-12, "float16")],
)
def test_underflowing_std_is_refused(scale, dtype):
    # It used to give an all-zero (or nearly constant) kernel.
    with pytest.raises(ValueError, match="underflow") as info:
        kwi.VarianceScalingCustom(scale=scale)((64, 64), dtype=dtype)
    message = str(info.value)
    assert f"scale={scale}" in message and "shape=(64, 64)" in message
    assert f"dtype={dtype}" in message


def test_smallest_normal_std_is_accepted():
    # std = 2 x float16's smallest normal 2**-14, fan_in 64: scale = std² · 64.
    std = 2 * 2.0**-14
    x = to_numpy(kwi.VarianceScalingCustom(scale=std * std * 64, seed=0)((64, 64), "float16"))
    # 4096 draws of N(0, std²) in float16: most are distinct and non-zero.
    assert np.count_nonzero(x) > 4000 and len(np.unique(x)) > 100


@pytest.mark.parametrize("shape", [(2**62, 2**62, 0), (2**40, 2**22, 0), (2**63 - 1, 2, 0)])
def test_unindexable_empty_shape_is_refused_before_the_backend(shape):
    # JAX aborted the interpreter; TensorFlow and PyTorch raised raw errors.
    with pytest.raises(ValueError, match="shape") as info:
        kwi.HeNormalCustom(seed=0)(shape)
    assert f"shape={shape}" in str(info.value)


@pytest.mark.parametrize("shape", [(2**21, 2**21, 0), (4096, 4096, 0), (0, 3)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_empty_shape_with_large_dimensions_returns_at_once(shape, dtype):
    # JAX compiled (2**21, 2**21, 0) forever and (4096, 4096, 0) for 16 s.
    x = kwi.HeUniformCustom(seed=0)(shape, dtype=dtype)
    assert tuple(x.shape) == shape
    assert keras.backend.standardize_dtype(x.dtype) == dtype


# -- gains -------------------------------------------------------------------


def test_divergent_second_moment_is_refused():
    # E[exp(z²/4)²] = ∫ exp(z²/2) φ(z) dz = ∫ 1/sqrt(2π) dz = ∞ (was 0.212).
    with pytest.raises(ValueError, match="infinite") as info:
        gain(lambda x: np.exp(x**2 / 4))
    assert "Received: activation=" in str(info.value)
    # Its fixed point does not exist either: E[f(σz)²] = 1/sqrt(1 - σ²) > 1.
    with pytest.raises(ValueError, match="exceeds 1 for every σ"):
        gain(lambda x: np.exp(x**2 / 4), "fixed_point")


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: np.exp(x) / np.exp(x).sum(),
        lambda x: np.sum(x**2) * np.ones_like(x),
        lambda x: np.sum(x) * np.ones_like(x),
        lambda x: x * len(x),
    ],
    ids=["softmax", "sum_of_squares", "sum", "length"],
)
@pytest.mark.parametrize("method", ["second_moment", "fixed_point"])
def test_functions_that_are_not_elementwise_are_refused(fn, method):
    with pytest.raises(ValueError, match="not elementwise"):
        gain(fn, method)


def test_jumps_are_found_without_breakpoints():
    # E[sign(z)²] = 1 exactly (was 1.0473 for the gain).
    assert gain(np.sign) == pytest.approx(1.0, rel=1e-12)
    # A step at 0.37: E[f²] = P(z > 0.37), from SciPy's normal tail.
    step = gain(lambda x: (x > 0.37).astype(float))
    assert step == pytest.approx(1.0 / math.sqrt(stats.norm.sf(0.37)), rel=1e-10)
    # Two kinks and a jump at once: f = clip(x, 0, 1.5) + (x > -1).
    # E[f²] = E[c²] + 2 E[c] + P(z > -1) with c = clip(z, 0, 1.5) (c > 0 => z > -1).
    pdf, cdf, sf = stats.norm.pdf, stats.norm.cdf, stats.norm.sf
    e_c2 = 0.5 * (2 * cdf(1.5) - 1) - 1.5 * pdf(1.5) + 2.25 * sf(1.5)
    e_c = (pdf(0) - pdf(1.5)) + 1.5 * sf(1.5)
    exact = 1.0 / math.sqrt(e_c2 + 2 * e_c + sf(-1.0))
    assert gain(lambda x: np.clip(x, 0.0, 1.5) + (x > -1)) == pytest.approx(exact, rel=1e-10)


def test_scale_free_function_has_no_single_fixed_point():
    # E[sign(σz)²] = 1 for every σ: it used to claim 0.91.
    with pytest.raises(ValueError, match="no single fixed-point gain"):
        gain(np.sign, "fixed_point")


def test_nan_is_reported_as_nan():
    for method in ("second_moment", "fixed_point"):
        with pytest.raises(ValueError, match="NaN") as info:
            gain(lambda x: x * np.nan, method)
        assert "exceeds" not in str(info.value)


def test_complex_outputs_are_refused():
    # The imaginary part used to be dropped (with only a NumPy ComplexWarning).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what a user sees without -W error
        with pytest.raises(ValueError, match="returns complex values"):
            gain(lambda x: x * 1j)
    with pytest.raises(ValueError, match="returns complex values"):
        kwi.for_activation(lambda x: np.emath.sqrt(x), gain="second_moment")


# -- model-level arguments ---------------------------------------------------


def _model():
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
    )


def _weights(model):
    return [to_numpy(w).copy() for w in model.weights]


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"gain": "bogus"}, ValueError, "Received: gain='bogus'"),
        ({"gain": float("nan")}, ValueError, "Received: gain=nan"),
        ({"gain": True}, TypeError, "Received: gain=True"),
        ({"orthogonal": "no"}, TypeError, "Received: orthogonal='no'"),
        ({"orthogonal": "False"}, TypeError, "Received: orthogonal='False'"),
        ({"orthogonal": 2}, TypeError, "Received: orthogonal=2"),
        ({"seed": -1}, ValueError, "Received: seed=-1"),
        ({"seed": 2**70}, ValueError, f"Received: seed={2**70}"),
    ],
)
def test_bad_model_level_arguments_raise_up_front(kwargs, error, fragment):
    model = _model()
    before = _weights(model)
    with pytest.raises(error) as info:
        kwi.initialize(model, **kwargs)
    assert fragment in str(info.value)
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_numpy_bool_is_a_bool():
    report = kwi.initialize(_model(), orthogonal=np.bool_(True), seed=0)
    assert {row.mode for row in report} == {"orthogonal"}


def test_built_model_without_weights():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    with pytest.raises(ValueError, match="no weights") as info:
        kwi.initialize(model)
    assert "must be built" not in str(info.value)


def _batches():
    x = np.zeros((32, 8), "float32")
    out = [(x for _ in range(2)), iter([x])]
    if _backend() == "tensorflow":
        import tensorflow as tf

        out.append(tf.data.Dataset.from_tensor_slices(x).batch(16))
    if _backend() == "torch":
        import torch

        out.append(torch.utils.data.DataLoader(x, batch_size=16))
    return out


def test_streams_of_batches_are_refused_with_the_way_out():
    for data in _batches():
        with pytest.raises(TypeError, match="must be one batch") as info:
            kwi.initialize(_model(), data)
        assert "next(iter(" in str(info.value)


# -- unclear errors ----------------------------------------------------------


def test_get_accepts_our_bare_class_name():
    init = kwi.get({"class_name": "HeNormalCustom", "config": {"seed": 4}})
    assert type(init) is kwi.HeNormalCustom and init.get_config()["seed"] == 4
    # Keras's quirk, documented in `kwi.get`: deserialize hands back the name.
    assert keras.initializers.deserialize({"class_name": "HeNormalCustom", "config": {}}) == (
        "HeNormalCustom"
    )


def test_get_points_a_misspelt_class_name_at_ours():
    with pytest.raises(ValueError, match="Did you mean 'HeNormalCustom'") as info:
        kwi.get({"class_name": "HeNormalCustm", "config": {}})
    assert "keras_weightinit>ClassName" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, keras_pattern, ours",
    [
        ({"scale": -1.0}, "Argument `scale` must be positive float.", "Received: scale=-1.0"),
        ({"mode": "fan"}, "Invalid `mode` argument:", "Received: mode='fan'"),
        (
            {"distribution": "gauss"},
            "Invalid `distribution` argument:",
            "Received: distribution='gauss'",
        ),
    ],
)
def test_messages_match_keras_patterns(kwargs, keras_pattern, ours):
    # The patterns of keras/src/initializers/random_initializers_test.py.
    with pytest.raises(ValueError, match=keras_pattern) as info:
        kwi.VarianceScalingCustom(**kwargs)
    assert ours in str(info.value)
    with pytest.raises(ValueError, match=keras_pattern):
        keras.initializers.VarianceScaling(**kwargs)
