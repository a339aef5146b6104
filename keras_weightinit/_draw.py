"""Drawing a large tensor without full-size temporaries.

`keras.random.normal`, `uniform` and `truncated_normal` are correct but,
called eagerly on a large shape, hold several full-size buffers at once:

| backend    | normal | uniform | truncated normal | why                                 |
| ---------- | -----: | ------: | ---------------: | ----------------------------------- |
| TensorFlow |     3x |      3x |               3x | `rnd * std + mean`, one op at a time |
| JAX        |     4x |      4x |               4x | Threefry's counters and random bits |
| PyTorch    |     1x |      3x |               9x | `(b - a) * rand + a`; 4 candidates  |

(peak resident memory / tensor size, measured by
`benchmarks/bench_initializers.py`). Here the same distributions are drawn
so that the peak stays near the tensor itself:

- TensorFlow: the same `tf.random.stateless_*` op inside a `tf.function`
  traced once per (distribution, dtype), the shape an argument. A graph
  executor hands the raw draw's buffer on to the multiply and add. The
  values are bit for bit those of `keras.random.*` with the same seed.
- PyTorch: one `torch.empty` tensor filled in place (`normal_`,
  `uniform_`; the truncated normal by the inverse CDF, chunk by chunk).
  Normal values equal `keras.random.normal`'s for the same seed.
- JAX, above `LEAN_MIN_SIZE` values: one `jax.jit` fills a flat buffer
  `LEAN_MIN_SIZE` values at a time (`fori_loop` and
  `dynamic_update_slice`, a `fold_in` key per chunk), which XLA updates in
  place. Smaller tensors use `keras.random` as is.

Seeds follow Keras's conventions, so an int seed or a `SeedGenerator`
selects the same stream `keras.random` would start from.

`assign` writes many draws into their variables at once: on TensorFlow, from
the second time a layout is seen, in one `tf.function` call (the same ops,
so the same values), which runs the independent draws side by side on the
CPU's threads and pays no per-op eager dispatch; `initialize` draws a whole
model that way (ResNet50's 54 kernels at 32x32: 0.64 of a forward pass,
against 1.0 drawn one by one).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import keras
import numpy as np

# Below this many values the difference in peak memory is at most a few
# MiB, and `keras.random` is called as is (TensorFlow, JAX).
LEAN_MIN_SIZE = 2**20

# stddev of a standard normal truncated to (-2, 2)
TRUNCATED_NORMAL_STD = 0.87962566103423978


def sampler_parameter(distribution: str, std: float) -> float:
    """The parameter each sampler takes to give a result of stddev `std`.

    The normal's stddev, the uniform's half-width `sqrt(3)·std`, or the
    stddev of the normal before truncation at ±2 of it, `std / c`.
    """
    if distribution == "normal":
        return std
    if distribution == "uniform":
        return math.sqrt(3.0) * std
    return std / TRUNCATED_NORMAL_STD


def draw(
    distribution: str,
    shape: tuple[int, ...],
    dtype: str,
    std: float,
    seed: int | keras.random.SeedGenerator,
):
    """Returns a backend tensor of `shape` and `dtype`, standard deviation `std`.

    Args:
        distribution: `"normal"`, `"uniform"` or `"truncated_normal"`.
        shape: A validated shape tuple.
        dtype: A standardized float dtype name.
        std: The standard deviation of the result.
        seed: A non-negative int below 2**31, or a `keras.random.SeedGenerator`.
    """
    backend = keras.backend.backend()
    size = math.prod(shape)
    if size == 0:
        return _empty(shape, dtype)
    if backend == "tensorflow" and size >= LEAN_MIN_SIZE:
        return _draw_tensorflow(distribution, shape, dtype, std, seed)
    if backend == "torch":
        return _draw_torch(distribution, shape, dtype, std, seed)
    if backend == "jax" and size > LEAN_MIN_SIZE:
        return _draw_jax(distribution, shape, dtype, std, seed)
    return _draw_keras(distribution, shape, dtype, std, seed)


@dataclasses.dataclass(frozen=True)
class Request:
    """One draw, fully decided: what `draw` takes, with an int seed."""

    distribution: str
    shape: tuple[int, ...]
    dtype: str
    std: float
    seed: int


def assign(
    draws: Sequence[tuple], values: Sequence[tuple] = (), *, compiled: bool | None = None
) -> None:
    """Assigns each `(variable, Request)` its draw and each `(variable, array)` its value.

    The values are those `draw` gives for each request. A variable listed
    twice is written in list order (draws first, then values).

    On TensorFlow the writes can run as one compiled call (`compiled=True`),
    which costs a trace (about 10 ms per variable here) and then runs at
    0.6-0.7 of the eager loop's time. By default (`None`) a layout (the
    distributions, shapes and dtypes) is compiled the second time it is
    seen: a model initialized once pays no trace, one initialized again
    (a seed sweep, a benchmark, a re-initialization per trial) the
    cheaper draw from then on.
    """
    if keras.backend.backend() == "tensorflow" and _graph_assignable(draws, values):
        signature = _signature(draws, values)
        if compiled is None:
            compiled = _seen_before(signature)
        if compiled:
            _assign_tensorflow(signature, draws, values)
            return
    for variable, r in draws:
        value = draw(r.distribution, r.shape, r.dtype, r.std, r.seed)
        variable.assign(keras.ops.cast(value, variable.dtype))
    for variable, value in values:
        variable.assign(keras.ops.cast(value, variable.dtype))


_SEEN_LIMIT = 256
_seen: dict[tuple, None] = {}  # layouts drawn so far, oldest first


def _seen_before(signature: tuple) -> bool:
    if signature in _seen:
        return True
    if len(_seen) >= _SEEN_LIMIT:
        _seen.pop(next(iter(_seen)), None)
    _seen[signature] = None
    return False


def _signature(draws, values) -> tuple:
    """The layout that keys a compiled assigner: it takes any variables of that layout."""
    return tuple((r.distribution, r.shape, r.dtype) for _, r in draws) + tuple(
        ("value", tuple(np.shape(value)), variable.dtype) for variable, value in values
    )


def _graph_assignable(draws, values) -> bool:
    """Plain TensorFlow variables of the drawn dtypes (not mirrored, not autocast)."""
    import tensorflow as tf

    def plain(variable) -> bool:
        v = variable.value
        return isinstance(v, tf.Variable) and not isinstance(v, tf.distribute.DistributedValues)

    return (
        bool(draws)
        and all(
            plain(variable) and variable.value.dtype.name == r.dtype and math.prod(r.shape)
            for variable, r in draws
        )
        and all(plain(variable) for variable, _ in values)
    )


def _assign_tensorflow(signature, draws, values) -> None:
    import tensorflow as tf

    # Keras's TensorFlow seeds: the pair (seed, 0) modulo 2**31 - 2, as int32.
    seeds = np.array([[r.seed % (2**31 - 2), 0] for _, r in draws], dtype=np.int32)
    params = np.array([sampler_parameter(r.distribution, r.std) for _, r in draws])
    _tf_assigner(signature)(
        [variable.value for variable, _ in draws],
        tf.constant(seeds),
        tf.constant(params, tf.float64),
        [variable.value for variable, _ in values],
        [tf.convert_to_tensor(value, variable.value.dtype) for variable, value in values],
    )


@functools.lru_cache(maxsize=32)  # one traced function per model layout
def _tf_assigner(signature: tuple):
    import tensorflow as tf

    kinds = [kind for kind, _, _ in signature]

    def fill(variables, seeds, params, targets, new_values):
        for i, (variable, kind) in enumerate(zip(variables, kinds)):
            param = tf.cast(params[i], variable.dtype)
            variable.assign(_tf_op(kind, variable.shape, seeds[i], param, variable.dtype))
        for variable, value in zip(targets, new_values):
            variable.assign(value)

    return tf.function(fill, autograph=False)


def _tf_op(distribution, shape, seed, param, tf_dtype):
    """The stateless op `keras.random` runs for `distribution` on TensorFlow."""
    import tensorflow as tf

    if distribution == "normal":
        return tf.random.stateless_normal(shape, seed, stddev=param, dtype=tf_dtype)
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed, minval=-param, maxval=param, dtype=tf_dtype)
    return tf.random.stateless_truncated_normal(shape, seed, stddev=param, dtype=tf_dtype)


def _empty(shape, dtype):
    """A tensor with no values: nothing to draw.

    XLA compiles a random draw (even `jnp.zeros`) of an empty shape in time
    that grows with its other dimensions (16 s for `(4096, 4096, 0)`, no end
    in sight for `(2**21, 2**21, 0)`); a NumPy array put on the device takes
    none.
    """
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp
        import numpy as np

        return jax.device_put(np.zeros(shape, dtype=jnp.dtype(dtype)))
    return keras.ops.zeros(shape, dtype=dtype)


def _draw_keras(distribution, shape, dtype, std, seed):
    param = sampler_parameter(distribution, std)
    if distribution == "normal":
        return keras.random.normal(shape, stddev=param, dtype=dtype, seed=seed)
    if distribution == "uniform":
        return keras.random.uniform(shape, minval=-param, maxval=param, dtype=dtype, seed=seed)
    return keras.random.truncated_normal(shape, stddev=param, dtype=dtype, seed=seed)


# -- TensorFlow --------------------------------------------------------------


@functools.cache  # at most 3 distributions x 4 dtypes
def _tf_sampler(distribution: str, dtype: str):
    import tensorflow as tf

    tf_dtype = tf.as_dtype(dtype)

    def sample(shape, seed, param):
        return _tf_op(distribution, shape, seed, tf.cast(param, tf_dtype), tf_dtype)

    signature = [
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([2], tf.int32),
        tf.TensorSpec([], tf.float64),
    ]
    return tf.function(sample, input_signature=signature, autograph=False)


def _draw_tensorflow(distribution, shape, dtype, std, seed):
    import tensorflow as tf

    if isinstance(seed, keras.random.SeedGenerator):
        pair = tf.cast(seed.next(), tf.int64)
    else:
        pair = tf.constant([seed, 0], tf.int64)
    # Keras's TensorFlow seeds are int64 pairs reduced modulo 2**31 - 2 to
    # the int32 the stateless ops take; the same here, so the same stream.
    pair = tf.cast(tf.math.floormod(pair, 2**31 - 2), tf.int32)
    param = sampler_parameter(distribution, std)
    return _tf_sampler(distribution, dtype)(
        tf.constant(shape, tf.int64), pair, tf.constant(param, tf.float64)
    )


# -- PyTorch -----------------------------------------------------------------

_TORCH_CHUNK = 2**20


def _draw_torch(distribution, shape, dtype, std, seed):
    import torch

    out = keras.ops.empty(shape, dtype=dtype)
    if out.device.type == "meta":  # symbolic tracing: no values needed
        return out
    if isinstance(seed, keras.random.SeedGenerator):
        first, second = (int(v) for v in keras.ops.convert_to_numpy(seed.next()))
    else:
        first, second = seed, 0
    generator = torch.Generator(device=out.device)
    # Keras's PyTorch seeding: the pair summed, as uint32.
    generator.manual_seed((first + second) & 0xFFFFFFFF)
    param = sampler_parameter(distribution, std)
    if distribution == "normal":
        return out.normal_(0.0, param, generator=generator)
    if distribution == "uniform":
        return out.uniform_(-param, param, generator=generator)
    # Inverse CDF: u ~ U(-erf(sqrt 2), erf(sqrt 2)) gives sqrt(2)·erfinv(u)
    # ~ N(0, 1) cut at ±2, with no rejected draws. Half precisions are
    # computed in a float32 work buffer, chunk by chunk, and rounded once.
    bound = math.erf(math.sqrt(2.0))
    work_dtype = torch.float64 if out.dtype == torch.float64 else torch.float32
    flat = out.view(-1)
    for start in range(0, flat.numel(), _TORCH_CHUNK):
        part = flat[start : start + _TORCH_CHUNK]
        work = torch.empty(part.shape, dtype=work_dtype, device=part.device)
        work.uniform_(-bound, bound, generator=generator).erfinv_()
        # erfinv is exact to a few ulps; the clamp keeps rounding within ±2.
        work.mul_(math.sqrt(2.0)).clamp_(-2.0, 2.0).mul_(param)
        part.copy_(work)
    return out


# -- JAX ---------------------------------------------------------------------


def jax_sample(distribution: str, key, shape, dtype, param, **kwargs):
    """One `jax.random` draw of `distribution` with sampler parameter `param`.

    `kwargs` go to the `jax.random` function (`out_sharding`, for a draw
    laid out on a mesh).
    """
    import jax

    if distribution == "normal":
        return jax.random.normal(key, shape, dtype, **kwargs) * param
    if distribution == "uniform":
        return jax.random.uniform(key, shape, dtype, -param, param, **kwargs)
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype, **kwargs) * param


@functools.lru_cache(maxsize=64)  # one compiled fill per large shape
def _jax_filler(distribution: str, shape: tuple[int, ...], dtype: str):
    import jax
    import jax.numpy as jnp

    n = math.prod(shape)
    full, rest = divmod(n, LEAN_MIN_SIZE)
    jdtype = jnp.dtype(dtype)

    def chunk(key, size, param):
        return jax_sample(distribution, key, (size,), jdtype, param)

    def fill(key, param):
        param = param.astype(jdtype)
        flat = jnp.zeros((n,), jdtype)

        def body(i, flat):
            part = chunk(jax.random.fold_in(key, i), LEAN_MIN_SIZE, param)
            return jax.lax.dynamic_update_slice(flat, part, (i * LEAN_MIN_SIZE,))

        flat = jax.lax.fori_loop(0, full, body, flat)
        if rest:
            part = chunk(jax.random.fold_in(key, full), rest, param)
            flat = jax.lax.dynamic_update_slice(flat, part, (full * LEAN_MIN_SIZE,))
        return flat.reshape(shape)

    return jax.jit(fill)


def _draw_jax(distribution, shape, dtype, std, seed):
    import jax.numpy as jnp

    if isinstance(seed, keras.random.SeedGenerator):
        key = jnp.asarray(seed.next(), jnp.uint32)
    else:
        key = jnp.asarray([seed, 0], jnp.uint32)
    filler = _jax_filler(distribution, shape, dtype)
    param = sampler_parameter(distribution, std)
    # float32 is the widest parameter JAX takes without x64; it is cast to
    # `dtype` (float64 only exists with x64 on) inside the jit.
    param_dtype = jnp.float64 if dtype == "float64" else jnp.float32
    return filler(key, jnp.asarray(param, param_dtype))
