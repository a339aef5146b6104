"""Build, train, save and reload a Keras model that uses the string names.

Run: python examples/quickstart.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_weightinit  # noqa: F401  (registers "he_uniform_custom" & co.)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for model.keras")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(0)
    digits = load_digits()  # bundled with scikit-learn: no download
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    model = keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(64, activation="relu", kernel_initializer="he_uniform_custom")
            for _ in range(8)
        ]
        + [keras.layers.Dense(10, activation="softmax", kernel_initializer="glorot_uniform_custom")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1500], y[:1500], epochs=5, batch_size=64, verbose=2)
    _, acc = model.evaluate(x[1500:], y[1500:], verbose=0)
    print(f"test accuracy after 5 epochs: {acc:.3f}")

    path = out / "model.keras"
    model.save(path)
    np.save(out / "sample.npy", x[1500:1510])
    np.save(out / "expected.npy", model.predict(x[1500:1510], verbose=0))
    print(f"saved {path}; reloading it in a fresh Python process ...")
    child = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_weightinit  # import first, then load
        model = keras.saving.load_model({str(path)!r})
        pred = model.predict(np.load({str(out / "sample.npy")!r}), verbose=0)
        assert np.array_equal(pred, np.load({str(out / "expected.npy")!r}))
        print("reloaded:", type(model.layers[0].kernel_initializer).__name__,
              "- predictions identical")
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, env=dict(os.environ))


if __name__ == "__main__":
    main()
