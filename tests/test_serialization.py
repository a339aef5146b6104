"""Configs, string names, saved models in every format, and no shadowing."""

from __future__ import annotations

import inspect
import json
import pickle

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit.registry import ALIASES, PACKAGE
from tests.helpers import PRESET_CLASSES, PRESET_NAMES, assert_std, check_ok, run_python, to_numpy

PRESETS = dict(zip(PRESET_NAMES, PRESET_CLASSES, strict=True))

INSTANCES = [
    kwi.HeNormalCustom(),
    kwi.HeUniformCustom(seed=3),
    kwi.GlorotNormalCustom(seed=2**64 - 1),
    kwi.LecunUniformCustom(input_axes=[0], output_axes=[1, 2]),
    kwi.VarianceScalingCustom(1.7, "fan_out", "truncated_normal", seed=2),
    kwi.GlorotUniformCustom(seed=keras.random.SeedGenerator(5)),
]


@pytest.mark.parametrize("name, cls", PRESETS.items())
def test_string_names_resolve(name, cls):
    assert type(keras.initializers.get(name)) is cls
    assert type(kwi.get(name)) is cls
    layer = keras.layers.Dense(3, kernel_initializer=name, bias_initializer=name)
    assert type(layer.kernel_initializer) is cls
    assert type(layer.bias_initializer) is cls


@pytest.mark.parametrize("cls", PRESETS.values(), ids=lambda c: c.__name__)
def test_registered_under_the_package(cls):
    assert keras.saving.get_registered_name(cls) == f"{PACKAGE}>{cls.__name__}"
    assert keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}") is cls


def test_nothing_shadows_a_keras_builtin():
    from keras.src.initializers import ALL_OBJECTS_DICT

    ours = set(ALIASES) | {cls.__name__ for cls in ALIASES.values()}
    assert not ours & set(ALL_OBJECTS_DICT)
    # Keras's own names still resolve to Keras's own classes.
    for name in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal"):
        assert type(keras.initializers.get(name)) is ALL_OBJECTS_DICT[name]
        assert type(keras.initializers.get(name)).__module__.startswith("keras.")
    assert not set(keras.saving.get_custom_objects()) & set(ALL_OBJECTS_DICT)


@pytest.mark.parametrize("init", INSTANCES, ids=lambda i: type(i).__name__)
def test_config_round_trip(init):
    config = init.get_config()
    params = set(inspect.signature(type(init).__init__).parameters) - {"self"}
    assert set(config) == params
    json.dumps(config)  # JSON-serializable
    clone = type(init).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("init", INSTANCES, ids=lambda i: type(i).__name__)
def test_serialize_json_deserialize(init):
    blob = json.dumps(keras.initializers.serialize(init))
    restored = keras.initializers.deserialize(json.loads(blob))
    assert type(restored) is type(init)
    assert restored.get_config() == init.get_config()


def test_unseeded_stays_unseeded_and_int_seed_reproduces():
    assert kwi.HeNormalCustom().get_config()["seed"] is None
    original = kwi.HeNormalCustom(seed=3)
    clone = kwi.HeNormalCustom.from_config(original.get_config())
    np.testing.assert_array_equal(to_numpy(original((6, 4))), to_numpy(clone((6, 4))))


def test_pickle():
    init = kwi.HeUniformCustom(seed=4)
    restored = pickle.loads(pickle.dumps(init))
    assert type(restored) is kwi.HeUniformCustom
    assert restored.get_config() == init.get_config()
    np.testing.assert_array_equal(to_numpy(init((5, 5))), to_numpy(restored((5, 5))))


def _model():
    """Every string name across the layer types that take initializers."""
    inputs = keras.Input((6, 8))
    x = keras.layers.Conv1D(8, 3, padding="same", kernel_initializer="he_uniform_custom")(inputs)
    x = keras.layers.LSTM(
        8,
        return_sequences=True,
        kernel_initializer="glorot_uniform_custom",
        recurrent_initializer="lecun_normal_custom",
    )(x)
    x = keras.layers.EinsumDense(
        "abc,cd->abd", output_shape=(6, 8), kernel_initializer="glorot_normal_custom"
    )(x)
    x = keras.layers.MultiHeadAttention(2, 4, kernel_initializer="lecun_uniform_custom")(x, x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(
        4,
        kernel_initializer="he_normal_custom",
        bias_initializer="lecun_uniform_custom",
        name="head",
    )(x)
    tokens = keras.Input((5,), dtype="int32")
    e = keras.layers.Embedding(11, 4, embeddings_initializer="he_normal_custom", name="emb")(tokens)
    e = keras.layers.Flatten()(e)
    out = keras.layers.Concatenate()([x, e])
    return keras.Model([inputs, tokens], out)


def _initializer_configs(model):
    """{layer name: {argument: serialized initializer}} from the layer configs."""
    out = {}
    for layer in model.layers:
        config = layer.get_config()
        out[layer.name] = {k: v for k, v in config.items() if k.endswith("_initializer")}
    return out


CHILD_LOAD = """
import json, sys
import numpy as np
import keras
{import_line}
from keras_weightinit.registry import ALIASES  # noqa: F401  (with import only)

x = [np.load("x0.npy"), np.load("x1.npy")]
results = {{}}
for fmt in ("keras", "h5", "json"):
    if fmt == "json":
        with open("model.json") as f:
            model = keras.models.model_from_json(f.read())
        model.load_weights("model.weights.h5")
    else:
        model = keras.saving.load_model("model." + fmt, compile=False)
    np.save(f"pred_{{fmt}}.npy", np.asarray(model.predict(x, verbose=0)))
    configs, classes = {{}}, {{}}
    for layer in model.layers:
        cfg = layer.get_config()
        configs[layer.name] = {{k: v for k, v in cfg.items() if k.endswith("_initializer")}}
    for obj in (model.get_layer("head"), model.get_layer("emb")):
        init = getattr(obj, "kernel_initializer", None) or obj.embeddings_initializer
        classes[obj.name] = type(init).__module__ + "." + type(init).__name__
    results[fmt] = {{"configs": configs, "classes": classes}}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved")
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(4, 6, 8)).astype("float32"), rng.integers(0, 11, size=(4, 5))]
    y = rng.normal(size=(4, 24)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)  # trained weights, not just initial ones
    np.save(path / "x0.npy", x[0])
    np.save(path / "x1.npy", x[1])
    model.save(path / "model.keras")
    model.save(path / "model.h5")
    (path / "model.json").write_text(model.to_json())
    model.save_weights(path / "model.weights.h5")
    return path, model, np.asarray(model.predict(x, verbose=0))


@pytest.mark.slow
def test_reload_in_fresh_process(saved_model):
    path, model, expected = saved_model
    stdout = check_ok(
        run_python(CHILD_LOAD.format(import_line="import keras_weightinit"), cwd=path)
    )
    results = json.loads(stdout.strip().splitlines()[-1])
    expected_configs = _initializer_configs(model)
    for fmt, result in results.items():
        # Bit-identical predictions from the reloaded weights.
        np.testing.assert_array_equal(np.load(path / f"pred_{fmt}.npy"), expected, err_msg=fmt)
        assert result["configs"] == json.loads(json.dumps(expected_configs)), fmt
        assert result["classes"] == {
            "head": "keras_weightinit.initializers.HeNormalCustom",
            "emb": "keras_weightinit.initializers.HeNormalCustom",
        }, fmt
    # The saved configs name our classes, not Keras's.
    dense_init = expected_configs["head"]["kernel_initializer"]
    assert dense_init["registered_name"] == "keras_weightinit>HeNormalCustom"


CHILD_NO_IMPORT = """
import keras
import numpy as np
for fmt in ("keras", "h5", "json"):
    try:
        if fmt == "json":
            with open("model.json") as f:
                keras.models.model_from_json(f.read())
        else:
            keras.saving.load_model("model." + fmt, compile=False)
    except Exception as e:
        print(fmt, "FAILED", type(e).__name__, str(e).replace("\\n", " "))
    else:
        print(fmt, "LOADED")
"""


@pytest.mark.slow
def test_reload_without_import_fails_loudly(saved_model):
    path, _, _ = saved_model
    stdout = check_ok(run_python(CHILD_NO_IMPORT, cwd=path))
    lines = {line.split(" ", 1)[0]: line for line in stdout.splitlines() if line}
    for fmt in ("keras", "h5", "json"):
        line = lines[fmt]
        # Never loads with some other initializer; the error names our class.
        assert "FAILED" in line, line
        # Keras 3.15 words it "Could not interpret initializer identifier"
        # (a layer's from_config) or "Could not locate class" (top level).
        assert "could not interpret" in line.lower() or "could not locate" in line.lower(), line
        assert "keras_weightinit>HeUniformCustom" in line, line


def test_clone_model_keeps_the_scheme():
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(300, kernel_initializer="he_normal_custom"),
            keras.layers.Dense(4, kernel_initializer=kwi.LecunUniformCustom(seed=1)),
        ]
    )
    clone = keras.models.clone_model(model)
    for a, b in zip(model.layers, clone.layers):
        assert type(b.kernel_initializer) is type(a.kernel_initializer)
        assert b.kernel_initializer.get_config() == a.kernel_initializer.get_config()
    # Freshly drawn with the right variance (He, fan_in 10; 3000 draws, whose
    # sample std has a relative SE of 1/sqrt(6000) = 1.3%: 3.8 SE is 4.9%,
    # under the 5% used before).
    kernel = to_numpy(clone.layers[0].kernel)
    assert_std(kernel, np.sqrt(2 / 10), 3.8)
    assert not np.array_equal(kernel, to_numpy(model.layers[0].kernel))


def test_pickle_a_whole_model():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="he_uniform_custom")]
    )
    restored = pickle.loads(pickle.dumps(model))
    x = np.ones((1, 3), dtype="float32")
    np.testing.assert_array_equal(
        np.asarray(model.predict(x, verbose=0)), np.asarray(restored.predict(x, verbose=0))
    )
    assert type(restored.layers[0].kernel_initializer) is kwi.HeUniformCustom
