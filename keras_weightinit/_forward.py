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

What one layer costs (the pass costs about one `model(data)`):

- The pre-activation `z` is computed once, with the layer's activation
  swapped for the identity; the layer's output is then `activation(z)`,
  not a second call of the layer.
- LSUV in one step: when the layer's output is linear in the target kernel
  (Dense, EinsumDense, every convolution; the bias at zero), multiplying
  the kernel by `c` multiplies `z` by `c` exactly, so the kernel is scaled
  by `target_std / std(z)` once and `z` with it. No measure-rescale-verify
  loop. Only a kept bias (`bias="keep"`) or a layer of another kind takes
  the loop of Mishkin & Matas, which calls the layer again after each step.
- No host round trip inside the pass: stds and factors stay backend
  scalars (a zero or non-finite std leaves the kernel as it is, decided on
  the device) and come to the host together at the end.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_weightinit import _keras_internals as internals
from keras_weightinit._validation import check_batch_array

#: Fewer examples than this give a noisy estimate of a layer's output std.
MIN_BATCH = 16


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
        arrays = {k: check_batch_array(v, "data", f"[{k!r}]") for k, v in data.items()}
        flat = list(arrays.values())
    elif isinstance(data, (list, tuple)):
        arrays = [check_batch_array(v, "data", f"[{i}]") for i, v in enumerate(data)]
        flat = arrays
    else:
        arrays = check_batch_array(data, "data")
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

    struct = internals.inputs_struct(graph_of(model))
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


def _device_std(x: Any):
    """Std over every element of a tensor, as a float32 backend scalar (mean removed).

    From the mean and the mean square (two reductions, one temporary), not
    `ops.std`'s three passes; the cancellation costs `eps · mean² / var`
    relative (1e-7 unless the mean dwarfs the std).
    """
    x = keras.ops.cast(x, "float32")
    mean = keras.ops.mean(x)
    power = keras.ops.mean(keras.ops.square(x))
    return keras.ops.sqrt(keras.ops.maximum(power - mean * mean, 0.0))


class Probe:
    """One layer to measure, and the kernel LSUV may rescale.

    Attributes:
        layer: The layer whose `call` is watched.
        target: The kernel variable LSUV rescales (None: measure only).
        target_std: The pre-activation std LSUV aims for (1 unless a scheme
            scales this layer's output on purpose, as a residual branch's
            last layer).
        std: Output std measured in the last pass (None if not called).
        drawn_std: LSUV: the output std before LSUV rescaled the kernel
            (with the kernel as drawn, on the signal the layers before it
            give), measured in the same pass.
        factor: Product of the LSUV rescaling factors.
        iterations: LSUV steps taken (1 for the single-step rescaling).
        converged: Whether LSUV met the tolerance.
        note: Why LSUV stopped early, if it did.
    """

    def __init__(self, layer, target=None, target_std: float = 1.0):
        self.layer = layer
        self.target = target
        self.target_std = float(target_std)
        self.std: float | None = None
        self.drawn_std: float | None = None
        self.factor = 1.0
        self.iterations = 0
        self.converged: bool | None = None
        self.note = ""
        self._seen = False
        self._pending: tuple | None = None  # (std, factor) as backend scalars


def _has_elementwise_tail(layer) -> bool:
    """Layers whose `call` ends with `self.activation(outputs)`."""
    dense = isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
    return dense or internals.is_convolution(layer)


def _tail(layer) -> Callable | None:
    """The activation a layer applies last, if it can be split off its `call`."""
    act = getattr(layer, "activation", None)
    if act is None or act is keras.activations.linear or not _has_elementwise_tail(layer):
        return None
    return act


def _preactivation(layer, call: Callable, args, kwargs):
    """The layer's output before its own activation (if it has one)."""
    act = _tail(layer)
    if act is None:
        return call(*args, **kwargs)
    layer.activation = keras.activations.linear
    try:
        return call(*args, **kwargs)
    finally:
        layer.activation = act


def _linear_in_target(probe: Probe, zero_bias: bool) -> bool:
    """Whether scaling the target kernel by c scales the layer's output by c."""
    if probe.target is None or not _has_elementwise_tail(probe.layer):
        return False
    return zero_bias or getattr(probe.layer, "bias", None) is None


def _rescale(variable, factor) -> None:
    value = keras.ops.multiply(variable.value, keras.ops.cast(factor, variable.dtype))
    variable.assign(keras.ops.cast(value, variable.dtype))


def _step(z, kernel, target):
    """`z` and `kernel` times `target / std(z)` (times 1 if the std is 0 or not finite)."""
    std = _device_std(z)
    usable = keras.ops.logical_and(keras.ops.isfinite(std), keras.ops.greater(std, 0.0))
    factor = keras.ops.where(usable, target / keras.ops.where(usable, std, 1.0), 1.0)
    return (
        keras.ops.multiply(z, keras.ops.cast(factor, z.dtype)),
        keras.ops.multiply(kernel, keras.ops.cast(factor, kernel.dtype)),
        std,
        factor,
    )


@functools.cache
def _compiled_step() -> Callable:
    """`_step` as one compiled call: a dozen eager ops cost as much as a layer.

    TensorFlow traces it once per rank (shapes relaxed); JAX compiles it once
    per shape, on the first call (the cost `benchmarks/lsuv_cost.py` reports
    apart). PyTorch's eager ops are cheap enough as they are.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(_step, reduce_retracing=True, autograph=False)
    if backend == "jax":
        import jax

        return jax.jit(_step)
    return _step


def _one_step(probe: Probe, z):
    """Scales the target kernel and `z` by `target_std / std(z)`; returns the new `z`."""
    target = keras.ops.convert_to_tensor(probe.target_std, "float32")
    z, kernel, std, factor = _compiled_step()(z, probe.target.value, target)
    probe.target.assign(kernel)
    # std(c·z) = c·std(z): the std after, exactly (up to rounding), for free.
    probe._pending = (std * factor, factor, std)
    return z


def _loop(probe: Probe, layer, call: Callable, args, kwargs, tol: float, max_iter: int):
    """Mishkin & Matas's loop: rescale, call again, until within `tol` of the target."""
    target = probe.target_std
    z = _preactivation(layer, call, args, kwargs)
    std = probe.drawn_std = output_std(z)
    probe.iterations = 0
    probe.converged = False
    while True:
        if not math.isfinite(std) or std == 0.0:
            probe.note = f"LSUV stopped: the output std is {std}"
            break
        if abs((std / target) ** 2 - 1.0) <= tol:
            probe.converged = True
            break
        if probe.iterations >= max_iter:
            probe.note = f"LSUV stopped after {max_iter} steps at output std {std:.4g}"
            break
        _rescale(probe.target, target / std)
        probe.factor *= target / std
        probe.iterations += 1
        z = _preactivation(layer, call, args, kwargs)
        std = output_std(z)
    probe.std = std
    return call(*args, **kwargs)


def _settle(probes: list[Probe], lsuv: bool, tol: float) -> None:
    """Brings the stds and factors of one pass to the host, in one transfer."""
    pending = [u for u in probes if u._pending is not None]
    if not pending:
        return
    flat = [keras.ops.cast(t, "float32") for u in pending for t in u._pending]
    values = np.asarray(keras.ops.convert_to_numpy(keras.ops.stack(flat)), dtype=np.float64)
    ends = np.cumsum([len(u._pending) for u in pending])
    for u, row in zip(pending, np.split(values, ends[:-1])):
        u._pending = None
        u.std = float(row[0])
        if not lsuv or u.target is None or row.size == 1:
            continue
        factor, raw = float(row[1]), float(row[2])
        u.drawn_std = raw
        u.factor *= factor
        u.iterations = 1 if factor != 1.0 else 0
        if not math.isfinite(raw) or raw == 0.0:
            u.note = f"LSUV stopped: the output std is {raw}"
            u.converged = False
        else:
            u.converged = abs((u.std / u.target_std) ** 2 - 1.0) <= tol


def run(
    model,
    data,
    probes: list[Probe],
    *,
    lsuv: bool,
    tol: float,
    max_iter: int,
    zero_bias: bool = False,
) -> None:
    """One forward pass: measures every probe, and with `lsuv` rescales it first.

    LSUV (Mishkin & Matas, 2016) sets the std of each target layer's output
    before its activation to the probe's `target_std`: in one step where the
    output is linear in the kernel (`zero_bias`: every bias is zero), else by
    dividing the kernel by the measured std while `|var / target² - 1| > tol`
    and fewer than `max_iter` steps were taken.
    """
    for probe in probes:
        probe._seen = False
        probe.std = probe.drawn_std = None
        probe._pending = None

    def wrap(probe: Probe, call: Callable) -> Callable:
        def watched(*args, **kwargs):
            layer = probe.layer
            if probe._seen:
                return call(*args, **kwargs)
            probe._seen = True
            if lsuv and probe.target is not None and not _linear_in_target(probe, zero_bias):
                return _loop(probe, layer, call, args, kwargs, tol, max_iter)
            act = _tail(layer)
            z = _preactivation(layer, call, args, kwargs)
            if isinstance(z, (list, tuple)):  # several outputs: measure the first
                probe._pending = (_device_std(z[0]),)
                return z
            if lsuv and probe.target is not None:
                z = _one_step(probe, z)
            else:
                probe._pending = (_device_std(z),)
            return z if act is None else act(z)

        return watched

    installed = []
    try:
        for probe in probes:
            layer = probe.layer
            if "call" in layer.__dict__:
                continue  # already watched (listed twice)
            layer.__dict__["call"] = wrap(probe, layer.call)
            installed.append(layer)
        with _no_grad():
            model(data, training=False)
    finally:
        for layer in installed:
            layer.__dict__.pop("call", None)
    _settle(probes, lsuv, tol)


def _no_grad():
    """PyTorch: no autograd graph for a pass whose result is only measured."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    import contextlib

    return contextlib.nullcontext()


def as_backend(data: Any) -> Any:
    """The prepared batch as backend tensors, converted once for every pass."""
    return keras.tree.map_structure(keras.ops.convert_to_tensor, data)


def snapshot(variables: list) -> list:
    """What `restore` needs to put `variables` back, without a host copy.

    TensorFlow reads a variable into a tensor that keeps the old buffer when
    the variable is assigned (copy on write); JAX arrays are immutable;
    PyTorch assigns in place, so its values are cloned on the device.
    """
    backend = keras.backend.backend()
    out = []
    for v in variables:
        value = v.value
        if backend == "tensorflow":
            import tensorflow as tf

            value = tf.identity(value)
        elif backend == "torch":
            value = value.detach().clone()
        out.append((v, value))
    return out


def restore(saved: list) -> None:
    for v, value in saved:
        v.assign(value)
