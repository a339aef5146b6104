"""Argument checks shared by every public entry point.

Each check raises a `ValueError` or `TypeError` that names the argument and
repeats the value received, in Keras's wording ("Received: dtype=int32").
Nothing here touches a backend tensor, so the checks are cheap enough to run
on every call.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

#: Float dtypes an initializer may be asked for.
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """Returns `shape` as a tuple of Python ints, or raises.

    Accepts any iterable of non-negative integers (Python or NumPy ints, a
    `tf.TensorShape` that is fully defined). Rejects `None` dimensions,
    negative or non-integer dimensions, and booleans.
    """
    if shape is None:
        raise ValueError(
            f"Argument `{name}` must be a tuple of non-negative integers. Received: {name}=None"
        )
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(
            f"Argument `{name}` must be a tuple of non-negative integers. "
            f"Received: {name}={shape!r} (of type {type(shape).__name__})"
        )
    if hasattr(shape, "as_list"):  # tf.TensorShape
        try:
            shape = shape.as_list()
        except ValueError:
            raise ValueError(
                f"Argument `{name}` must be fully defined. Received: {name}={shape}"
            ) from None
    dims = []
    for dim in shape:
        if dim is None:
            raise ValueError(
                f"Argument `{name}` must be fully defined, without `None` "
                f"dimensions. Received: {name}={tuple(shape)}"
            )
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
            raise TypeError(
                f"Every dimension of `{name}` must be an integer. Received: {name}={tuple(shape)!r}"
            )
        if dim < 0:
            raise ValueError(
                f"Every dimension of `{name}` must be non-negative. Received: {name}={tuple(shape)}"
            )
        dims.append(int(dim))
    return tuple(dims)


def check_float_dtype(dtype: Any) -> str:
    """Returns the standardized name of a supported float dtype, or raises.

    `None` means `keras.config.floatx()`.
    """
    if dtype is None:
        dtype = keras.config.floatx()
    try:
        name = keras.backend.standardize_dtype(dtype)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            f"Argument `dtype` must be one of {', '.join(FLOAT_DTYPES)}. Received: dtype={dtype!r}"
        ) from None
    if name not in FLOAT_DTYPES:
        raise ValueError(
            "Weights must be floating point: argument `dtype` must be one of "
            f"{', '.join(FLOAT_DTYPES)}. Received: dtype={name}"
        )
    if name == "float64" and keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            # JAX would silently hand back float32 (with a warning).
            raise ValueError(
                "The JAX backend cannot make float64 weights unless 64-bit "
                "mode is on (`jax.config.update('jax_enable_x64', True)` or "
                "JAX_ENABLE_X64=1). Received: dtype=float64"
            )
    return name


def check_positive_finite(value: Any, name: str) -> float:
    """Returns `value` as a float when it is a finite number > 0, or raises."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a positive finite number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(
            f"Argument `{name}` must be a positive finite number. Received: {name}={value}"
        )
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Returns `value` when it is one of `choices`, or raises."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_axes(axes: Any, name: str) -> list[int] | None:
    """Returns `axes` as a list of ints (or `None`), or raises."""
    if axes is None:
        return None
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Sequence):
        raise TypeError(
            f"Argument `{name}` must be a list of integers or None. Received: {name}={axes!r}"
        )
    out = []
    for axis in axes:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(
                f"Argument `{name}` must be a list of integers or None. Received: {name}={axes!r}"
            )
        out.append(int(axis))
    if len(set(out)) != len(out):
        raise ValueError(f"Argument `{name}` must not repeat an axis. Received: {name}={axes!r}")
    return out


_INT64_MAX = 2**63 - 1
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_size(shape: tuple[int, ...], dtype: str) -> None:
    """Raises unless a tensor of `shape` and float `dtype` can be allocated.

    A dimension past the int64 range, or a tensor larger than the machine's
    physical memory (a `.keras` file edited to say `units=10**12`), gets a
    `ValueError` naming the shape and the size, before any backend tries to
    allocate it.
    """
    if any(dim > _INT64_MAX for dim in shape):
        raise ValueError(
            f"Every dimension of `shape` must fit in int64 (at most {_INT64_MAX}). "
            f"Received: shape={shape}"
        )
    nbytes = math.prod(shape) * _ITEMSIZE[dtype]
    memory = _physical_memory()
    if memory is not None and nbytes > memory:
        raise ValueError(
            f"A {dtype} tensor of shape {shape} needs {nbytes} bytes "
            f"({nbytes / 2**30:.4g} GiB), more than this machine's physical "
            f"memory ({memory / 2**30:.4g} GiB). Received: shape={shape}, dtype={dtype}"
        )


def check_fits_dtype(std: float, dtype: str, scale: float) -> None:
    """Raises when weights of standard deviation `std` would overflow `dtype`.

    Ten standard deviations must be representable: no backend's normal
    sampler draws further out than that, and the uniform limit is
    `sqrt(3)·std`. Past it the tensor would hold inf or nan.
    """
    largest = {
        "float16": 65504.0,
        "bfloat16": 3.3895313892515355e38,
        "float32": float(np.finfo(np.float32).max),
        "float64": float(np.finfo(np.float64).max),
    }[dtype]
    if not 10.0 * std <= largest:
        raise ValueError(
            f"Weights of standard deviation {std:.6g} would overflow {dtype} "
            f"(largest value {largest:.6g}): argument `scale` is too large for "
            f"this dtype. Received: scale={scale}, dtype={dtype}"
        )
