"""Models saved by an earlier version of the package keep loading.

`tests/fixtures/*.keras` were written once by `tests/fixtures/make_saved_models.py`
on the TensorFlow backend and are committed, as files users saved with an
earlier release would be. Each is reloaded in a fresh process on the current
backend: the weights must come back bit for bit, and every initializer must
resolve to the same registered class with the same configuration (new config
keys are allowed; changed or lost ones are not). Renaming a module or a
registered class, or changing what a config key means, breaks these files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import check_ok, run_python

FIXTURES = Path(__file__).resolve().parent / "fixtures"

RELOAD = """
import json, sys
import numpy as np
import keras
import keras_weightinit  # registers the classes the files name
sys.path.insert(0, {fixtures!r})
from make_saved_models import manifest

model = keras.saving.load_model({path!r})
saved = np.load({weights!r})
assert len(saved.files) == len(model.weights), (len(saved.files), len(model.weights))
for i, w in enumerate(model.weights):
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), saved[f"w{{i}}"], err_msg=w.path)
inputs = [np.zeros((2,) + tuple(t.shape[1:]), dtype=t.dtype) for t in model.inputs]
out = keras.ops.convert_to_numpy(model(inputs if len(inputs) > 1 else inputs[0]))
assert np.isfinite(out).all()
# A clone rebuilds every layer from its config, so every initializer is resolved again.
clone = keras.models.clone_model(model)
assert len(clone.weights) == len(model.weights)
print(json.dumps({{"loaded": manifest(model), "cloned": manifest(clone)}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["presets", "initialized"])
def test_saved_model_reloads_with_the_same_initializers(name, tmp_path):
    expected = json.loads((FIXTURES / f"{name}_initializers.json").read_text())
    code = RELOAD.format(
        fixtures=str(FIXTURES),
        path=str(FIXTURES / f"{name}.keras"),
        weights=str(FIXTURES / f"{name}_weights.npz"),
    )
    got = json.loads(check_ok(run_python(code, cwd=tmp_path)).strip().splitlines()[-1])
    for which in ("loaded", "cloned"):
        actual = got[which]
        assert set(actual) == set(expected), which
        for attr, want in expected.items():
            have = actual[attr]
            assert have["class_name"] == want["class_name"], (which, attr)
            for key, value in want["config"].items():
                assert have["config"].get(key) == value, (which, attr, key)
