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
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import keras
import numpy as np

from keras_weightinit import _keras_internals as internals
from keras_weightinit._draw import TRUNCATED_NORMAL_STD as TRUNCATED_NORMAL_STD
from keras_weightinit._draw import Request, draw
from keras_weightinit._sharding import draw_with_layout
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

#: Int seeds are taken from [0, SEED_LIMIT): a wider range would have to be
#: folded into 64 bits, and two different seeds would then draw the same values.
SEED_LIMIT = 2**64
# A serialized SeedGenerator's own seed: the range every backend accepts
# (JAX takes uint32, PyTorch int32).
_GENERATOR_SEED_LIMIT = 2**31

# Keras's SeedGenerator is not thread-safe (two threads may read the same
# state before either advances it): every draw from one holds this lock.
_GENERATOR_LOCK = threading.RLock()


class TracedCallWarning(UserWarning):
    """An initializer was called inside `tf.function` or `jax.jit`.

    Its seed is Python state, read once when the function is traced: every
    call of the compiled function returns the tensor of that one trace.
    """


class _DerivedSeed(int):
    """What `VarianceScalingCustom.seed` returns for an int or unseeded instance.

    Its value is the instance's base seed; reading it changes nothing. An
    initializer *constructed* from it (as `EinsumDense` does with the copy it
    builds) takes a fresh stream derived from the source instance, so that
    copies made from one shared instance differ. It pickles as a plain int.
    """

    def __new__(cls, value: int, source: VarianceScalingCustom):
        obj = super().__new__(cls, value)
        obj._source = source
        return obj

    def __reduce__(self):
        return (int, (int(self),))


def _check_int_seed(seed: Any, limit: int) -> int:
    seed = int(seed)
    if not 0 <= seed < limit:
        raise ValueError(
            f"Argument `seed` must be an int from 0 to 2**{limit.bit_length() - 1} - 1: "
            "a negative or wider seed would have to be folded into that range, "
            f"where two different seeds would draw the same values. Received: seed={seed}"
        )
    return seed


def _check_seed(seed: Any) -> Any:
    """Returns a valid seed (None, int or SeedGenerator), or raises."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, _DerivedSeed):
        return seed._source._spawn_seed()
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
            inner_seed = inner.get("seed")
            if inner_seed is not None:
                _check_int_seed(inner_seed, _GENERATOR_SEED_LIMIT)
            return keras.random.SeedGenerator(seed=inner_seed, name=inner.get("name"))
        raise ValueError(
            "Argument `seed` holds a dict that is not a serialized "
            f"`keras.random.SeedGenerator`. Received: seed={seed!r}"
        )
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "Argument `seed` must be an int, a `keras.random.SeedGenerator` "
            f"or None. Received: seed={seed!r} (of type {type(seed).__name__})"
        )
    return _check_int_seed(seed, SEED_LIMIT)


def derive_seed(base: int, key: tuple[int, ...], bits: int) -> int:
    """A seed of `bits` bits (1 to 64) derived from a base seed and a key.

    The one derivation of the package: NumPy's `SeedSequence(base,
    spawn_key=key)` hashes the two into 32-bit words, and the seed is the
    top `bits` bits of the first two. Distinct keys give independent
    streams, and a 31-bit result is the top 31 bits of the first word
    alone, so it does not depend on the second. The keys in use:

    - `(k,)`, 31 bits: call `k` of a `VarianceScalingCustom` (31 bits is a
      non-negative seed every backend accepts as is);
    - `(j, 1)`, 64 bits: the base seed of the `j`-th copy constructed from
      an instance's `seed` (a two-part key, apart from the calls');
    - `(i,)`, 31 bits: the `i`-th kernel `initialize(model, seed=...)`
      draws, in the model's order.

    Changing this function changes every seeded value the package draws,
    and the saved fixtures' values with them.
    """
    state = np.random.SeedSequence(base, spawn_key=key)
    words = state.generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 32 | int(words[1])) >> (64 - bits)


def _in_trace() -> bool:
    """Whether this Python code runs while tf.function or jax.jit traces it.

    `torch.compile` runs the seed's Python code on every call, so PyTorch
    never counts as traced here.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        return internals.in_jax_tracing_scope()
    return False


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
    - `seed=<int>`: the base seed, an int from 0 to 2**64 - 1 (Python or
      NumPy). Anything outside is refused with a `ValueError`, not folded
      into range, so two different seeds never draw the same values. Two
      instances with the same int draw the same sequence of tensors.
    - Either way, **every call returns fresh values**: call `k` uses a seed
      derived from `(base seed, k)`. One instance shared by two layers gives
      them different kernels (Keras's built-ins give both the same one).
    - `seed=keras.random.SeedGenerator(...)`: used as Keras uses it; each
      call advances the generator. Calls are serialized by a lock, so
      threads sharing a generator each get their own values (Keras's
      generator alone is not thread-safe). An int-seeded instance is
      thread-safe too: each call takes its own call number under a lock.

    Traced calls: inside `tf.function` or `jax.jit` the call number and the
    base seed are Python values, read once while the function is traced, so
    every call of the compiled function returns the same tensor (Keras's own
    initializers do the same). Such a call issues a `TracedCallWarning`
    once per instance. On TensorFlow a `SeedGenerator` seed is a variable
    that the graph advances, so it does draw fresh values per call (no
    warning); on JAX a generator cannot advance inside `jax.jit` outside a
    `keras.StatelessScope` (Keras would leave a tracer in its state and
    break it), so that call raises a `ValueError`. Draw weights eagerly, or
    pass a fresh seed as an argument of the traced function.

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
    and reproducible attention kernels. `EinsumDense` instead builds its
    copy from the initializer's `seed` attribute. Reading `seed` has no side
    effect (it gives the base seed, or the generator); a copy constructed
    from that value takes a fresh stream derived from the source instance,
    so sharing one instance between `EinsumDense` layers gives them
    different kernels, and reproducibly so.

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
            self._base_seed = self._init_seed
        self._calls = 0
        self._spawned = 0
        self._warned_traced = False
        self._lock = threading.Lock()

    # -- seeds ---------------------------------------------------------------

    def _next_seed(self) -> int | keras.random.SeedGenerator:
        """The seed for the next draw: derived from (base seed, call count)."""
        if self._base_seed is None:
            return self._init_seed
        with self._lock:
            k = self._calls
            self._calls += 1
        return derive_seed(self._base_seed, (k,), 31)

    def _spawn_seed(self) -> int:
        """The base seed of the next copy constructed from `self.seed`."""
        with self._lock:
            j = self._spawned
            self._spawned += 1
        return derive_seed(self._base_seed, (j, 1), 64)

    @property
    def seed(self) -> int | keras.random.SeedGenerator:
        """The base seed (the generator itself, if any); reading it changes nothing.

        The int is marked: an initializer constructed with it as its seed
        (`EinsumDense` builds the copy it draws from that way) gets a fresh
        stream derived from this instance, not this instance's own stream.
        """
        if self._base_seed is None:
            return self._init_seed
        return _DerivedSeed(self._base_seed, self)

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
        shape, dtype, std = self._checked(shape, dtype, layout)
        if self._base_seed is None:  # a SeedGenerator
            self._check_generator_not_traced()
            with _GENERATOR_LOCK:
                return self._draw(shape, dtype, std, self._init_seed, layout)
        if not self._warned_traced and layout is None and _in_trace():
            self._warned_traced = True
            warnings.warn(
                f"{type(self).__name__} was called inside a traced function "
                "(tf.function or jax.jit): its seed is fixed when the function is "
                "traced, so every call of the compiled function returns the same "
                "tensor. Draw the weights outside the traced function.",
                TracedCallWarning,
                stacklevel=2,
            )
        return self._draw(shape, dtype, std, self._next_seed(), layout)

    def _checked(self, shape, dtype, layout=None):
        shape = check_shape(shape)
        dtype = check_float_dtype(dtype)
        if layout is None:  # a sharded tensor may exceed one host's memory
            check_size(shape, dtype)
        std = self.stddev(shape)
        check_fits_dtype(std, dtype, self.scale, shape)
        return shape, dtype, std

    def request(self, shape, dtype=None) -> Request | None:
        """The draw the next call would make, decided but not made.

        Takes the call's seed (the next call draws the one after), so that
        `keras_weightinit._draw.assign` can make many draws in one go with
        the values calls would give. None for a `SeedGenerator` seed, whose
        state only a call advances.
        """
        if self._base_seed is None:
            return None
        shape, dtype, std = self._checked(shape, dtype)
        return Request(self.distribution, shape, dtype, std, self._next_seed())

    def _draw(self, shape, dtype, std, seed, layout):
        if layout is not None:
            return draw_with_layout(self.distribution, shape, dtype, std, seed, layout)
        return draw(self.distribution, shape, dtype, std, seed)

    def _check_generator_not_traced(self) -> None:
        if keras.backend.backend() != "jax" or not _in_trace():
            return
        if not internals.in_stateless_scope():
            raise ValueError(
                f"{type(self).__name__} is seeded with a keras.random.SeedGenerator "
                "and was called inside jax.jit: the generator cannot advance there "
                "(Keras would store a tracer in its state and break it for every "
                "later call). Call the initializer outside jax.jit, inside a "
                "keras.StatelessScope, or seed it with an int. "
                f"Received: seed={self._init_seed!r}"
            )

    # -- changed copies ------------------------------------------------------

    def replace(self, **changes: Any) -> VarianceScalingCustom:
        """A new initializer with the named fields changed and the others kept.

        The fields are the constructor's arguments (`scale`, `mode`,
        `distribution`, `seed`, `input_axes`, `output_axes`), and the copy is
        built by the constructor, so a bad value fails as it would there.
        `seed` is carried as it was given: an int stays that int (the copy
        draws the same sequence as a fresh instance with that seed), None
        stays None (the copy takes its own random base seed), a
        `SeedGenerator` is shared.

        The class is kept, with one rule for the presets: `HeNormalCustom` and
        the others stay what they are when only `seed`, `input_axes` or
        `output_axes` are named; naming a field a preset fixes (`scale`,
        `mode` or `distribution`) gives a `VarianceScalingCustom` holding
        every field, even when the value is the preset's own. The class
        depends on the names given, never on the values.

        Examples:

        >>> HeNormalCustom(seed=1).replace(input_axes=[0], output_axes=[1])
        HeNormalCustom(seed=1, input_axes=[0], output_axes=[1])
        >>> HeNormalCustom(seed=1).replace(scale=1.0).get_config()["scale"]
        1.0
        >>> type(HeNormalCustom(seed=1).replace(mode="fan_in")).__name__
        'VarianceScalingCustom'

        Raises:
            TypeError: for a name that is not a field (the error names it).
            ValueError: for a bad value, as the constructor raises.
        """
        fields = self._fields()
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            received = ", ".join(f"{k}={changes[k]!r}" for k in unknown)
            raise TypeError(
                f"{type(self).__name__}.replace() has no field "
                f"{', '.join(map(repr, unknown))}. Fields: {', '.join(fields)}. "
                f"Received: {received}"
            )
        return self._rebuild({**fields, **changes}, set(changes))

    def _fields(self) -> dict[str, Any]:
        """The constructor's arguments, as this instance was given them."""
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self._init_seed,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }

    def _rebuild(self, fields: dict[str, Any], named: set[str]) -> VarianceScalingCustom:
        return type(self)(**fields)

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

    _FIXED = ("scale", "mode", "distribution")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for fixed in self._FIXED:
            del config[fixed]
        return config

    def _rebuild(self, fields: dict[str, Any], named: set[str]) -> VarianceScalingCustom:
        if named.intersection(self._FIXED):
            return VarianceScalingCustom(**fields)
        return type(self)(**{k: v for k, v in fields.items() if k not in self._FIXED})


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
