"""Drawing weights straight into a sharded layout (JAX distribution API).

Under `keras.distribution.DataParallel` or `ModelParallel`, the JAX backend
creates a variable in one of these ways:

- if the initializer's `__call__` has a `layout` parameter, it calls
  `initializer(shape, dtype=dtype, layout=sharding)` with the *global* shape
  and expects an array already laid out by `sharding`;
- otherwise, for a variable of 250 MiB or more (counted over the mesh), it
  traces `initializer.__call__` under `jax.jit(..., out_shardings=sharding)`,
  and below that it draws the whole tensor on one device and then shards it.

The traced way breaks a `keras.random.SeedGenerator` seed: advancing the
generator inside the trace leaks a tracer (`UnexpectedTracerError`; Keras's
own initializers fail the same way). It also bakes the int seed of the call
into the trace, so fresh values per call would rest on JAX not reusing a
cached trace.

Our initializers take `layout`, so they always go the first way: the seed is
drawn in Python on every call, the fans are those of the global shape, and
each device only ever holds its own shard. Up to 2^20 values the values are
those an unsharded call with the same seed gives; above that the unsharded
call fills chunk by chunk (`_draw`), another stream of the same
distribution.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_weightinit._draw import jax_sample, sampler_parameter


def draw_with_layout(
    distribution: str,
    shape: tuple[int, ...],
    dtype: str,
    std: float,
    seed: int | keras.random.SeedGenerator,
    layout: Any,
):
    """Draws `shape` values of standard deviation `std`, laid out by `layout`.

    Args:
        distribution: `"normal"`, `"uniform"` or `"truncated_normal"`.
        shape: The global shape (not a shard's).
        dtype: A standardized float dtype name.
        std: The standard deviation of the result.
        seed: A non-negative int below 2**32, or a `keras.random.SeedGenerator`.
        layout: A `keras.distribution.TensorLayout` or a
            `jax.sharding.Sharding`.

    Returns:
        A `jax.Array` of `shape` and `dtype`, sharded by `layout`.

    Raises:
        ValueError: on a backend other than JAX, the only one whose
            variables pass a layout to initializers.
        TypeError: if `layout` is neither a `TensorLayout` nor a sharding.
    """
    if keras.backend.backend() != "jax":
        raise ValueError(
            "Argument `layout` is only supported on the JAX backend. "
            f"Received: layout={layout!r} with backend={keras.backend.backend()!r}"
        )
    import jax

    if isinstance(layout, keras.distribution.TensorLayout):
        layout = layout.backend_layout
    if not isinstance(layout, jax.sharding.Sharding):
        raise TypeError(
            "Argument `layout` must be a `keras.distribution.TensorLayout` or a "
            f"`jax.sharding.Sharding`. Received: layout={layout!r} "
            f"(of type {type(layout).__name__})"
        )
    if isinstance(seed, keras.random.SeedGenerator):
        # What `seed.next()` does, on host copies: Keras calls us inside
        # `jax.set_mesh`, where arithmetic on the generator's state (itself
        # a variable laid out on the mesh) mixes two kinds of mesh and fails.
        key = np.asarray(seed.state.value)
        seed.state.assign(key + np.array([0, 1], dtype=key.dtype))
    else:
        # The raw key Keras's JAX backend builds from an int seed, so a
        # sharded draw equals an unsharded one of up to 2^20 values.
        key = np.array([seed, 0], dtype="uint32")

    param = sampler_parameter(distribution, std)

    def sample(key, out_sharding=None):
        return jax_sample(distribution, key, shape, dtype, param, out_sharding=out_sharding)

    axis_types = getattr(getattr(layout, "mesh", None), "axis_types", ())
    if axis_types and all(t == jax.sharding.AxisType.Explicit for t in axis_types):
        # Keras calls us inside `jax.sharding.explicit_axes`.
        return sample(key, out_sharding=layout)
    # Called directly with an ordinary sharding: the key is an argument of
    # the jitted function, not a constant of its trace, so no cached trace
    # can repeat an earlier draw.
    return jax.jit(sample, out_shardings=layout)(key)
