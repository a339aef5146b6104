"""The training loop shared by `keras-weightinit train` and benchmarks/training.py.

One place builds the MLPs, splits the digits, trains a run and summarizes a
set of runs, so the command line and the benchmark cannot drift apart.

- `load_digits_split(seed)`: scikit-learn's bundled digits (no download),
  standardized, the same split for every initializer at a given seed.
- `build_mlp(...)`: a plain or residual MLP whose kernels come from one
  recipe (`kernel(activation) -> initializer`).
- `Trainer`: one compiled model per architecture and optimizer. Each run
  copies a freshly initialized model's weights into it and resets the
  optimizer, so the backend compiles the train step once, not once per run.
- `summarize(runs)`: mean with a 95% t interval, median, range, worst run,
  share diverged, loss after the first epoch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

# A constant predictor gets about 10% of the digits; anything at or below
# this is "at chance". With 450 test digits the standard error of an
# accuracy near 10% is sqrt(0.1 * 0.9 / 450) = 1.4 points, so 15% is 3.5
# standard errors above chance: a run this low learned nothing.
CHANCE_CEILING = 0.15


def load_digits_split(seed: int = 0):
    """scikit-learn's bundled 8x8 digits: standardized train/test arrays.

    75% / 25%, stratified; the scaler is fitted on the training part only.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # pixels that are always blank
    x_train = ((x_train - mean) / std).astype("float32")
    x_test = ((x_test - mean) / std).astype("float32")
    return x_train, y_train.astype("int32"), x_test, y_test.astype("int32")


def build_mlp(
    kernel: Callable[[str | None], Any],
    activation: str,
    depth: int,
    width: int,
    *,
    residual: bool = False,
    output_kernel: Any = None,
    n_inputs: int = 64,
    n_classes: int = 10,
    name: str = "mlp",
) -> keras.Model:
    """An MLP whose kernels are `kernel(activation)` (`kernel(None)`: linear).

    Plain: `depth` hidden `Dense(width, activation)` layers, then
    `Dense(n_classes)` logits. Residual (functional, no normalization): a
    linear `Dense(width)` stem, then `depth // 2` blocks
    `x = Add()([x, Dense(width)(Dense(width, activation)(x))])`, then the
    logits; `depth` counts the Dense layers of the blocks. `output_kernel`
    overrides the logits' initializer. Seeds: the caller's (see
    `keras.utils.set_random_seed`).
    """
    inputs = keras.Input((n_inputs,), name="pixels")
    if residual:
        h = keras.layers.Dense(width, kernel_initializer=kernel(None), name="stem")(inputs)
        for i in range(depth // 2):
            branch = keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=kernel(activation),
                name=f"block_{i + 1}_in",
            )(h)
            branch = keras.layers.Dense(
                width, kernel_initializer=kernel(None), name=f"block_{i + 1}_out"
            )(branch)
            h = keras.layers.Add(name=f"block_{i + 1}_add")([h, branch])
    else:
        h = inputs
        for i in range(depth):
            h = keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=kernel(activation),
                name=f"hidden_{i + 1}",
            )(h)
    outputs = keras.layers.Dense(
        n_classes,
        kernel_initializer=kernel(None) if output_kernel is None else output_kernel,
        name="logits",
    )(h)
    return keras.Model(inputs, outputs, name=name)


def make_optimizer(name: str, learning_rate: float | None = None, momentum: float = 0.9):
    """`"sgd"`: SGD (default rate 0.01) with `momentum`; `"adam"`: Adam (default 0.001)."""
    if name == "sgd":
        return keras.optimizers.SGD(
            0.01 if learning_rate is None else learning_rate, momentum=momentum
        )
    if name == "adam":
        return keras.optimizers.Adam(0.001 if learning_rate is None else learning_rate)
    raise ValueError(f"Argument `optimizer` must be 'sgd' or 'adam'. Received: optimizer={name!r}")


@dataclasses.dataclass
class Run:
    """One training run: its test accuracy and its loss per epoch."""

    test_accuracy: float
    test_loss: float
    loss_curve: list[float]
    epochs: int

    @property
    def first_loss(self) -> float:
        """The mean training loss over the first epoch (Keras's epoch log)."""
        return self.loss_curve[0] if self.loss_curve else math.nan

    @property
    def final_loss(self) -> float:
        return self.loss_curve[-1] if self.loss_curve else math.nan

    @property
    def nan_loss(self) -> bool:
        return len(self.loss_curve) < self.epochs or not all(
            math.isfinite(v) for v in (*self.loss_curve, self.test_loss)
        )

    @property
    def diverged(self) -> bool:
        """NaN/inf loss, or test accuracy at chance (see `CHANCE_CEILING`)."""
        return self.nan_loss or self.test_accuracy <= CHANCE_CEILING

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "loss_curve": self.loss_curve,
            "first_epoch_loss": self.first_loss,
            "diverged": self.diverged,
            "nan_loss": self.nan_loss,
        }


class _LossPerEpoch(keras.callbacks.Callback):
    """Records the epoch's mean loss; stops a run whose loss is not finite.

    Only epoch-end hooks: a batch-end hook would make Keras fetch every
    step's logs from the device.
    """

    def __init__(self, on_epoch: Callable[[int, float], None] | None = None):
        super().__init__()
        self.losses: list[float] = []
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.losses.append(loss)
        if self.on_epoch is not None:
            self.on_epoch(epoch, loss)
        if not math.isfinite(loss):
            self.model.stop_training = True


class Trainer:
    """Trains many initializations of one architecture with one compiled step.

    `template` fixes the architecture (its weights are overwritten by every
    run). Each `run(model, ...)` copies `model`'s weights in, restores the
    optimizer's initial state (step count 0, zero moments), seeds the batch
    order and trains, so two runs with the same seed differ only in their
    starting weights.
    """

    def __init__(self, template: keras.Model, optimizer: keras.optimizers.Optimizer):
        self.model = template
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.model.compile(optimizer=optimizer, loss=self.loss)
        optimizer.build(self.model.trainable_variables)
        self._optimizer_start = [np.array(v.numpy()) for v in optimizer.variables]
        self._warm = False

    def run(
        self,
        model: keras.Model,
        data,
        *,
        epochs: int,
        batch_size: int,
        seed: int,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> Run:
        x_train, y_train, x_test, y_test = data
        if not self._warm:
            # Keras's first `fit` on a model trains differently from the
            # later ones (measured on JAX: the same seed and weights give a
            # different loss on the first call only); one throwaway epoch
            # makes every run a later one.
            self._warm = True
            self.model.fit(**_batches(x_train, y_train, batch_size, seed), epochs=1, verbose=0)
        self.model.set_weights(model.get_weights())
        for variable, value in zip(self.model.optimizer.variables, self._optimizer_start):
            variable.assign(value)
        keras.utils.set_random_seed(seed)  # the same batch order for every initializer
        losses = _LossPerEpoch(on_epoch)
        self.model.fit(
            **_batches(x_train, y_train, batch_size, seed),
            epochs=epochs,
            verbose=0,
            callbacks=[losses],
        )
        # One forward pass: `evaluate` would build its own pipeline per call.
        logits = self.model(x_test, training=False)
        test_loss = float(keras.ops.convert_to_numpy(self.loss(y_test, logits)))
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        return Run(float(np.mean(predicted == y_test)), test_loss, losses.losses, epochs)


def _batches(x, y, batch_size: int, seed: int) -> dict[str, Any]:
    """`fit`'s data arguments, shuffled each epoch in an order fixed by `seed`.

    TensorFlow gets a `tf.data.Dataset`: from NumPy arrays Keras would build
    one per `fit` call, which costs more than training these MLPs for an
    epoch. The other backends take the arrays.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y))
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        return {"x": data, "shuffle": False}
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}


def summarize(runs: Sequence[Run], confidence: float = 0.95) -> dict[str, Any]:
    """Mean test accuracy with a t interval, median, range, divergences.

    The interval is Student's t on the runs' accuracies (the seeds are
    independent draws), clipped to [0, 1]; with one run it is NaN. `first_epoch_loss` is the
    median over runs (a diverged run's is inf/NaN, which a mean would
    spread to the whole cell).
    """
    from scipy import stats

    acc = np.array([r.test_accuracy for r in runs], dtype=float)
    n = len(acc)
    mean = float(acc.mean())
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * acc.std(ddof=1) / math.sqrt(n))
    else:
        half = math.nan
    first = np.array([r.first_loss for r in runs], dtype=float)
    first = np.where(np.isfinite(first), first, np.inf)
    return {
        "n": n,
        "mean": mean,
        # An accuracy lies in [0, 1]; the t interval of a cell with a few
        # diverged runs (a two-humped sample) can reach past it.
        "ci_low": max(mean - half, 0.0),
        "ci_high": min(mean + half, 1.0),
        "median": float(np.median(acc)),
        "min": float(acc.min()),
        "max": float(acc.max()),
        "diverged": sum(r.diverged for r in runs),
        "diverged_share": sum(r.diverged for r in runs) / n,
        "first_epoch_loss": float(np.median(first)),
    }


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95):
    """Mean of `a - b` over paired runs (same seed) and its t interval."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half
