"""One forward pass that measures (and, for LSUV, rescales) layer by layer.

Each layer to watch gets, for the length of one `model(data)` call, an
instance attribute `call` that shadows its class's `call`. Keras's
`Layer.__call__` invokes `self.call`, so the wrapper sees the layer's real
inputs, computed by the layers before it with *their* final weights,
whatever the model is: Sequential, functional with branches and residual
additions, nested, or subclassed. One pass therefore does what LSUV needs:
in forward order, each layer is rescaled on the inputs its already
rescaled predecessors produce. A layer called several times is measured on
its first call.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

#: Fewer examples than this give a noisy estimate of a layer's output std.
MIN_BATCH = 16


def _stream_kind(x: Any) -> str | None:
    """What kind of stream of batches `x` is (a generator, a dataset), or None."""
    if isinstance(x, np.ndarray) or hasattr(x, "__array__") or hasattr(x, "shape"):
        return None  # an array or a tensor (some are iterators too)
    if isinstance(x, collections.abc.Iterator):
        return "a generator" if inspect.isgenerator(x) else "an iterator"
    module = type(x).__module__
    if module.startswith("tensorflow") and hasattr(x, "element_spec"):
        return "a tf.data.Dataset"
    if module.startswith("torch.utils.data"):
        return "a torch DataLoader or Dataset"
    if isinstance(x, keras.utils.PyDataset):
        return "a keras.utils.PyDataset"
    return None


def _to_numpy(x: Any, where: str) -> np.ndarray:
    kind = _stream_kind(x)
    if kind is not None:
        # Taking its first batch would consume a generator behind the user's
        # back, and a dataset's batches usually hold targets too: refused,
        # with the one-line way to pass a batch instead.
        raise TypeError(
            f"Argument `data` must be one batch of inputs (an array or tensor, or a "
            f"list/dict of them), not {kind}: pass one batch, e.g. "
            "`x_train[:256]`, or `next(iter(dataset))[0]` for the inputs of a "
            f"dataset's first (inputs, targets) batch. Received: data{where} of "
            f"type {type(x).__name__}"
        )
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(keras.ops.convert_to_numpy(x))
        except Exception:
            raise TypeError(
                "Argument `data` must hold arrays or tensors of numbers. "
                f"Received: data{where} of type {type(x).__name__}"
            ) from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"Argument `data` must hold numbers. Received: data{where} of dtype {arr.dtype}"
        )
    if arr.ndim == 0:
        raise ValueError(
            "Argument `data` must be a batch (its first axis indexes examples). "
            f"Received: data{where} of shape ()"
        )
    if arr.dtype.kind == "f":
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(
                f"Argument `data` holds {bad} NaN or infinite value(s); every "
                f"value must be finite. Received: data{where} of shape {arr.shape}"
            )
        if arr.dtype != np.dtype(keras.config.floatx()):
            arr = arr.astype(keras.config.floatx())
    return arr


def _expected_shapes(model) -> list[tuple] | None:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return [tuple(t.shape) for t in inputs]


def prepare_data(model, data) -> Any:
    """Checks a batch and returns it as NumPy arrays, or raises."""
    if isinstance(data, dict):
        arrays = {k: _to_numpy(v, f"[{k!r}]") for k, v in data.items()}
        flat = list(arrays.values())
    elif isinstance(data, (list, tuple)):
        arrays = [_to_numpy(v, f"[{i}]") for i, v in enumerate(data)]
        flat = arrays
    else:
        arrays = _to_numpy(data, "")
        flat = [arrays]
    if not flat:
        raise ValueError(f"Argument `data` must hold at least one array. Received: data={data!r}")
    sizes = {a.shape[0] for a in flat}
    if len(sizes) > 1:
        raise ValueError(
            "Every array in `data` must hold the same number of examples. "
            f"Received: data with batch sizes {sorted(sizes)}"
        )
    (n,) = sizes
    if n < MIN_BATCH:
        raise ValueError(
            f"Argument `data` must hold at least {MIN_BATCH} examples, so that "
            "each layer's output std is estimated reliably. Received: data "
            f"with {n} example(s), shape(s) {[a.shape for a in flat]}"
        )
    expected = _expected_shapes(model)
    if expected is not None and not isinstance(arrays, dict):
        got = [a.shape for a in flat]
        fits = len(expected) == len(got) and all(
            len(e) == len(g) and all(d is None or d == h for d, h in zip(e, g))
            for e, g in zip(expected, got)
        )
        if not fits:
            raise ValueError(
                "Argument `data` does not fit the model's input: the model "
                f"expects {len(expected)} input(s) of shape(s) {expected}. "
                f"Received: data of shape(s) {got}"
            )
    # Hand the model its inputs in the structure it was built with (a
    # functional model built on `[inp]` wants a list even for one input).
    from keras_weightinit._graph import graph_of

    struct = getattr(graph_of(model), "_inputs_struct", None)
    if isinstance(struct, (list, tuple)) and not isinstance(arrays, (list, dict)):
        arrays = [arrays]
    elif isinstance(struct, keras.KerasTensor) and isinstance(arrays, list) and len(arrays) == 1:
        arrays = arrays[0]
    return arrays


def output_std(x: Any) -> float:
    """Std over every element of a tensor (float64, mean removed)."""
    if isinstance(x, (list, tuple)):
        x = x[0]
    arr = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")), dtype=np.float64)
    return float(arr.std())


class Unit:
    """One layer to measure, and the kernel LSUV may rescale.

    Attributes:
        layer: The layer whose `call` is watched.
        target: The kernel variable LSUV rescales (None: measure only).
        std: Output std measured in the last pass (None if not called).
        factor: Product of the LSUV rescaling factors.
        iterations: LSUV steps taken.
        converged: Whether LSUV met the tolerance.
        note: Why LSUV stopped early, if it did.
    """

    def __init__(self, layer, target=None):
        self.layer = layer
        self.target = target
        self.std: float | None = None
        self.factor = 1.0
        self.iterations = 0
        self.converged: bool | None = None
        self.note = ""
        self._seen = False


def _preactivation(layer, call: Callable, args, kwargs):
    """The layer's output before its own activation (if it has one)."""
    act = getattr(layer, "activation", None)
    if act is None or act is keras.activations.linear or not _has_elementwise_tail(layer):
        return call(*args, **kwargs)
    layer.activation = keras.activations.linear
    try:
        return call(*args, **kwargs)
    finally:
        layer.activation = act


def _has_elementwise_tail(layer) -> bool:
    """Layers whose `call` ends with `self.activation(outputs)`."""
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv

    return isinstance(
        layer,
        (
            keras.layers.Dense,
            keras.layers.EinsumDense,
            BaseConv,
            BaseConvTranspose,
            BaseDepthwiseConv,
            BaseSeparableConv,
        ),
    )


def _rescale(variable, factor: float) -> None:
    value = keras.ops.multiply(variable.value, keras.ops.cast(factor, variable.dtype))
    variable.assign(keras.ops.cast(value, variable.dtype))


def run(model, data, units: list[Unit], *, lsuv: bool, tol: float, max_iter: int) -> None:
    """One forward pass: measures every unit, and with `lsuv` rescales it first.

    LSUV (Mishkin & Matas, 2016): while `|var - 1| > tol` and fewer than
    `max_iter` steps were taken, divide the target kernel by the std of the
    layer's output before its activation, and measure again.
    """
    for unit in units:
        unit._seen = False
        unit.std = None

    def wrap(unit: Unit, call: Callable) -> Callable:
        def watched(*args, **kwargs):
            if unit._seen:
                return call(*args, **kwargs)
            unit._seen = True
            std = output_std(_preactivation(unit.layer, call, args, kwargs))
            if lsuv and unit.target is not None:
                unit.iterations = 0
                unit.converged = False
                while True:
                    if not math.isfinite(std) or std == 0.0:
                        unit.note = f"LSUV stopped: the output std is {std}"
                        break
                    if abs(std * std - 1.0) <= tol:
                        unit.converged = True
                        break
                    if unit.iterations >= max_iter:
                        unit.note = f"LSUV stopped after {max_iter} steps at output std {std:.4g}"
                        break
                    _rescale(unit.target, 1.0 / std)
                    unit.factor /= std
                    unit.iterations += 1
                    std = output_std(_preactivation(unit.layer, call, args, kwargs))
            unit.std = std
            return call(*args, **kwargs)

        return watched

    installed = []
    try:
        for unit in units:
            layer = unit.layer
            if "call" in layer.__dict__:
                continue  # already watched (listed twice)
            layer.__dict__["call"] = wrap(unit, layer.call)
            installed.append(layer)
        model(data, training=False)
    finally:
        for layer in installed:
            layer.__dict__.pop("call", None)
