"""Distributed training: TensorFlow's MirroredStrategy and JAX's distribution API.

Each test runs in a fresh interpreter, because the devices (two logical CPUs
for TensorFlow, four host devices for JAX) must be configured before the
backend starts. The child prints one `RESULT {...}` JSON line of raw
measurements; every expected value is computed here, from the formulas.

Tolerances: each std check allows 5 standard errors of the sample std for
its n and distribution (`tests.helpers.assert_std`), at most 5/sqrt(2n), which
is never looser than the max(2%, 5/sqrt(2n)) used before and is tight enough
to tell the global fans from a shard's.
"""

from __future__ import annotations

import json
import math

import keras
import pytest

import keras_weightinit as kwi
from tests.helpers import assert_std, check_ok, run_python

# std of a standard normal truncated to (-2, 2)
TRUNCATED_NORMAL_STD = 0.87962566103423978


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("RESULT ") :])


def _assert_std(measured: float, expected: float, n: int, what: str, distribution="normal"):
    # The child reports the measured std only: 5 standard errors for its n.
    assert_std(measured, expected, 5, n=n, distribution=distribution, what=what)


# -- TensorFlow: MirroredStrategy over two logical CPU devices ---------------

TF_CHILD = """
import json

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras
import numpy as np

import keras_weightinit  # noqa: F401

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
strategy = tf.distribute.MirroredStrategy(devices)
out = {"replicas": strategy.num_replicas_in_sync}

with strategy.scope():
    model = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(
                512, activation="relu", kernel_initializer="he_normal_custom", name="he"
            ),
            keras.layers.Dense(
                256, activation="tanh", kernel_initializer="glorot_uniform_custom", name="glorot"
            ),
            keras.layers.Dense(8, kernel_initializer="lecun_normal_custom", name="lecun"),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")


def replicas():
    # Every variable's per-device copies, read one by one.
    result = {}
    for layer in model.layers:
        for kind in ("kernel", "bias"):
            local = strategy.experimental_local_results(getattr(layer, kind).value)
            result[f"{layer.name}/{kind}"] = (
                sorted({t.device for t in local}),
                [np.asarray(t) for t in local],
            )
    return result


def summary(reps):
    return {
        name: {
            "copies": len(values),
            "devices": len(devices_),
            "identical": all(np.array_equal(values[0], v) for v in values[1:]),
        }
        for name, (devices_, values) in reps.items()
    }


before = replicas()
out["before"] = summary(before)
out["std"] = {n: float(np.std(v[0])) for n, (_, v) in before.items() if n.endswith("kernel")}
out["absmax"] = {
    n: float(np.max(np.abs(v[0]))) for n, (_, v) in before.items() if n.endswith("kernel")
}
x = np.random.default_rng(0).normal(size=(16, 256)).astype("float32")
y = np.random.default_rng(1).normal(size=(16, 8)).astype("float32")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
after = replicas()
out["after"] = summary(after)
out["trained"] = not np.array_equal(before["he/kernel"][1][0], after["he/kernel"][1][0])
model.save("mirrored.keras")
np.savez("mirrored_weights.npz", *[np.asarray(w) for w in model.get_weights()])
print("RESULT " + json.dumps(out))
"""

TF_RELOAD = """
import json

import keras
import numpy as np

import keras_weightinit  # noqa: F401

model = keras.saving.load_model("mirrored.keras")
saved = np.load("mirrored_weights.npz")
weights = model.get_weights()
inits = sorted({type(layer.kernel_initializer).__name__ for layer in model.layers})
print("RESULT " + json.dumps({
    "equal": len(weights) == len(saved.files)
    and all(np.array_equal(w, saved[f"arr_{i}"]) for i, w in enumerate(weights)),
    "initializers": inits,
}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute.MirroredStrategy needs the TensorFlow backend",
)
def test_mirrored_strategy_replicas_identical_and_variance_right(tmp_path):
    out = _result(check_ok(run_python(TF_CHILD, tmp_path)))
    assert out["replicas"] == 2
    for stage in ("before", "after"):
        assert set(out[stage]) == {
            f"{name}/{kind}" for name in ("he", "glorot", "lecun") for kind in ("kernel", "bias")
        }
        for name, rep in out[stage].items():
            # Two copies on two distinct devices, bit for bit the same.
            assert rep == {"copies": 2, "devices": 2, "identical": True}, (stage, name)
    assert out["trained"], "one SGD step should have moved the kernel"

    # He normal (256, 512): std sqrt(2/256).
    _assert_std(out["std"]["he/kernel"], math.sqrt(2 / 256), 256 * 512, "he")
    # Glorot uniform (512, 256): std sqrt(2/768), bound sqrt(6/768).
    _assert_std(out["std"]["glorot/kernel"], math.sqrt(2 / 768), 512 * 256, "glorot", "uniform")
    bound = math.sqrt(6 / 768)
    # 131k uniform draws: the largest lies within 0.1% of the bound.
    assert 0.99 * bound < out["absmax"]["glorot/kernel"] <= bound * (1 + 1e-6)
    # LeCun normal (256, 8): std sqrt(1/256).
    _assert_std(out["std"]["lecun/kernel"], math.sqrt(1 / 256), 256 * 8, "lecun")

    reload = _result(check_ok(run_python(TF_RELOAD, tmp_path)))
    assert reload["equal"], "weights differ after reloading the mirrored model"
    assert reload["initializers"] == [
        "GlorotUniformCustom",
        "HeNormalCustom",
        "LecunNormalCustom",
    ]


# -- JAX: DataParallel and ModelParallel over four host devices ---------------

JAX_CHILD = """
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ.pop("JAX_ENABLE_X64", None)

import inspect
import json

import jax
import keras
import numpy as np

import keras_weightinit as kwi

out = {"devices": jax.device_count(), "backend": keras.backend.backend()}
out["takes_layout"] = "layout" in inspect.signature(kwi.HeNormalCustom()).parameters
devices = keras.distribution.list_devices()


def spec_of(value):
    spec = list(value.sharding.spec)
    spec += [None] * (value.ndim - len(spec))
    return [None if axis is None else str(axis) for axis in spec]


def stats(variable):
    value = variable.value
    shards = value.addressable_shards
    full = np.asarray(value, dtype=np.float64)
    return {
        "shape": list(value.shape),
        "spec": spec_of(value),
        "replicated": bool(value.sharding.is_fully_replicated),
        "devices": len({s.device for s in shards}),
        "shard_shapes": sorted({tuple(s.data.shape) for s in shards}),
        "std": float(np.std(full)),
        "shard_stds": [float(np.std(np.asarray(s.data, dtype=np.float64))) for s in shards],
        "absmax": float(np.max(np.abs(full))),
    }


x = np.random.default_rng(0).normal(size=(32, 256)).astype("float32")
y = np.random.default_rng(1).normal(size=(32, 8)).astype("float32")

# DataParallel: every variable replicated on the four devices.
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
dp = keras.Sequential(
    [
        keras.Input((256,)),
        keras.layers.Dense(512, activation="relu", kernel_initializer="he_normal_custom"),
        keras.layers.Dense(8, kernel_initializer="glorot_uniform_custom"),
    ]
)
out["dp"] = [stats(dp.layers[0].kernel), stats(dp.layers[1].kernel)]
dp.compile(optimizer="sgd", loss="mse")
dp.fit(x, y, batch_size=32, epochs=1, verbose=0)
out["dp_trained_finite"] = all(bool(np.isfinite(w).all()) for w in dp.get_weights())

# ModelParallel: kernels split by a LayoutMap over a (batch 2, model 2) mesh.
mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], devices=devices)
layout_map = keras.distribution.LayoutMap(mesh)
layout_map["he/kernel"] = ("model", None)
layout_map["glorot/kernel"] = (None, "model")
layout_map["tn/kernel"] = ("model", None)
layout_map["u[12]/kernel"] = (None, "model")
layout_map["big[12]/kernel"] = (None, "model")
layout_map["s[12]/kernel"] = ("model", None)
mp_dist = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
keras.distribution.set_distribution(mp_dist)

inputs = keras.Input((256,))
h = keras.layers.Dense(
    512, activation="relu", kernel_initializer="he_normal_custom", name="he"
)(inputs)
h = keras.layers.Dense(256, kernel_initializer="glorot_normal_custom", name="glorot")(h)
h = keras.layers.Dense(
    64,
    kernel_initializer=kwi.VarianceScalingCustom(2.0, "fan_in", "truncated_normal", seed=5),
    name="tn",
)(h)
shared = kwi.LecunUniformCustom(seed=11)
a = keras.layers.Dense(64, kernel_initializer=shared, name="u1")(h)
b = keras.layers.Dense(64, kernel_initializer=shared, name="u2")(h)
# A SeedGenerator made under the distribution: its state lives on the mesh.
generator_init = kwi.HeUniformCustom(seed=keras.random.SeedGenerator(7))
c = keras.layers.Dense(64, kernel_initializer=generator_init, name="s1")(a)
d = keras.layers.Dense(64, kernel_initializer=generator_init, name="s2")(b)
outputs = keras.layers.Dense(8, name="head")(keras.layers.Concatenate()([c, d]))
mp = keras.Model(inputs, outputs)
layers = {layer.name: layer for layer in mp.layers}
out["mp"] = {name: stats(layers[name].kernel) for name in ("he", "glorot", "tn", "u1", "u2")}
u1 = np.asarray(layers["u1"].kernel.value)
u2 = np.asarray(layers["u2"].kernel.value)
out["shared_instance_distinct"] = not np.array_equal(u1, u2)

# A fresh instance with the same int seed, called twice with no distribution,
# must give u1 then u2 exactly: sharding changes where values live, not them.
keras.distribution.set_distribution(None)
ref = kwi.LecunUniformCustom(seed=11)
r1, r2 = np.asarray(ref((64, 64))), np.asarray(ref((64, 64)))
out["sharded_equals_unsharded"] = bool(np.array_equal(r1, u1) and np.array_equal(r2, u2))
# The same with a SeedGenerator seed: it advances once per call, as in Keras.
s1 = np.asarray(layers["s1"].kernel.value)
s2 = np.asarray(layers["s2"].kernel.value)
ref = kwi.HeUniformCustom(seed=keras.random.SeedGenerator(7))
r1, r2 = np.asarray(ref((64, 64))), np.asarray(ref((64, 64)))
out["generator_sharded_equals_unsharded"] = bool(
    np.array_equal(r1, s1) and np.array_equal(r2, s2) and not np.array_equal(s1, s2)
)
keras.distribution.set_distribution(mp_dist)

mp.compile(optimizer="sgd", loss="mse")
mp.fit(x, y, batch_size=32, epochs=1, verbose=0)
out["mp_spec_after_fit"] = spec_of(layers["he"].kernel.value)
out["mp_trained_finite"] = all(bool(np.isfinite(w).all()) for w in mp.get_weights())
mp.save("model_parallel.keras")
saved = [np.asarray(w) for w in mp.get_weights()]

# Called directly with a TensorLayout, a SeedGenerator seed advances per call.
gen_init = kwi.HeUniformCustom(seed=keras.random.SeedGenerator(3))
gen_layout = keras.distribution.TensorLayout((None, "model"), mesh)
g1 = gen_init((64, 32), layout=gen_layout)
g2 = gen_init((64, 32), layout=gen_layout)
out["direct_spec"] = spec_of(g1)
out["direct_distinct"] = not np.array_equal(np.asarray(g1), np.asarray(g2))

# Two 4096x4096 kernels (64 MiB each, 256 MiB over the mesh) from one
# SeedGenerator-seeded instance. Past 250 MiB Keras traces an initializer
# that takes no `layout` under jax.jit, where advancing the generator
# raises UnexpectedTracerError.
big = kwi.HeNormalCustom(seed=keras.random.SeedGenerator(21))
bi = keras.Input((4096,))
bm = keras.Model(
    bi,
    [
        keras.layers.Dense(4096, kernel_initializer=big, use_bias=False, name="big1")(bi),
        keras.layers.Dense(4096, kernel_initializer=big, use_bias=False, name="big2")(bi),
    ],
)
k1, k2 = (layer.kernel.value for layer in bm.layers[1:])
out["big_spec"] = spec_of(k1)
out["big_shard_shapes"] = sorted({tuple(s.data.shape) for s in k1.addressable_shards})
out["big_distinct"] = not bool(jax.numpy.array_equal(k1, k2))
out["big_std"] = float(jax.numpy.std(k1))
del bm, k1, k2

keras.distribution.set_distribution(None)
reloaded = keras.saving.load_model("model_parallel.keras")
out["reload_equal"] = all(
    np.array_equal(np.asarray(w), s) for w, s in zip(reloaded.get_weights(), saved)
)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the child always runs JAX; it runs once, in the JAX pass of the suite",
)
def test_jax_data_and_model_parallel_use_global_fans(tmp_path):
    out = _result(check_ok(run_python(JAX_CHILD, tmp_path, timeout=600)))
    assert out["devices"] == 4 and out["backend"] == "jax"
    assert out["takes_layout"]

    # DataParallel: replicated on all four devices, std of the full shape.
    he, glorot = out["dp"]
    for stat in (he, glorot):
        assert stat["replicated"] and stat["devices"] == 4
        assert stat["shard_shapes"] == [stat["shape"]]
    _assert_std(he["std"], math.sqrt(2 / 256), 256 * 512, "dp he")
    _assert_std(glorot["std"], math.sqrt(2 / (512 + 8)), 512 * 8, "dp glorot", "uniform")
    assert glorot["absmax"] <= math.sqrt(6 / (512 + 8)) * (1 + 1e-6)
    assert out["dp_trained_finite"]

    mp = out["mp"]
    # He (256, 512) split on its input axis: each shard is (128, 512). Its
    # std must be sqrt(2/256) (global fan_in), not sqrt(2/128) (a shard's),
    # in the whole tensor and in each shard.
    assert mp["he"]["spec"] == ["model", None] and not mp["he"]["replicated"]
    assert mp["he"]["devices"] == 4 and mp["he"]["shard_shapes"] == [[128, 512]]
    _assert_std(mp["he"]["std"], math.sqrt(2 / 256), 256 * 512, "mp he")
    for s in mp["he"]["shard_stds"]:
        _assert_std(s, math.sqrt(2 / 256), 128 * 512, "mp he shard")
    # Glorot (512, 256) split on its output axis: shards (512, 128); global
    # std sqrt(2/768), where a shard's fans would give sqrt(2/640) (9.5% more).
    assert mp["glorot"]["spec"] == [None, "model"]
    assert mp["glorot"]["shard_shapes"] == [[512, 128]]
    _assert_std(mp["glorot"]["std"], math.sqrt(2 / 768), 512 * 256, "mp glorot")
    for s in mp["glorot"]["shard_stds"]:
        _assert_std(s, math.sqrt(2 / 768), 512 * 128, "mp glorot shard")
    # Truncated normal (256, 64), split on the input axis: std sqrt(2/256),
    # values within 2 sigma of the untruncated draw.
    assert mp["tn"]["shard_shapes"] == [[128, 64]]
    std_tn = math.sqrt(2 / 256)
    _assert_std(mp["tn"]["std"], std_tn, 256 * 64, "mp truncated", "truncated_normal")
    assert mp["tn"]["absmax"] <= 2 * std_tn / TRUNCATED_NORMAL_STD * (1 + 1e-6)
    # LeCun uniform (64, 64), one instance shared by two layers.
    for name in ("u1", "u2"):
        assert mp[name]["shard_shapes"] == [[64, 32]]
        _assert_std(mp[name]["std"], math.sqrt(1 / 64), 64 * 64, name, "uniform")
        assert mp[name]["absmax"] <= math.sqrt(3 / 64) * (1 + 1e-6)
    assert out["shared_instance_distinct"]
    assert out["sharded_equals_unsharded"]
    assert out["generator_sharded_equals_unsharded"]
    assert out["mp_spec_after_fit"] == ["model", None]
    assert out["mp_trained_finite"]
    assert out["reload_equal"]

    assert out["direct_spec"] == [None, "model"] and out["direct_distinct"]
    assert out["big_spec"] == [None, "model"]
    assert out["big_shard_shapes"] == [[4096, 2048]]
    assert out["big_distinct"]
    # 16.8M draws: relative standard error 0.02%, so 5 of them are 0.09%.
    _assert_std(out["big_std"], math.sqrt(2 / 4096), 4096 * 4096, "big")


def test_layout_argument_is_checked():
    # In-process, on every backend: `layout` is JAX's; anything else is refused
    # with the argument named, before anything is drawn.
    init = kwi.HeNormalCustom(seed=0)
    if keras.backend.backend() == "jax":
        with pytest.raises(TypeError, match="Argument `layout`"):
            init((4, 4), layout="model")
    else:
        with pytest.raises(ValueError, match="only supported on the JAX backend"):
            init((4, 4), layout="model")
