"""Argument checks shared by every public entry point.

Each check raises a `ValueError` or `TypeError` that names the argument and
repeats the value received, in Keras's wording ("Received: dtype=int32").
Nothing here runs a model or draws a tensor, so the checks are cheap enough to
run on every call; `check_batch_array` alone converts a backend tensor to NumPy
(the batch `initialize` and `diagnose` read on the host anyway).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import os
from collections.abc import Iterable, Sequence
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


def is_number(value: Any) -> bool:
    """Whether `value` is a real number (Python or NumPy); a bool is not one."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer (Python or NumPy); a bool is not one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_keras_model(model: Any) -> None:
    """Raises TypeError unless `model` is a `keras.Model` (built or not)."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras model. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )


def check_positive_finite(value: Any, name: str) -> float:
    """Returns `value` as a float when it is a finite number > 0, or raises."""
    if not is_number(value):
        raise TypeError(
            f"Argument `{name}` must be a positive finite number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        # "must be positive float." is Keras's own wording (its
        # `VarianceScaling` tests match it); the rest says what that means.
        raise ValueError(
            f"Argument `{name}` must be positive float. A finite number above 0 "
            f"is expected. Received: {name}={value}"
        )
    return value


def check_number(value: Any, name: str) -> float:
    """Returns `value` as a float when it is a real number (not a bool), or raises."""
    if not is_number(value):
        raise TypeError(
            f"Argument `{name}` must be a number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Returns `value` when it is one of `choices`, or raises."""
    if not isinstance(value, str) or value not in choices:
        # "Invalid `mode` argument:" is Keras's own wording, kept so that code
        # matching Keras's messages still matches ours.
        raise ValueError(
            f"Invalid `{name}` argument: {value!r}. Argument `{name}` must be one "
            f"of {', '.join(map(repr, choices))}. Received: {name}={value!r}"
        )
    return value


def check_bool(value: Any, name: str) -> bool:
    """Returns `value` as a bool when it is one (Python or NumPy), or raises.

    A string such as `"False"` or `"no"` is truthy, and `2` is not a flag:
    both are refused rather than read as `True`.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Argument `{name}` must be True or False. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    return bool(value)


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
# bfloat16 has float32's exponent range.
_SMALLEST_NORMAL = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
}


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
    # Backends index a tensor by the product of its dimensions even when one
    # of them is 0 (JAX aborts the interpreter past int64, TensorFlow, PyTorch
    # and NumPy raise their own errors): that product, in bytes, must fit.
    extent = math.prod(dim for dim in shape if dim) * _ITEMSIZE[dtype]
    if extent > _INT64_MAX:
        raise ValueError(
            f"The dimensions of `shape` multiply to {extent // _ITEMSIZE[dtype]} "
            f"(zeros left out), {extent} bytes in {dtype}: past the {_INT64_MAX} "
            "a backend can index, even for an empty tensor. "
            f"Received: shape={shape}, dtype={dtype}"
        )
    nbytes = math.prod(shape) * _ITEMSIZE[dtype]
    memory = _physical_memory()
    if memory is not None and nbytes > memory:
        raise ValueError(
            f"A {dtype} tensor of shape {shape} needs {nbytes} bytes "
            f"({nbytes / 2**30:.4g} GiB), more than this machine's physical "
            f"memory ({memory / 2**30:.4g} GiB). Received: shape={shape}, dtype={dtype}"
        )


def check_fits_dtype(std: float, dtype: str, scale: float, shape: tuple[int, ...]) -> None:
    """Raises when weights of standard deviation `std` would not fit `dtype`.

    Ten standard deviations must be representable: no backend's normal
    sampler draws further out than that, and the uniform limit is
    `sqrt(3)·std`. Past it the tensor would hold inf or nan. At the other
    end the standard deviation must be a normal number of `dtype`: below
    the smallest one (float16: 6.1e-5; bfloat16 and float32: 1.2e-38) the
    draws would be zero or subnormal, a kernel that is all zeros or takes a
    handful of values.
    """
    tiny = _SMALLEST_NORMAL[dtype]
    if not std >= tiny:
        raise ValueError(
            f"Weights of standard deviation {std:.6g} would underflow {dtype} "
            f"(smallest normal value {tiny:.6g}): the kernel would be zero or "
            "take only a few subnormal values. Argument `scale` is too small for "
            f"this shape and dtype. Received: scale={scale}, shape={shape}, dtype={dtype}"
        )
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
            f"this dtype. Received: scale={scale}, shape={shape}, dtype={dtype}"
        )


# -- building blocks for the checks of the other modules -------------------------


def check_finite_real(value: Any, name: str, *, subject: str | None = None) -> float:
    """Returns `value` as a float when it is a finite real number, or raises ValueError.

    `subject` is how the message names the value (default: "Argument `name`"),
    e.g. "The alpha of activation ELU()" for a parameter read off an object.
    """
    subject = subject or f"Argument `{name}`"
    if not is_number(value):
        raise ValueError(f"{subject} must be a real number. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{subject} must be finite. Received: {name}={value}")
    return value


def check_finite_numbers(values: Any, name: str) -> tuple[float, ...]:
    """Returns `values` as a tuple of floats when it is an iterable of finite numbers."""
    message = f"Argument `{name}` must be a sequence of finite numbers. Received: {name}={values!r}"
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise ValueError(message)
    values = tuple(values)  # read once: a generator is not read twice
    if not all(is_number(v) and math.isfinite(v) for v in values):
        raise ValueError(message)
    return tuple(float(v) for v in values)


def check_choice_or_positive(value: Any, name: str, choices: Sequence[str]) -> str | float | None:
    """Returns `value` when it is None, one of `choices` or a positive finite number.

    A string outside `choices` is a ValueError, anything but None, a string or
    a number a TypeError; the number goes through `check_positive_finite`.
    """
    if value is None:
        return None
    expected = (
        f"Argument `{name}` must be None, {', '.join(map(repr, choices))} or a positive number."
    )
    if isinstance(value, str):
        if value not in choices:
            raise ValueError(f"{expected} Received: {name}={value!r}")
        return value
    if not is_number(value):
        raise TypeError(f"{expected} Received: {name}={value!r} (of type {type(value).__name__})")
    return check_positive_finite(value, name)


def check_positive_int(value: Any, name: str) -> int:
    """Returns `value` as an int when it is an integer >= 1, or raises ValueError."""
    if not is_integer(value) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def check_below(value: float, name: str, limit: float) -> float:
    """Returns `value` when it is below `limit`, or raises ValueError."""
    if not value < limit:
        raise ValueError(f"Argument `{name}` must be below {limit:g}. Received: {name}={value}")
    return value


def check_axes_pair(input_axes: Any, output_axes: Any) -> tuple[list[int] | None, list[int] | None]:
    """Returns both axes arguments checked (`check_axes`), given together or not at all."""
    ins = check_axes(input_axes, "input_axes")
    outs = check_axes(output_axes, "output_axes")
    if (ins is None) != (outs is None):
        raise ValueError(
            "Arguments `input_axes` and `output_axes` must be given together. "
            f"Received: input_axes={input_axes}, output_axes={output_axes}"
        )
    return ins, outs


def normalize_axes(axes: Sequence[int], rank: int, name: str) -> list[int]:
    """`axes` as indices in `range(rank)` (negative ones count from the end), or raises."""
    out = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ValueError(
                f"Argument `{name}` holds axis {axis}, which is out of range "
                f"for a kernel of rank {rank}. Received: {name}={list(axes)}"
            )
        out.append(axis % rank)
    return out


def stream_kind(value: Any) -> str | None:
    """What kind of stream of batches `value` is (a generator, a dataset), or None.

    Arrays and tensors are None, even those that are also iterators.
    """
    if isinstance(value, np.ndarray) or hasattr(value, "__array__") or hasattr(value, "shape"):
        return None
    if isinstance(value, collections.abc.Iterator):
        return "a generator" if inspect.isgenerator(value) else "an iterator"
    module = type(value).__module__
    if module.startswith("tensorflow") and hasattr(value, "element_spec"):
        return "a tf.data.Dataset"
    if module.startswith("torch.utils.data"):
        return "a torch DataLoader or Dataset"
    if isinstance(value, keras.utils.PyDataset):
        return "a keras.utils.PyDataset"
    return None


def short_repr(value: Any) -> str:
    """`repr(value)`, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_numpy(value: Any, name: str, where: str) -> np.ndarray:
    kind = type(value).__name__
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"Argument `{name}` must be an array or tensor of numbers (or a list "
            f"or dict of them). Received: {name}{where}={short_repr(value)}"
        )
    stream = stream_kind(value)
    if stream is not None:
        # Taking its first batch would consume a generator behind the user's
        # back, and a dataset's batches usually hold targets too: refused,
        # with the one-line way to pass a batch instead.
        part = 1 if name == "targets" else 0
        raise TypeError(
            f"Argument `{name}` must be one batch (an array or tensor, or a list/dict "
            f"of them), not {stream}: pass one batch, e.g. `x_train[:256]`, or "
            f"`next(iter(dataset))[{part}]` for the {name} of a dataset's first "
            f"(inputs, targets) batch. Received: {name}{where} of type {kind}"
        )
    if isinstance(value, np.ndarray):
        return value
    if not (hasattr(value, "__array__") or hasattr(value, "shape")) and not isinstance(
        value, (int, float, list, tuple)
    ):
        raise TypeError(
            f"Argument `{name}` must be an array or tensor of numbers. "
            f"Received: {name}{where} of type {kind}"
        )
    try:
        return np.asarray(keras.ops.convert_to_numpy(value))
    except Exception:
        raise TypeError(
            f"Argument `{name}` must be an array or tensor of numbers. "
            f"Received: {name}{where}={short_repr(value)} (of type {kind})"
        ) from None


def check_batch_array(value: Any, name: str = "data", where: str = "") -> np.ndarray:
    """One array of a batch (`data`, `targets`) as NumPy, or raises.

    `where` says which array of a list or dict it is (`"[0]"`, `"['x']"`),
    for the message. Refused: None, text, a stream of batches (a generator,
    an iterator, a `tf.data.Dataset`, a torch `DataLoader`, a
    `keras.utils.PyDataset`: pass one batch of it), anything that is not an
    array of numbers, a scalar or an empty batch, NaN or inf. Floats come
    back in `keras.config.floatx()`.
    """
    arr = _as_numpy(value, name, where)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"Argument `{name}` must hold numbers. Received: {name}{where} of dtype {arr.dtype}"
        )
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty batch (its first axis indexes "
            f"examples). Received: {name}{where} of shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(
                f"Argument `{name}` holds {bad} NaN or infinite value(s); every value "
                f"must be finite. Received: {name}{where} of shape {arr.shape}"
            )
        if arr.dtype != np.dtype(keras.config.floatx()):
            arr = arr.astype(keras.config.floatx())
    return arr
