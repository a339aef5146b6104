"""The training loop shared by the `train` command and benchmarks/training.py."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

from keras_weightinit import _training as training


def _runs(accs, nan_at=()):
    return [
        training.Run(a, math.nan if i in nan_at else 0.4, [2.0, 1.0], epochs=2)
        for i, a in enumerate(accs)
    ]


def test_summary_interval_is_students_t():
    accs = [0.61, 0.74, 0.55, 0.9, 0.83, 0.12, 0.7, 0.66, 0.8, 0.77]
    s = training.summarize(_runs(accs, nan_at=(5,)))
    # SciPy's own t interval (a different entry point from the one used).
    low, high = stats.t.interval(0.95, len(accs) - 1, loc=np.mean(accs), scale=stats.sem(accs))
    assert s["ci_low"] == pytest.approx(low, rel=1e-12)
    assert s["ci_high"] == pytest.approx(high, rel=1e-12)
    assert s["median"] == pytest.approx(0.72)  # (0.70 + 0.74) / 2
    assert (s["min"], s["max"], s["n"]) == (0.12, 0.9, 10)
    # The NaN run is also at chance (0.12 <= 0.15): one divergence, not two.
    assert (s["diverged"], s["diverged_share"]) == (1, 0.1)
    assert s["first_epoch_loss"] == 2.0


def test_divergence_rule():
    finite = training.Run(0.5, 0.3, [1.0, 0.5], epochs=2)
    assert not finite.diverged
    assert training.Run(0.5, 0.3, [1.0, math.nan], epochs=2).diverged
    assert training.Run(0.5, 0.3, [math.nan], epochs=2).diverged  # stopped early
    assert training.Run(0.15, 0.3, [1.0, 0.5], epochs=2).diverged  # at chance
    assert training.Run(0.5, math.inf, [1.0, 0.5], epochs=2).diverged


def test_paired_difference_uses_the_pairs():
    a = [0.80, 0.60, 0.90, 0.70]
    b = [0.78, 0.57, 0.89, 0.66]  # a - b = 0.02, 0.03, 0.01, 0.04
    mean, low, high = training.paired_difference(a, b)
    d = np.subtract(a, b)
    exp_low, exp_high = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
    assert mean == pytest.approx(0.025)
    assert (low, high) == (pytest.approx(exp_low), pytest.approx(exp_high))
    # The pairs make a consistent 2.5-point gap significant (low > 0) that the
    # spread across seeds (20 points) would hide in an unpaired comparison.
    assert low > 0


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="Argument `optimizer` must be 'sgd' or 'adam'. Received"):
        training.make_optimizer("rmsprop")


@pytest.mark.parametrize("residual", [False, True])
def test_build_mlp_shapes(residual):
    model = training.build_mlp(lambda act: "he_normal_custom", "relu", 4, 8, residual=residual)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    # Plain: 4 hidden + logits. Residual: stem + 2 blocks of 2 + logits.
    assert len(dense) == 5 + residual * 1
    assert model.output_shape == (None, 10)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == (2 if residual else 0)


@pytest.mark.slow
def test_a_reused_trainer_matches_a_fresh_model():
    data = training.load_digits_split(3)
    data = (data[0][:192], data[1][:192], data[2], data[3])

    def model(seed):
        keras.utils.set_random_seed(seed)
        return training.build_mlp(lambda act: "he_normal_custom", "relu", 3, 16)

    keras.utils.set_random_seed(0)
    template = training.build_mlp(lambda act: "glorot_uniform", "relu", 3, 16)
    trainer = training.Trainer(template, training.make_optimizer("sgd"))
    first = trainer.run(model(1), data, epochs=2, batch_size=32, seed=1)
    other = trainer.run(model(2), data, epochs=2, batch_size=32, seed=2)
    again = trainer.run(model(1), data, epochs=2, batch_size=32, seed=1)
    # A fresh model compiled on its own: what reuse must reproduce.
    fresh = training.Trainer(model(1), training.make_optimizer("sgd"))
    alone = fresh.run(model(1), data, epochs=2, batch_size=32, seed=1)
    # Same weights, same batch order, optimizer state reset: the same run
    # up to float reassociation (rel 1e-5 is ~100 float32 ulps).
    for run in (again, alone):
        assert run.loss_curve == pytest.approx(first.loss_curve, rel=1e-5)
        assert run.test_accuracy == pytest.approx(first.test_accuracy, abs=1e-6)
    # ...and a different seed is a different run.
    assert other.loss_curve != pytest.approx(first.loss_curve, rel=1e-3)
