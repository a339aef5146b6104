"""Statistics of the six initializers on Dense and Conv kernel shapes.

Expected values come from the technique's table, written out here with fans
computed by hand for each shape: nothing is read back from the code under test.

Tolerances, with n ≈ 30,000 draws per kernel (`tests.helpers.assert_std`):
- the sample std within 6 of its standard errors, sqrt((k - 1) / (4n)) for
  kurtosis k: 2.45% for a Gaussian, 2.0% truncated, 1.55% uniform (no flakes
  at fixed seeds); that still tells He from LeCun (a factor √2 = 41%) and
  fan_in from fan_avg on the asymmetric shapes below (at least 20% apart);
- the sample mean within 5 standard errors σ/sqrt(n) (`assert_mean`);
- KS tests use PyTorch's p-value floor of 1e-4 at a fixed seed.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

import keras_weightinit as kwi
from tests.helpers import PRESET_CLASSES, PRESET_NAMES, assert_mean, assert_std, to_numpy

# (name, kernel shape, fan_in, fan_out): fans written out by hand, Keras layout.
SHAPES = [
    ("dense", (250, 120), 250, 120),
    ("conv1d", (5, 40, 150), 5 * 40, 5 * 150),
    ("conv2d", (3, 3, 32, 104), 3 * 3 * 32, 3 * 3 * 104),
    ("conv3d", (3, 3, 3, 16, 70), 27 * 16, 27 * 70),
]

# Variance as a function of the fans, per family, from the technique's table.
VARIANCE = {
    "glorot": lambda i, o: 2 / (i + o),
    "lecun": lambda i, o: 1 / i,
    "he": lambda i, o: 2 / i,
}


def _family(name):
    """The (variance rule, distribution) a name promises: he_uniform_custom -> He, uniform."""
    family, distribution, _ = name.split("_")
    return VARIANCE[family], distribution


# (class, string name, variance as a function of the fans, distribution)
FAMILIES = [
    (cls, name, *_family(name)) for cls, name in zip(PRESET_CLASSES, PRESET_NAMES, strict=True)
]

# Standard errors of the sample std allowed (see above): at n ≈ 30k and the
# Gaussian's SE that is at most 2.45%, under the 2.5% this file used before.
STD_N_SE = 6


def _draw(cls, shape, seed=1234, dtype="float32"):
    return to_numpy(cls(seed=seed)(shape, dtype=dtype))


@pytest.mark.parametrize("cls, name, variance, dist", FAMILIES, ids=[f[1] for f in FAMILIES])
@pytest.mark.parametrize("layer, shape, fan_in, fan_out", SHAPES, ids=[s[0] for s in SHAPES])
def test_mean_std_and_distribution(cls, name, variance, dist, layer, shape, fan_in, fan_out):
    w = _draw(cls, shape).ravel()
    sigma = math.sqrt(variance(fan_in, fan_out))

    assert w.shape == (math.prod(shape),)
    assert_mean(w, 0.0, sigma, 5)
    assert_std(w, sigma, STD_N_SE, distribution=dist)

    if dist == "uniform":
        r = math.sqrt(3 * variance(fan_in, fan_out))
        # float32 rounding of the bound itself is the only slack allowed.
        assert np.abs(w).max() <= r * (1 + 1e-6)
        # With 30k draws, missing the outer 1% of the range has probability
        # 0.99**30000 ≈ 1e-131: the support really reaches ±r.
        assert np.abs(w).max() > 0.99 * r
        p = stats.kstest(w, stats.uniform(loc=-r, scale=2 * r).cdf).pvalue
    else:
        p = stats.kstest(w, stats.norm(loc=0, scale=sigma).cdf).pvalue
    assert p > 1e-4


@pytest.mark.parametrize(
    "cls", [f[0] for f in FAMILIES if f[3] == "normal"], ids=lambda c: c.__name__
)
def test_normal_is_untruncated(cls):
    # An ordinary Gaussian puts 2·(1 - Φ(2)) = 4.55% of its draws beyond 2σ;
    # Keras's truncated built-ins put none there.
    shape = (250, 120)
    w = _draw(cls, shape, seed=7).ravel()
    sigma = cls().stddev(shape)
    expected_tail = 2 * stats.norm.sf(2.0)
    tail = np.mean(np.abs(w) > 2 * sigma)
    # Binomial standard error sqrt(p(1-p)/n) = 0.12%: 5 of them.
    assert tail == pytest.approx(
        expected_tail, abs=5 * math.sqrt(expected_tail * (1 - expected_tail) / w.size)
    )
    # Beyond 3σ: 0.27% of 30k ≈ 81 draws expected; none would mean truncation.
    assert np.sum(np.abs(w) > 3 * sigma) > 20


def test_truncated_option_keeps_the_variance():
    # Truncated at ±2 of the sampling sigma, which is widened by 1/0.8796 so
    # that the std of the result is still sqrt(scale / fan_in).
    shape = (250, 120)
    init = kwi.VarianceScalingCustom(2.0, "fan_in", "truncated_normal", seed=3)
    w = to_numpy(init(shape)).ravel()
    sigma = math.sqrt(2.0 / 250)
    c = stats.truncnorm(-2, 2).std()  # 0.8796..., computed here independently
    assert_std(w, sigma, STD_N_SE, distribution="truncated_normal")
    assert np.abs(w).max() <= 2 * sigma / c * (1 + 1e-6)
    p = stats.kstest(w, stats.truncnorm(-2, 2, scale=sigma / c).cdf).pvalue
    assert p > 1e-4


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_general_variance_scaling(mode, distribution):
    shape = (3, 3, 32, 104)
    fan_in, fan_out = 288, 936
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    scale = 1.7
    w = to_numpy(kwi.VarianceScalingCustom(scale, mode, distribution, seed=11)(shape))
    assert_std(w, math.sqrt(scale / n), STD_N_SE, distribution=distribution)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize(
    "cls", [kwi.HeNormalCustom, kwi.GlorotUniformCustom], ids=lambda c: c.__name__
)
def test_float_dtypes(cls, dtype):
    shape = (250, 120)
    if dtype == "float64" and not _float64_available():
        with pytest.raises(ValueError, match="dtype=float64"):
            cls(seed=5)(shape, dtype=dtype)
        return
    x = cls(seed=5)(shape, dtype=dtype)
    assert keras.backend.standardize_dtype(x.dtype) == dtype
    w = to_numpy(x)
    assert np.all(np.isfinite(w))
    # bfloat16 keeps 8 significant bits: each value is off by at most 2^-9
    # relative, which moves the std by far less than the sampling tolerance.
    if cls is kwi.HeNormalCustom:
        assert_std(w, math.sqrt(2 / 250), STD_N_SE)
    else:
        assert_std(w, math.sqrt(2 / 370), STD_N_SE, distribution="uniform")


def _float64_available():
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def test_default_dtype_is_floatx():
    x = kwi.HeNormalCustom(seed=0)((4, 3))
    assert keras.backend.standardize_dtype(x.dtype) == keras.config.floatx()


@pytest.mark.parametrize(
    "shape, fans",
    [((), (1, 1)), ((7,), (7, 7)), ((0, 5), (0, 5)), ((3, 0, 4), (0, 12))],
)
def test_degenerate_shapes(shape, fans):
    assert kwi.compute_fans(shape) == fans
    x = kwi.HeUniformCustom(seed=0)(shape)
    assert tuple(x.shape) == shape
    assert np.all(np.isfinite(to_numpy(x)))


def test_explicit_axes_fans():
    # EinsumDense "abc,cde->abde" kernel (c, d, e): inputs on axis 0.
    assert kwi.compute_fans((64, 8, 16), [0], [1, 2]) == (64, 128)
    # Conv2DTranspose kernel (kh, kw, out, in) with spatial axes on both.
    assert kwi.compute_fans((3, 3, 8, 64), [0, 1, 3], [0, 1, 2]) == (576, 72)
    # Depthwise (kh, kw, in, multiplier): the channel axis counts for neither.
    assert kwi.compute_fans((3, 3, 64, 2), [0, 1], [0, 1, 3]) == (9, 18)
    assert kwi.compute_fans((64, 8, 16), [-3], [-2, -1]) == (64, 128)


def _kernel(layer, input_shape):
    layer.build(input_shape)
    return layer.kernel


def test_in_dense_and_conv_layers():
    dense = keras.layers.Dense(200, kernel_initializer="he_normal_custom")
    assert_std(_kernel(dense, (None, 300)), math.sqrt(2 / 300), STD_N_SE)
    conv = keras.layers.Conv2D(104, 3, kernel_initializer="glorot_uniform_custom")
    kernel = _kernel(conv, (None, 16, 16, 32))
    assert_std(kernel, math.sqrt(2 / (288 + 936)), STD_N_SE, distribution="uniform")


def test_in_einsum_dense():
    # Keras rebuilds variance-scaling initializers with the einsum's axes:
    # kernel (64, 8, 64) with fan_in 64 and fan_out 8·64 = 512.
    layer = keras.layers.EinsumDense(
        "abc,cde->abde",
        output_shape=(None, 8, 64),
        kernel_initializer="glorot_normal_custom",
    )
    layer.build((None, 10, 64))
    assert tuple(layer.kernel.shape) == (64, 8, 64)
    assert_std(layer.kernel, math.sqrt(2 / (64 + 512)), STD_N_SE)


def test_in_multi_head_attention():
    # Query/key/value kernels (256, 8, 32): fan_in 256, fan_out 256.
    # Output kernel (8, 32, 256): fan_in 256, fan_out 256. He: var 2/256.
    mha = keras.layers.MultiHeadAttention(8, 32, kernel_initializer="he_normal_custom")
    x = np.zeros((1, 4, 256), dtype="float32")
    mha(x, x)
    for dense in (
        mha._query_dense,
        mha._key_dense,
        mha._value_dense,
        mha._output_dense,
    ):
        assert_std(dense.kernel, math.sqrt(2 / 256), STD_N_SE, what=dense.name)
    q, k, v = (to_numpy(d.kernel) for d in (mha._query_dense, mha._key_dense, mha._value_dense))
    assert not np.array_equal(q, k) and not np.array_equal(k, v)
