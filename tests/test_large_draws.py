"""Large kernels take the memory-lean sampling path (`keras_weightinit._draw`).

Above 2^20 values each backend draws differently from `keras.random` (a
graph on TensorFlow, in-place fills on PyTorch, chunked fills on JAX), so the
statistics, the seeding and the chunk boundaries are checked again here, on
a size a little above one chunk. Peak memory is measured in
`benchmarks/bench_initializers.py`, not here.

Tolerances, for n = 2^20 + 4099 values:
- the sample std within 7 of its standard errors (`tests.helpers.assert_std`),
  sqrt((k - 1) / (4n)) for kurtosis k: 0.48% for the normal (1/sqrt(2n) =
  0.07% each), 0.40% truncated, 0.31% uniform, all under the 0.5% used before;
- the sample mean within 5 standard errors std/sqrt(n) (`assert_mean`);
- KS statistics are compared with the 1e-4 critical value,
  sqrt(-ln(1e-4 / 2) / 2) / sqrt(n) = 2.23 / sqrt(n).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

import keras_weightinit as kwi
from tests.helpers import assert_mean, assert_std, to_numpy

CHUNK = 2**20
SHAPE = (1025, 1027)  # 2^20 + 4099 values: one full chunk and a partial one
N = SHAPE[0] * SHAPE[1]
FAN_IN = SHAPE[0]
KS_CRITICAL = math.sqrt(-math.log(1e-4 / 2) / 2) / math.sqrt(N)
TRUNC_C = 0.87962566103423978  # std of N(0, 1) truncated to (-2, 2)

# (distribution, scipy reference for the values divided by the target std)
REFERENCES = {
    "normal": stats.norm(),
    "uniform": stats.uniform(-math.sqrt(3.0), 2 * math.sqrt(3.0)),
    "truncated_normal": stats.truncnorm(-2.0, 2.0, scale=1.0 / TRUNC_C),
}


@pytest.mark.parametrize("distribution", sorted(REFERENCES))
def test_large_draw_has_the_formula_variance_and_distribution(distribution):
    init = kwi.VarianceScalingCustom(2.0, "fan_in", distribution, seed=11)
    values = to_numpy(init(SHAPE)).astype(np.float64)
    target = math.sqrt(2.0 / FAN_IN)  # He: variance 2 / fan_in
    assert values.shape == SHAPE
    assert_std(values, target, 7, distribution=distribution)
    assert_mean(values, 0.0, target, 5)
    ks = stats.kstest(values.ravel() / target, REFERENCES[distribution].cdf).statistic
    assert ks < KS_CRITICAL, f"KS statistic {ks:.2e} vs critical {KS_CRITICAL:.2e}"
    if distribution == "truncated_normal":
        # Cut at 2 of the pre-truncation sigma, std / c; float32 rounding of
        # the bound is below 1e-6 relative.
        assert np.abs(values).max() <= 2 * target / TRUNC_C * (1 + 1e-6)
    if distribution == "uniform":
        assert np.abs(values).max() <= math.sqrt(3.0) * target * (1 + 1e-6)


@pytest.mark.parametrize("distribution", sorted(REFERENCES))
def test_chunks_are_not_repeated(distribution):
    # A chunked fill must give each chunk its own stream: the second chunk's
    # values must not be the first chunk's again (nor be correlated with it).
    flat = to_numpy(kwi.VarianceScalingCustom(1.0, "fan_in", distribution, seed=3)(SHAPE)).ravel()
    head, tail = flat[:4099].astype(np.float64), flat[CHUNK:].astype(np.float64)
    assert not np.array_equal(head, tail)
    # correlation of independent samples: standard error 1/sqrt(4099) = 0.016
    assert abs(np.corrcoef(head, tail)[0, 1]) < 5 / math.sqrt(4099)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("distribution", sorted(REFERENCES))
def test_large_draw_keeps_dtype_and_is_finite(distribution, dtype):
    values = kwi.VarianceScalingCustom(1.0, "fan_in", distribution, seed=5)(SHAPE, dtype=dtype)
    assert keras.backend.standardize_dtype(values.dtype) == dtype
    assert tuple(values.shape) == SHAPE
    assert np.isfinite(to_numpy(values)).all()


def test_large_draw_seeding():
    a = to_numpy(kwi.HeNormalCustom(seed=7)(SHAPE))
    b = to_numpy(kwi.HeNormalCustom(seed=7)(SHAPE))
    c = to_numpy(kwi.HeNormalCustom(seed=8)(SHAPE))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # A SeedGenerator advances between calls, as with Keras's initializers.
    init = kwi.HeNormalCustom(seed=keras.random.SeedGenerator(7))
    assert not np.array_equal(to_numpy(init(SHAPE)), to_numpy(init(SHAPE)))


# Where the lean path draws the very stream keras.random draws for a seed:
# TensorFlow runs the same stateless ops in a graph; PyTorch's in-place
# normal_ uses a generator seeded as Keras seeds it.
SAME_STREAM = {
    "tensorflow": ("normal", "truncated_normal", "uniform"),
    "torch": ("normal",),
    "jax": (),
}


@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_values_equal_keras_random_where_the_stream_is_the_same(distribution):
    if distribution not in SAME_STREAM[keras.backend.backend()]:
        pytest.skip(f"{distribution} on {keras.backend.backend()} draws another stream")
    from keras_weightinit._draw import _draw_keras, draw

    for make_seed in (lambda: 1234, lambda: keras.random.SeedGenerator(1234)):
        ours = to_numpy(draw(distribution, SHAPE, "float32", 0.05, make_seed()))
        theirs = to_numpy(_draw_keras(distribution, SHAPE, "float32", 0.05, make_seed()))
        np.testing.assert_array_equal(ours, theirs)


def test_torch_meta_device_gives_an_empty_tensor():
    if keras.backend.backend() != "torch":
        pytest.skip("PyTorch only: the meta device is PyTorch's")
    with keras.device("meta"):
        values = kwi.HeNormalCustom(seed=1)((3, 4))
    assert values.device.type == "meta"
    assert tuple(values.shape) == (3, 4)
