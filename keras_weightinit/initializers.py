"""The Glorot, LeCun and He initializers.

All the math is in `VarianceScalingCustom.__call__`: the fans come from
`compute_fans`, the standard deviation is `sqrt(scale / n)` with `n` the
fan picked by `mode`, and one of three samplers draws the values:

| distribution         | draws                                   | std of the result |
| -------------------- | --------------------------------------- | ----------------- |
| `"normal"`           | `N(0, std²)`, untruncated               | `std`             |
| `"uniform"`          | `U(-r, r)` with `r = sqrt(3)·std`       | `std`             |
| `"truncated_normal"` | `N(0, (std/c)²)` cut at ±2 of its sigma | `std`             |

where `c = 0.87962566103423978` is the standard deviation of a standard normal
truncated to [-2, 2], so that truncation does not shrink the variance.

The six presets only fix `(scale, mode, distribution)`:

| class               | string name             | scale | mode    | variance            |
| ------------------- | ----------------------- | ----- | ------- | ------------------- |
| GlorotNormalCustom  | "glorot_normal_custom"  | 1     | fan_avg | 2/(fan_in+fan_out)  |
| GlorotUniformCustom | "glorot_uniform_custom" | 1     | fan_avg | 2/(fan_in+fan_out)  |
| LecunNormalCustom   | "lecun_normal_custom"   | 1     | fan_in  | 1/fan_in            |
| LecunUniformCustom  | "lecun_uniform_custom"  | 1     | fan_in  | 1/fan_in            |
| HeNormalCustom      | "he_normal_custom"      | 2     | fan_in  | 2/fan_in            |
| HeUniformCustom     | "he_uniform_custom"     | 2     | fan_in  | 2/fan_in            |

Seeds: unlike Keras's built-ins, every call of one instance draws fresh
values. See `VarianceScalingCustom` for the rules.
"""

from __future__ import annotations

import inspect
import math
import random as python_random
import threading
from collections.abc import Sequence
from typing import Any, Literal

import keras
import numpy as np

from keras_weightinit._draw import TRUNCATED_NORMAL_STD as TRUNCATED_NORMAL_STD
from keras_weightinit._draw import draw
from keras_weightinit._layout import draw_with_layout
from keras_weightinit._validation import (
    check_axes,
    check_choice,
    check_fits_dtype,
    check_float_dtype,
    check_positive_finite,
    check_shape,
    check_size,
)
from keras_weightinit.fans import compute_fans
from keras_weightinit.registry import register

Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "uniform", "truncated_normal"]
MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "uniform", "truncated_normal")

_SEED_MASK = 2**64 - 1


def _check_seed(seed: Any) -> Any:
    """Returns a valid seed (None, int or SeedGenerator), or raises."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, dict):
        # A serialized SeedGenerator, as `get_config` writes it. Built here
        # rather than through the generic deserializer, so that a config can
        # only ever produce a SeedGenerator, never an arbitrary object.
        inner = seed.get("config")
        if (
            seed.get("class_name") == "SeedGenerator"
            and isinstance(inner, dict)
            and set(inner) <= {"seed", "name"}
            and (inner.get("seed") is None or type(inner.get("seed")) is int)
            and (inner.get("name") is None or isinstance(inner.get("name"), str))
        ):
            return keras.random.SeedGenerator(seed=inner.get("seed"), name=inner.get("name"))
        raise ValueError(
            "Argument `seed` holds a dict that is not a serialized "
            f"`keras.random.SeedGenerator`. Received: seed={seed!r}"
        )
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "Argument `seed` must be an int, a `keras.random.SeedGenerator` "
            f"or None. Received: seed={seed!r} (of type {type(seed).__name__})"
        )
    return int(seed)


class VarianceScalingCustom(keras.initializers.VarianceScaling):
    """Draws weights whose variance is `scale / n`, `n` a fan of the kernel.

    `n` is `fan_in`, `fan_out` or `(fan_in + fan_out) / 2` depending on `mode`
    (see `keras_weightinit.compute_fans` for the fans of each layout). The
    values are drawn from an ordinary Gaussian (`"normal"`), a uniform on
    `[-r, r]` with `r = sqrt(3 · scale / n)` (`"uniform"`), or a Gaussian
    truncated at two of its standard deviations and widened so that its
    variance is still `scale / n` (`"truncated_normal"`).

    It is a subclass of `keras.initializers.VarianceScaling`, so layers that
    special-case variance scaling (`EinsumDense`, `MultiHeadAttention`) pass
    it the axes of their kernel. Note that `"normal"` here is the
    untruncated Gaussian of the Glorot and He papers, where Keras's built-in
    `VarianceScaling` reads `"normal"` as truncated.

    Seeds, the same for every initializer of this package:

    - `seed=None`: each instance takes a random base seed when it is created,
      from Python's `random` module, so `keras.utils.set_random_seed(s)`
      before the model is built makes the whole run reproducible.
    - `seed=<int>`: the base seed. Two instances with the same int draw the
      same sequence of tensors.
    - Either way, **every call returns fresh values**: call `k` uses a seed
      derived from `(base seed, k)`. One instance shared by two layers gives
      them different kernels (Keras's built-ins give both the same one).
    - `seed=keras.random.SeedGenerator(...)`: used as Keras uses it; each
      call advances the generator.

    Memory: a tensor of 2^20 values or more is drawn without a full-size
    temporary (peak about 1.05x the tensor, where `keras.random` needs 3-9x;
    see `keras_weightinit._draw`). On TensorFlow the values are still those
    `keras.random` gives for the same seed; on JAX (2^20 values or more)
    and for PyTorch's uniform and truncated normal (every size) they come
    from another stream with the same distribution.

    Layers that rebuild their initializer from its config get a *new*
    instance with the same `seed` argument. `MultiHeadAttention` does this
    for its query, key, value and output kernels: with `seed=None` they
    differ (each copy takes its own random base seed), with an int seed the
    four copies start from the same base seed, so equally shaped query, key
    and value kernels come out identical, as with Keras's built-ins. Pass
    `seed=None` and call `keras.utils.set_random_seed` to get both distinct
    and reproducible attention kernels. `EinsumDense` instead reads the
    initializer's `seed` attribute, which hands out a fresh derived seed on
    every read, so sharing one instance between `EinsumDense` layers is safe.

    Examples:

    >>> init = VarianceScalingCustom(scale=2.0, mode="fan_in", seed=0)
    >>> tuple(init((256, 128)).shape)  # a tensor of the backend's own type
    (256, 128)
    >>> round(init.stddev((256, 128)), 6)  # sqrt(2 / 256)
    0.088388

    Args:
        scale: The variance times the fan; a positive finite number.
            `scale = gain²`.
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
        distribution: `"normal"` (untruncated), `"uniform"` or
            `"truncated_normal"` (variance-corrected).
        seed: None, an int, or a `keras.random.SeedGenerator`; see above.
        input_axes: Optional list of the kernel's input axes, given together
            with `output_axes`; the layers that need them pass them.
        output_axes: Optional list of the kernel's output axes.

    Reference:
        - Glorot & Bengio, 2010, "Understanding the difficulty of training
          deep feedforward neural networks".
        - He et al., 2015, "Delving Deep into Rectifiers".
        - LeCun et al., 1998, "Efficient BackProp".
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: Mode = "fan_in",
        distribution: Distribution = "normal",
        seed: int | keras.random.SeedGenerator | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ):
        # Keras's VarianceScaling.__init__ is deliberately not called: it
        # accepts nan/inf scales and reads "normal" as truncated.
        self.scale = check_positive_finite(scale, "scale")
        self.mode = check_choice(mode, "mode", MODES)
        if distribution == "untruncated_normal":  # Keras's spelling
            distribution = "normal"
        self.distribution = check_choice(distribution, "distribution", DISTRIBUTIONS)
        self.input_axes = check_axes(input_axes, "input_axes")
        self.output_axes = check_axes(output_axes, "output_axes")
        if (self.input_axes is None) != (self.output_axes is None):
            raise ValueError(
                "Arguments `input_axes` and `output_axes` must be given "
                f"together. Received: input_axes={input_axes}, "
                f"output_axes={output_axes}"
            )
        self._init_seed = _check_seed(seed)
        self._setup_stream()

    def _setup_stream(self) -> None:
        if isinstance(self._init_seed, keras.random.SeedGenerator):
            self._base_seed = None
        elif self._init_seed is None:
            # Python's `random`, as Keras's `make_default_seed` does, so that
            # `keras.utils.set_random_seed` governs unseeded instances too.
            self._base_seed = python_random.randint(1, 2**62)
        else:
            self._base_seed = self._init_seed & _SEED_MASK
        self._calls = 0
        self._lock = threading.Lock()

    # -- seeds ---------------------------------------------------------------

    def _next_seed(self) -> int | keras.random.SeedGenerator:
        """The seed for the next draw: derived from (base seed, call count)."""
        if self._base_seed is None:
            return self._init_seed
        with self._lock:
            k = self._calls
            self._calls += 1
        state = np.random.SeedSequence(self._base_seed, spawn_key=(k,))
        # 31 bits: a non-negative seed every backend accepts as is.
        return int(state.generate_state(1, dtype=np.uint32)[0] >> 1)

    @property
    def seed(self) -> int | keras.random.SeedGenerator:
        """A fresh derived seed on every read (the generator itself, if any).

        `EinsumDense` reads this attribute to seed the copy of the
        initializer it builds, so each read must give a new stream.
        """
        return self._next_seed()

    # -- math ----------------------------------------------------------------

    def stddev(self, shape: Sequence[int]) -> float:
        """The standard deviation of the weights drawn for `shape`."""
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return math.sqrt(self.scale / max(1.0, n))

    def __call__(self, shape, dtype=None, layout=None):
        """Returns a new tensor of `shape` and float `dtype` (default floatx).

        `layout` (JAX only) is the sharding Keras passes under a
        `keras.distribution` setting: the values are drawn for the global
        `shape`, with its fans, and laid out shard by shard.
        """
        shape = check_shape(shape)
        dtype = check_float_dtype(dtype)
        std = self.stddev(shape)
        check_fits_dtype(std, dtype, self.scale)
        if layout is None:  # a sharded tensor may exceed one host's memory
            check_size(shape, dtype)
        seed = self._next_seed()
        if layout is not None:
            return draw_with_layout(self.distribution, shape, dtype, std, seed, layout)
        return draw(self.distribution, shape, dtype, std, seed)

    # -- serialization -------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        seed = self._init_seed
        if isinstance(seed, keras.random.SeedGenerator):
            seed = keras.saving.serialize_keras_object(seed)
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": seed,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        if not isinstance(config, dict):
            raise TypeError(
                f"Argument `config` of {cls.__name__}.from_config must be a "
                f"dict. Received: config={config!r}"
            )
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(config) - allowed, key=str)
        if unknown:
            raise ValueError(
                f"Unknown key(s) {', '.join(map(repr, unknown))} in the config "
                f"of {cls.__name__}. Allowed keys: {', '.join(sorted(allowed))}. "
                f"Received: config={config!r}"
            )
        return cls(**config)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Preset(VarianceScalingCustom):
    """A `VarianceScalingCustom` with a fixed `(scale, mode, distribution)`."""

    SCALE: float
    MODE: Mode
    DISTRIBUTION: Distribution

    def __init__(
        self,
        seed: int | keras.random.SeedGenerator | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ):
        super().__init__(
            scale=self.SCALE,
            mode=self.MODE,
            distribution=self.DISTRIBUTION,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for fixed in ("scale", "mode", "distribution"):
            del config[fixed]
        return config


@register("glorot_normal_custom")
class GlorotNormalCustom(_Preset):
    """Glorot (Xavier) normal: `N(0, 2 / (fan_in + fan_out))`, untruncated.

    For layers followed by no activation, tanh, sigmoid or softmax. It is
    `VarianceScalingCustom(scale=1.0, mode="fan_avg", distribution="normal")`.

    Example:

    >>> keras.layers.Dense(64, kernel_initializer="glorot_normal_custom")
    <Dense name=dense..., built=False>

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: Glorot & Bengio, 2010.
    """

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "normal"


@register("glorot_uniform_custom")
class GlorotUniformCustom(_Preset):
    """Glorot (Xavier) uniform: `U(-r, r)`, `r = sqrt(6 / (fan_in + fan_out))`.

    For layers followed by no activation, tanh, sigmoid or softmax. It is
    `VarianceScalingCustom(scale=1.0, mode="fan_avg", distribution="uniform")`.

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: Glorot & Bengio, 2010.
    """

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "uniform"


@register("lecun_normal_custom")
class LecunNormalCustom(_Preset):
    """LeCun normal: `N(0, 1 / fan_in)`, untruncated.

    For SELU (self-normalizing networks). It is
    `VarianceScalingCustom(scale=1.0, mode="fan_in", distribution="normal")`.

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: LeCun et al., 1998; Klambauer et al., 2017.
    """

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "normal"


@register("lecun_uniform_custom")
class LecunUniformCustom(_Preset):
    """LeCun uniform: `U(-r, r)`, `r = sqrt(3 / fan_in)`.

    It is
    `VarianceScalingCustom(scale=1.0, mode="fan_in", distribution="uniform")`.

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: LeCun et al., 1998.
    """

    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "uniform"


@register("he_normal_custom")
class HeNormalCustom(_Preset):
    """He (Kaiming) normal: `N(0, 2 / fan_in)`, untruncated.

    For ReLU and its variants. It is
    `VarianceScalingCustom(scale=2.0, mode="fan_in", distribution="normal")`.

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: He et al., 2015.
    """

    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "normal"


@register("he_uniform_custom")
class HeUniformCustom(_Preset):
    """He (Kaiming) uniform: `U(-r, r)`, `r = sqrt(6 / fan_in)`.

    For ReLU and its variants. It is
    `VarianceScalingCustom(scale=2.0, mode="fan_in", distribution="uniform")`.

    Args:
        seed, input_axes, output_axes: as in `VarianceScalingCustom`.

    Reference: He et al., 2015.
    """

    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "uniform"


register("variance_scaling_custom")(VarianceScalingCustom)
