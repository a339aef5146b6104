"""`for_activation`: the right initializer for an activation.

The default is the family of the activation table in
`keras_weightinit.activations` (with the reason for each choice); `gain=`
opts in to a derived gain (see `keras_weightinit.gains`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import keras

from keras_weightinit import gains as _gains
from keras_weightinit._validation import check_choice, check_choice_or_positive
from keras_weightinit.activations import resolve_activation
from keras_weightinit.initializers import (
    GlorotNormalCustom,
    GlorotUniformCustom,
    HeNormalCustom,
    HeUniformCustom,
    LecunNormalCustom,
    LecunUniformCustom,
    VarianceScalingCustom,
)

DISTRIBUTIONS = ("normal", "uniform")

_PRESETS = {
    ("glorot", "normal"): GlorotNormalCustom,
    ("glorot", "uniform"): GlorotUniformCustom,
    ("lecun", "normal"): LecunNormalCustom,
    ("lecun", "uniform"): LecunUniformCustom,
    ("he", "normal"): HeNormalCustom,
    ("he", "uniform"): HeUniformCustom,
}


def _negative_slope(act) -> float:
    """The slope of a leaky rectifier (0 for anything else)."""
    if act.name in ("leaky_relu", "relu"):
        return float(act.params["negative_slope"])
    return 0.0


def for_activation(
    activation: Any,
    distribution: Literal["normal", "uniform"] = "normal",
    seed: int | keras.random.SeedGenerator | None = None,
    gain: str | float | None = None,
    *,
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
) -> VarianceScalingCustom:
    """The initializer an activation calls for, as a serializable instance.

    By default the preset of the activation's family (Glorot, He or LeCun).
    The family of every activation Keras 3 knows, and the reason for each
    choice, is one table in `keras_weightinit.activations`, shown on the docs
    page [Activations, the factory and
    gains](activations.md#the-default-every-keras-activation-mapped).
    A leaky rectifier with negative slope `a != 0` (`leaky_relu`,
    `LeakyReLU`, `ReLU(negative_slope=a)`, `PReLU`) gets He et al.'s
    `VarianceScalingCustom(scale=2 / (1 + a²), mode="fan_in")`.

    Opt-in gains, `gain=` (see `keras_weightinit.gain` for their table):

    - `"second_moment"`: `1 / sqrt(E[f(z)²])`, `z ~ N(0, 1)`;
    - `"fixed_point"`: `σ*` with `E[f(σ* z)²] = 1`;
    - a positive number: that gain.

    With a gain the result is `VarianceScalingCustom(scale=gain²,
    mode="fan_in")`, whose config stores the scale: a saved model reloads
    with exactly that scale, never recomputed.

    Examples:

    >>> for_activation("tanh")
    GlorotNormalCustom(seed=None, input_axes=None, output_axes=None)
    >>> for_activation("relu", "uniform", seed=1)
    HeUniformCustom(seed=1, input_axes=None, output_axes=None)
    >>> init = for_activation(keras.layers.LeakyReLU())  # a = 0.3
    >>> round(init.scale, 4), init.mode  # 2 / (1 + 0.09)
    (1.8349, 'fan_in')
    >>> init = for_activation("gelu", gain="fixed_point")
    >>> round(init.get_config()["scale"], 4)
    2.1551
    >>> tuple(init((256, 64)).shape)
    (256, 64)

    Args:
        activation: Anything `keras_weightinit.resolve_activation` accepts: a
            name or alias, a Keras activation function (or a
            `functools.partial` of one), a Keras activation layer, or None.
            With `gain="second_moment"`/`"fixed_point"` also any elementwise
            function of your own.
        distribution: `"normal"` (untruncated Gaussian) or `"uniform"`.
        seed: None, an int, or a `keras.random.SeedGenerator`, as in
            `VarianceScalingCustom`.
        gain: None (the table), `"second_moment"`, `"fixed_point"`, or a
            positive number.
        input_axes, output_axes: Passed on, as in `VarianceScalingCustom`.

    Returns:
        A registered, serializable initializer: one of the six presets, or a
        `VarianceScalingCustom` for leaky rectifiers and explicit gains.

    Raises:
        ValueError: for an unknown activation (with the closest names), a
            `distribution` other than "normal" or "uniform", an unknown
            `gain`, or a gain that does not exist (`"fixed_point"` for tanh).

    Reference:
        - Glorot & Bengio, 2010; He et al., 2015; Klambauer et al., 2017.
    """
    distribution = check_choice(distribution, "distribution", DISTRIBUTIONS)
    if gain is None:
        act = resolve_activation(activation)
        slope = _negative_slope(act)
        if act.family == "he" and slope != 0.0:
            # He et al. (2015), eq. 15: var = 2 / ((1 + a²) fan_in).
            return VarianceScalingCustom(
                scale=2.0 / (1.0 + slope * slope),
                mode="fan_in",
                distribution=distribution,
                seed=seed,
                input_axes=input_axes,
                output_axes=output_axes,
            )
        preset = _PRESETS[(act.family, distribution)]
        return preset(seed=seed, input_axes=input_axes, output_axes=output_axes)
    gain = check_gain(gain)
    if isinstance(gain, str):
        value = _gains.gain(activation, method=gain)
    else:
        value = gain
        # The activation does not set the scale here, but a typo in its
        # name is still an error.
        _check_activation(activation)
    return VarianceScalingCustom(
        scale=value * value,
        mode="fan_in",
        distribution=distribution,
        seed=seed,
        input_axes=input_axes,
        output_axes=output_axes,
    )


def check_gain(gain: Any) -> str | float | None:
    """Returns a valid `gain` argument (None, a method name or a float), or raises."""
    return check_choice_or_positive(gain, "gain", _gains.METHODS)


def _check_activation(activation: Any) -> None:
    """Raises unless `activation` is a Keras activation or a plain callable."""
    try:
        resolve_activation(activation)
    except ValueError:
        if isinstance(activation, (str, keras.layers.Layer)) or not callable(activation):
            raise
