"""Signal diagnostics: does the signal survive the trip through the network?

`diagnose(model, data)` runs one batch forward and backward and reports, for
every kernel `initialize` would touch (the same walk over the model: nested
models, wrappers, recurrent layers, attention, composite layers), the mean
and standard deviation of the output of the layer that applies it and the
norm of the gradient of the loss with respect to the kernel. A good
initialization keeps the output std about constant from layer to layer and
the gradient norms within a few orders of magnitude of each other; a bad one
lets either shrink towards zero (vanishing) or grow without bound
(exploding), and `diagnose` flags both.

The outputs are caught during the very forward pass that computes the loss:
each watched layer gets, for the length of that call, an instance-level
`call` that records what it returns (under JAX inside the traced function,
returned as auxiliary output of `jax.value_and_grad`). So composite layers
that call their sublayers in Python (keras-hub's transformer blocks, any
subclassed layer or model) are seen from the inside, and no extractor model
is built. The gradient is computed with the backend's own automatic
differentiation (`tf.GradientTape`, `jax.value_and_grad` or
`torch.autograd.grad`), so the same call works on the TensorFlow, JAX and
PyTorch backends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_weightinit import _graph as graph
from keras_weightinit import _keras_internals as internals
from keras_weightinit import _kinds as table
from keras_weightinit import _residual
from keras_weightinit._table import number, render
from keras_weightinit._validation import (
    check_batch_array,
    check_keras_model,
    check_positive_finite,
    short_repr,
)
from keras_weightinit.activations import is_activation_layer, resolve_activation
from keras_weightinit.report import Rows, plain

__all__ = [
    "Diagnosis",
    "LayerSignal",
    "Thresholds",
    "diagnose",
    "mean_square_loss",
    "seeded_labels",
]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When `diagnose` calls a signal or a gradient vanishing or exploding.

    The *signal* of a layer is the standard deviation of its output over the
    batch and the units. Its *relative gradient* is `||dL/dW|| / ||W||`
    (Frobenius norms, `W` the kernel): one SGD step with learning rate `lr`
    changes the kernel by about `lr` times that fraction, whatever the scale
    of the loss. Its *spread* is its gradient norm divided by the largest
    kernel gradient norm in the model: far below 1, the early layers learn
    much slower than the late ones.

    A layer is flagged

    - `"vanishing signal"` if `std < signal_low`,
    - `"exploding signal"` if `std > signal_high` (or the std is not finite),
    - `"vanishing gradient"` if `relative_grad < grad_low` or
      `spread < spread_low`,
    - `"exploding gradient"` if `relative_grad > grad_high` (or the gradient
      is not finite).

    The defaults suit inputs scaled to a std of about 1:

    - `signal_low=1e-2`: bounded activations (tanh, sigmoid, softmax) keep
      an output std below 1, but a hundredfold drop is a lost signal. A
      20-layer ReLU network with Glorot weights falls below it by layer 12;
      with He weights every layer stays near 0.7.
    - `signal_high=10`: an order of magnitude above the input's scale, as
      SELU with He weights reaches after about 20 layers.
    - `grad_low=1e-3`: at a learning rate of 0.01 the kernel would move by
      less than 1e-5 of its norm per step.
    - `grad_high=1e2`: at a learning rate of 0.01 one step would change the
      kernel by more than its own norm.
    - `spread_low=1e-3`: three orders of magnitude between layers.

    Example:

    >>> Thresholds(signal_low=1e-3).signal_low
    0.001

    Args:
        signal_low: Output std below which a layer's signal is vanishing.
        signal_high: Output std above which a layer's signal is exploding.
        grad_low: Relative gradient below which a gradient is vanishing.
        grad_high: Relative gradient above which a gradient is exploding.
        spread_low: Ratio to the model's largest kernel gradient norm below
            which a layer's gradient is vanishing.
    """

    signal_low: float = 1e-2
    signal_high: float = 1e1
    grad_low: float = 1e-3
    grad_high: float = 1e2
    spread_low: float = 1e-3

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_positive_finite(getattr(self, field.name), field.name)
        if self.signal_low >= self.signal_high:
            raise ValueError(
                "Argument `signal_low` must be smaller than `signal_high`. "
                f"Received: signal_low={self.signal_low}, "
                f"signal_high={self.signal_high}"
            )
        if self.grad_low >= self.grad_high:
            raise ValueError(
                "Argument `grad_low` must be smaller than `grad_high`. "
                f"Received: grad_low={self.grad_low}, grad_high={self.grad_high}"
            )


@dataclasses.dataclass(frozen=True)
class LayerSignal:
    """One row of a `Diagnosis`: one kernel, its layer's output and its gradient.

    Attributes:
        depth: 1 for the first kernel the forward pass reaches, 2 for the
            next, ...
        name: Where to find the kernel: the layer's name, preceded by the
            layers that contain it (`"transformer_layer_0/feedforward_output_dense"`)
            and followed by the weight when the layer has several kernels
            (`"transformer_layer_0/self_attention_layer/query"`,
            `"lstm/recurrent_kernel"`).
        class_name: The class of the layer that owns the kernel, e.g. `"Dense"`.
        kernel_shape: The shape of the kernel.
        mean: Mean of the output of the layer that applies the kernel (the
            projection's own output for the four kernels of an attention
            layer), over the batch and all units, pooled over every call.
        std: Standard deviation of that output.
        grad_norm: Frobenius norm of the loss gradient with respect to the
            kernel; `nan` for a kernel that is not trainable.
        weight_norm: Frobenius norm of the kernel.
        flags: The problems found, e.g. `("vanishing signal",)`.
        layer: The owning layer's own name (as `InitReport` rows name it).
        weight: Which kernel of the layer (`"kernel"`, `"pointwise_kernel"`,
            `"recurrent_kernel"`, `"embeddings"`, `"query"`, ...).
        note: A status that is not a problem, e.g. `ZEROED_BRANCH` for a
            kernel inside a residual branch whose end weight is zero: its
            small gradient is not flagged as vanishing.
    """

    depth: int
    name: str
    class_name: str
    kernel_shape: tuple[int, ...]
    mean: float
    std: float
    grad_norm: float
    weight_norm: float
    flags: tuple[str, ...] = ()
    layer: str = ""
    weight: str = "kernel"
    note: str = ""

    @property
    def relative_grad(self) -> float:
        """`grad_norm / weight_norm` (`inf` for a zero kernel with a gradient)."""
        if self.weight_norm > 0:
            return self.grad_norm / self.weight_norm
        return math.inf if self.grad_norm > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Diagnosis(Rows):
    """What `diagnose` measured, one `LayerSignal` per kernel.

    `str(diagnosis)` is a table; `diagnosis.plot()` draws the output std and
    the gradient norm against depth on log scales. Iterating gives the rows;
    `diagnosis[0]` is the first row, `diagnosis["dense_1"]` the rows of the
    layer (or path) of that name, as `InitReport` does (the lookup both
    share, see `keras_weightinit.report.Rows`); `rows()` gives the rows as
    dicts, with `relative_grad`, and `to_dict()` the whole result.

    Attributes:
        layers: The rows, in the order the forward pass reached them.
        loss: The value of the loss on the batch.
        input_std: Standard deviation of the first floating-point model input
            (NaN when every input holds integers, such as token ids).
        thresholds: The `Thresholds` the flags were computed with.
        loss_name: Which loss was used: `"mean(y²)"`, `"cross-entropy
            against seeded random labels"` (softmax or sigmoid outputs without
            targets), or the name of the loss used with the targets.
        not_called: Kernels of the model whose layer the forward pass never
            called on this batch (so there is nothing to measure).
    """

    layers: tuple[LayerSignal, ...]
    loss: float
    input_std: float
    thresholds: Thresholds
    loss_name: str = "mean(y²)"
    not_called: tuple[str, ...] = ()

    _noun = "diagnosis"

    def _names(self, row: LayerSignal) -> tuple[str, ...]:
        return (row.name, row.layer)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for pandas, JSON, ...), with `relative_grad`."""
        return [{**plain(dataclasses.asdict(r)), "relative_grad": r.relative_grad} for r in self]

    @property
    def flagged(self) -> tuple[LayerSignal, ...]:
        """The layers with at least one flag."""
        return tuple(row for row in self.layers if row.flags)

    @property
    def ok(self) -> bool:
        """True when no layer is flagged."""
        return not self.flagged

    @property
    def stds(self) -> np.ndarray:
        """The output std of every layer, input side first."""
        return np.array([row.std for row in self.layers])

    @property
    def grad_norms(self) -> np.ndarray:
        """The kernel gradient norm of every layer, input side first."""
        return np.array([row.grad_norm for row in self.layers])

    def to_dict(self) -> dict[str, Any]:
        """The diagnosis as plain Python data (for JSON, pandas, ...); `"layers"` is `rows()`."""
        return {
            "loss": self.loss,
            "input_std": self.input_std,
            "loss_name": self.loss_name,
            "thresholds": dataclasses.asdict(self.thresholds),
            "layers": self.rows(),
            "not_called": list(self.not_called),
        }

    def table(self) -> str:
        """The diagnosis as a fixed-width text table, with a summary line."""
        header = ("depth", "layer", "kernel", "mean", "std", "grad norm", "grad/weight", "flags")
        rows = [
            (
                str(row.depth),
                f"{row.name} ({row.class_name})",
                "x".join(map(str, row.kernel_shape)),
                number(row.mean, signed=True),
                number(row.std),
                number(row.grad_norm),
                number(row.relative_grad),
                "; ".join(filter(None, [", ".join(row.flags), row.note])) or "ok",
            )
            for row in self.layers
        ]
        summary = (
            f"loss {number(self.loss)} ({self.loss_name}), input std {number(self.input_std)}; "
            + (
                "no layer flagged"
                if self.ok
                else f"{len(self.flagged)} of {len(self.layers)} layers flagged"
            )
        )
        lines = [render(header, rows, right=(0, 3, 4, 5, 6)), summary]
        if self.not_called:
            lines.append(f"not called on this batch: {', '.join(self.not_called)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"<Diagnosis loss_name={self.loss_name!r} kernels={len(self.layers)} "
            f"flagged={len(self.flagged)}>"
        )

    def plot(self, axes=None, label: str | None = None):
        """Plots output std and gradient norm against depth, log scale.

        Args:
            axes: Optional pair of matplotlib axes to draw into (std, grad);
                call `plot` several times with the same axes and a `label`
                to compare initializers. By default a new figure is made.
            label: Legend label for the two lines.

        Returns:
            The matplotlib `Figure`.
        """
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        else:
            fig = axes[0].figure
        depth = [row.depth for row in self.layers]
        with np.errstate(invalid="ignore"):
            std = np.where(self.stds > 0, self.stds, np.nan)
            grad = np.where(self.grad_norms > 0, self.grad_norms, np.nan)
        axes[0].plot(depth, std, marker="o", markersize=3, label=label)
        axes[1].plot(depth, grad, marker="o", markersize=3, label=label)
        for ax, title in zip(axes, ("output std", "kernel gradient norm")):
            ax.set_yscale("log")
            ax.set_xlabel("depth (kernel, in forward order)")
            ax.set_title(title)
            ax.grid(True, which="major", alpha=0.3)
        t = self.thresholds
        for y in (t.signal_low, t.signal_high):
            axes[0].axhline(y, color="grey", linestyle=":", linewidth=1)
        if label is not None:
            axes[0].legend(fontsize="small")
        return fig


MEAN_SQUARE = "mean(y²)"
SEEDED_CROSS_ENTROPY = "cross-entropy against seeded random labels"


def mean_square_loss(outputs: Sequence[Any]):
    """The default loss when no targets are given: `mean(y²)`.

    The mean over the batch and the units of the squared outputs, summed
    over the model's outputs. Its gradient with respect to an output is
    `2·y / n`, so it sends back the network's own output as error signal:
    it measures how well the network carries a signal backwards without
    needing labels. (`diagnose` uses it for every output that is not a
    softmax or a sigmoid; see `seeded_labels` for those.)
    """
    total = 0.0
    for y in outputs:
        total = total + keras.ops.mean(keras.ops.square(keras.ops.cast(y, "float32")))
    return total


def seeded_labels(shape: tuple[int, ...], output_index: int, kind: str) -> np.ndarray:
    """The labels `diagnose` draws for a softmax or sigmoid output without targets.

    For output number `output_index` (0 for the first) of shape `shape`, they
    come from `np.random.default_rng(output_index)`: class indices uniform in
    `[0, classes)` of shape `shape[:-1]` for a softmax over the last axis,
    zeros and ones of shape `shape` for a sigmoid. Uniform random labels give
    a cross-entropy gradient `p - onehot` of order one whatever the logits,
    where `mean(y²)` of probabilities is nearly flat.

    >>> seeded_labels((4, 3), 0, "softmax").shape
    (4,)
    >>> sorted(set(seeded_labels((50, 2), 0, "sigmoid").ravel().tolist()))
    [0, 1]
    """
    rng = np.random.default_rng(output_index)
    if kind == "softmax":
        return rng.integers(0, shape[-1], size=shape[:-1]).astype("int32")
    return rng.integers(0, 2, size=shape).astype("int32")


class _ArgumentError(ValueError):
    """A ValueError about an argument, raised from inside the forward pass."""


# -- the arguments -----------------------------------------------------------


def _nested_numbers(value: list | tuple) -> bool:
    """A (nested) Python list of numbers is one array; a list of arrays is several."""
    return bool(value) and all(
        isinstance(v, (int, float)) or (isinstance(v, (list, tuple)) and _nested_numbers(v))
        for v in value
    )


def _batch(value: Any, arg: str) -> tuple[Any, list[np.ndarray]]:
    """`data` or `targets` as NumPy arrays in its structure, and flattened."""
    if isinstance(value, dict):
        if not value or not all(isinstance(k, str) for k in value):
            raise ValueError(
                f"Argument `{arg}` as a dict must map input names (str) to arrays. "
                f"Received: {arg}={short_repr(value)}"
            )
        arrays: Any = {k: check_batch_array(v, arg, f"[{k!r}]") for k, v in value.items()}
        flat = list(arrays.values())
    elif isinstance(value, (list, tuple)) and not value:
        raise ValueError(f"Argument `{arg}` must hold at least one array. Received: {arg}=[]")
    elif isinstance(value, (list, tuple)) and not _nested_numbers(value):
        arrays = [check_batch_array(v, arg, f"[{i}]") for i, v in enumerate(value)]
        flat = arrays
    else:
        arrays = check_batch_array(value, arg, "")
        flat = [arrays]
    sizes = sorted({a.shape[0] for a in flat})
    if len(sizes) > 1:
        raise ValueError(
            f"Every array in `{arg}` must hold the same number of examples. "
            f"Received: {arg} with batch sizes {sizes}"
        )
    return arrays, flat


def _fit_inputs(model, arrays: Any, flat: list[np.ndarray]) -> Any:
    """Checks `data` against the model's declared inputs; returns it as the model wants it."""
    container = graph.graph_of(model)
    struct = internals.inputs_struct(container)
    if struct is None:
        return arrays  # no graph: the forward pass is the check
    expected = keras.tree.flatten(struct)
    if isinstance(struct, dict):
        if not isinstance(arrays, dict) or set(arrays) != set(struct):
            raise ValueError(
                f"Argument `data` must be a dict with the model's input names "
                f"{sorted(struct)}. Received: data="
                f"{sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__}"
            )
        pairs = [(struct[k], arrays[k]) for k in struct]
    elif isinstance(arrays, dict):
        names = [t.name for t in expected]
        if set(arrays) != set(names):
            raise ValueError(
                f"Argument `data` as a dict must use the model's input names "
                f"{names}. Received: data with keys {sorted(arrays)}"
            )
        pairs = [(t, arrays[t.name]) for t in expected]
    else:
        pairs = list(zip(expected, flat)) if len(expected) == len(flat) else []
    fits = len(pairs) == len(expected) and all(
        len(t.shape) == a.ndim and all(d is None or d == h for d, h in zip(t.shape, a.shape))
        for t, a in pairs
    )
    if not fits:
        raise ValueError(
            f"Argument `data` does not fit the model's input: the model expects "
            f"{len(expected)} input(s) of shape(s) {[tuple(t.shape) for t in expected]}. "
            f"Received: data of shape(s) {[a.shape for a in flat]}"
        )
    if isinstance(struct, (list, tuple)) and not isinstance(arrays, (list, tuple, dict)):
        return [arrays]
    if isinstance(struct, keras.KerasTensor) and isinstance(arrays, (list, tuple)):
        return arrays[0]
    return arrays


def _check_model(model) -> None:
    check_keras_model(model)
    if not model.built:
        raise TypeError(
            "Argument `model` must be built: give it a `keras.Input(...)`, call "
            "`model.build(input_shape)`, or call it on a batch first. Received: "
            f"model={model.name!r} (of type {type(model).__name__}, not built)"
        )


# -- which kernels, and which layer's output goes with each -------------------


@dataclasses.dataclass
class _Kernel:
    name: str  # the row's name
    owner: Any  # the layer the user sees
    weight: str
    variable: Any
    watched: Any  # the layer whose output the row reports


def _path(layer, w: graph.Walk, model) -> str:
    names = [layer.name]
    parent = w.parent.get(id(layer))
    while parent is not None and parent is not model:
        names.append(parent.name)
        parent = w.parent.get(id(parent))
    return "/".join(reversed(names))


def _slots(layer) -> list[tuple[str, Any, Any]]:
    """(weight, variable, watched layer) for each kernel of one walked layer."""
    try:
        slots = table.kernel_slots(layer)
    except table.NotUnderstood:
        # A layer the table does not know, with a `kernel` of its own.
        kernel = getattr(layer, "kernel", None)
        return [("kernel", kernel, layer)] if isinstance(kernel, keras.Variable) else []
    out = []
    for slot in slots or []:
        # A recurrent cell runs inside the backend's loop (a traced scan under
        # JAX): its layer's output is the one that can be caught.
        inner = slot.role not in (table.RNN_INPUT, table.RECURRENT)
        out.append((slot.weight, slot.variable, slot.holder if inner else slot.owner))
    return out


def _model_kernels(model) -> list[_Kernel]:
    w = graph.walk(model)
    kernels = []
    for layer in w.layers:
        slots = _slots(layer)
        path = _path(layer, w, model)
        for weight, variable, watched in slots:
            name = path if len(slots) == 1 else f"{path}/{weight}"
            kernels.append(_Kernel(name, layer, weight, variable, watched))
    if not kernels:
        raise ValueError(
            "The model has no layer with a kernel to diagnose. "
            f"Received: model with layers {[layer.name for layer in w.layers]}"
        )
    return kernels


def _select(kernels: list[_Kernel], layers) -> list[_Kernel]:
    """The kernels `layers` names, in the order given."""
    if layers is None:
        return kernels
    if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, (list, tuple)):
        raise TypeError(
            "Argument `layers` must be a list of layer names or layers. "
            f"Received: layers={short_repr(layers)} (of type {type(layers).__name__})"
        )
    if not layers:
        raise ValueError("Argument `layers` must name at least one layer. Received: layers=[]")
    chosen: list[_Kernel] = []
    for item in layers:
        if isinstance(item, str):
            picked = [k for k in kernels if k.name == item]
            picked = picked or [
                k for k in kernels if item in (k.owner.name, k.name.rsplit("/", 1)[0])
            ]
        elif isinstance(item, keras.layers.Layer):
            picked = [k for k in kernels if item is k.owner or item is k.watched]
        else:
            raise TypeError(
                "Every entry of `layers` must be a layer name or a layer. "
                f"Received: layers entry {short_repr(item)} (of type {type(item).__name__})"
            )
        if not picked:
            raise ValueError(
                "Every entry of `layers` must be a layer of the model with a "
                f"kernel. Received: layers entry {short_repr(item)}"
            )
        chosen += [k for k in picked if all(k is not c for c in chosen)]
    return chosen


# -- the loss ----------------------------------------------------------------


def _final_activation(op) -> str | None:
    """`"softmax"`/`"sigmoid"` if `op` ends in one over the last axis, else None."""
    inner = graph.graph_of(op)
    if inner is not None:
        outs = keras.tree.flatten(inner.outputs)
        return _final_activation(internals.producer(outs[0])) if len(outs) == 1 else None
    if is_activation_layer(op):
        activation = op
    else:
        activation = getattr(op, "activation", None)
        if activation is None:
            return None
    try:
        resolved = resolve_activation(activation)
    except (ValueError, TypeError):
        return None
    if resolved.name == "sigmoid":
        return "sigmoid"
    if resolved.name == "softmax" and resolved.params.get("axis", -1) == -1:
        return "softmax"
    return None


def _output_kinds(model) -> list[str | None] | None:
    container = graph.graph_of(model)
    if container is None:
        return None
    return [_final_activation(internals.producer(t)) for t in keras.tree.flatten(container.outputs)]


def _seeded_cross_entropy(y, index: int, kind: str):
    shape = tuple(int(d) for d in y.shape)
    if kind == "softmax" and shape[-1] < 2:
        return None
    labels = keras.ops.convert_to_tensor(seeded_labels(shape, index, kind))
    y = keras.ops.cast(y, "float32")
    if kind == "softmax":
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, y))
    return keras.ops.mean(keras.losses.binary_crossentropy(keras.ops.cast(labels, "float32"), y))


def _default_loss(model) -> tuple[Callable, str]:
    kinds = _output_kinds(model)
    used: list[str] = []

    def compute(outputs):
        used.clear()
        total = 0.0
        for i, y in enumerate(outputs):
            kind = kinds[i] if kinds is not None and i < len(kinds) else None
            term = _seeded_cross_entropy(y, i, kind) if kind else None
            if term is None:
                term, name = mean_square_loss([y]), MEAN_SQUARE
            else:
                name = SEEDED_CROSS_ENTROPY
            used.append(name)
            total = total + term
        return total

    return compute, used


def _loss_label(loss) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__


def _target_fits(target: tuple[int, ...], output: tuple[int, ...]) -> bool:
    """Same shape, or sparse labels (the output without its last axis, or with it as 1)."""
    return target == output or target == output[:-1] or target == (*output[:-1], 1)


def _targets_loss(model, targets, loss, n: int) -> tuple[Callable, str]:
    if loss is None:
        compiled = getattr(model, "loss", None)
        loss = compiled if isinstance(compiled, str) or callable(compiled) else "mse"
    try:
        loss_fn = keras.losses.get(loss)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Argument `loss` must be a Keras loss (a name, a function or a "
            f"`keras.losses.Loss`). Received: loss={short_repr(loss)} ({error})"
        ) from None
    if not callable(loss_fn):
        raise TypeError(f"Argument `loss` must be callable. Received: loss={short_repr(loss)}")
    _, flat = _batch(targets, "targets")
    if flat[0].shape[0] != n:
        raise ValueError(
            f"Argument `targets` must hold one target per example of `data` ({n}). "
            f"Received: targets with {flat[0].shape[0]} example(s)"
        )
    target_list = [keras.ops.convert_to_tensor(t) for t in flat]

    def compute(outputs):
        if len(outputs) != len(target_list):
            raise _ArgumentError(
                f"Argument `targets` must hold one array per model output: the model "
                f"has {len(outputs)} output(s). Received: targets holding "
                f"{len(target_list)} array(s)"
            )
        total = 0.0
        for i, (y_true, y_pred) in enumerate(zip(target_list, outputs)):
            got = tuple(int(d) for d in y_true.shape)
            want = tuple(int(d) for d in y_pred.shape)
            if not _target_fits(got, want):
                raise _ArgumentError(
                    f"Argument `targets` must match the model's output {i} of shape "
                    f"{want} (or hold class indices of shape {want[:-1]}). "
                    f"Received: targets[{i}] of shape {got}"
                )
            total = total + keras.ops.mean(loss_fn(y_true, y_pred))
        return total

    return compute, _loss_label(loss)


# -- one forward and backward pass, catching the watched layers' outputs -------


class _Catcher:
    """Instance-level `call` wrappers that record what each watched layer returns."""

    def __init__(self, layers: list):
        self.layers = layers
        self.caught: dict[int, list] = {}
        self.order: list[int] = []

    def reset(self) -> None:
        self.caught = {id(layer): [] for layer in self.layers}
        self.order = []

    def __enter__(self):
        self.reset()
        self.installed = []
        for layer in self.layers:
            if "call" in layer.__dict__:
                continue
            layer.__dict__["call"] = self._wrap(layer, layer.call)
            self.installed.append(layer)
        return self

    def __exit__(self, *exc):
        for layer in self.installed:
            layer.__dict__.pop("call", None)
        return False

    def _wrap(self, layer, call: Callable) -> Callable:
        key = id(layer)

        def watched(*args, **kwargs):
            out = call(*args, **kwargs)
            flat = keras.tree.flatten(out)
            if flat:
                if not self.caught[key]:
                    self.order.append(key)
                self.caught[key].append(flat[0])
            return out

        return watched

    def snapshot(self) -> dict[int, list]:
        return dict(self.caught)


def _forward_backward(model, inputs, loss_fn, variables, catcher: _Catcher):
    """Returns (loss, caught outputs, call order, gradients of `variables`)."""
    backend = keras.backend.backend()
    trainable = [v for v in variables if v.trainable]
    if backend == "tensorflow":
        import tensorflow as tf

        with catcher, tf.GradientTape() as tape:
            outs = model(inputs, training=False)
            loss = loss_fn(keras.tree.flatten(outs))
        caught = catcher.snapshot()
        grads = tape.gradient(loss, trainable) if trainable else []
    elif backend == "jax":
        import jax

        tv, ntv = model.trainable_variables, model.non_trainable_variables
        position = {id(v): i for i, v in enumerate(tv)}
        trainable = [v for v in trainable if id(v) in position]
        base = [v.value for v in tv]
        fixed = [v.value for v in ntv]
        # `stateless_call` calls `model.call` itself, without `__call__`'s
        # filtering of the arguments that `call` does not take.
        training = {"training": False} if internals.call_has_training_arg(model) else {}

        def forward(values):
            full = list(base)
            for v, value in zip(trainable, values):
                full[position[id(v)]] = value
            catcher.reset()
            outs, _ = model.stateless_call(full, fixed, inputs, **training)
            return loss_fn(keras.tree.flatten(outs)), catcher.snapshot()

        with catcher:
            # One compilation of the whole pass: op by op, JAX compiles every
            # primitive on its own and a convolutional model takes minutes.
            step = jax.jit(jax.value_and_grad(forward, has_aux=True))
            (loss, caught), grads = step([v.value for v in trainable])
    elif backend == "torch":
        import torch

        with catcher:
            outs = model(inputs, training=False)
            loss = loss_fn(keras.tree.flatten(outs))
        caught = catcher.snapshot()
        grads = (
            torch.autograd.grad(loss, [v.value for v in trainable], allow_unused=True)
            if trainable
            else []
        )
    else:  # pragma: no cover - numpy/openvino cannot differentiate
        raise RuntimeError(
            "diagnose needs a backend with automatic differentiation "
            f"(tensorflow, jax or torch). Received: backend={backend!r}"
        )
    by_variable = {id(v): g for v, g in zip(trainable, grads)}
    # The call order is Python state: under JAX, that of the (single) trace.
    return loss, caught, list(catcher.order), by_variable


# -- the rows ------------------------------------------------------------------


def _numpy(x) -> np.ndarray:
    if keras.backend.backend() == "torch" and hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")), dtype=np.float64)


def _pooled(outputs: list) -> tuple[float, float]:
    values = np.concatenate([_numpy(o).ravel() for o in outputs])
    with np.errstate(all="ignore"):
        return float(values.mean()), float(values.std())


def _norm(x) -> float:
    values = _numpy(x)
    with np.errstate(all="ignore"):
        return float(np.sqrt(np.sum(values * values)))


ZEROED_BRANCH = "zeroed residual branch: its gradient arrives once the branch's {weight} moves"


def _zeroed(model) -> dict[int, str]:
    """id(kernel) -> note, for the kernels inside a branch whose end weight is exactly zero."""
    notes: dict[int, str] = {}
    for branch in _residual.find(model):
        end = _residual.end_variable(branch)
        if end is None or np.any(_numpy(end.value) != 0):
            continue
        weight = "gamma" if branch.kind == _residual.GAMMA else "last kernel"
        for variable in _residual.branch_kernels(branch):
            notes.setdefault(id(variable), ZEROED_BRANCH.format(weight=weight))
    return notes


def _flags(row: LayerSignal, largest: float, trainable: bool, t: Thresholds):
    flags = []
    if not math.isfinite(row.std) or row.std > t.signal_high:
        flags.append("exploding signal")
    elif row.std < t.signal_low:
        flags.append("vanishing signal")
    if not trainable:
        return tuple(flags)
    relative = row.relative_grad
    if not math.isfinite(relative) or relative > t.grad_high:
        flags.append("exploding gradient")
    elif relative < t.grad_low or (largest > 0 and row.grad_norm / largest < t.spread_low):
        flags.append("vanishing gradient")
    return tuple(flags)


def _rows(kernels, caught, grads, thresholds, zeroed) -> list[LayerSignal]:
    norms = []
    for k in kernels:
        grad = grads.get(id(k.variable))
        if not k.variable.trainable:
            norms.append(math.nan)
        else:
            norms.append(0.0 if grad is None else _norm(grad))
    largest = max((n for n in norms if math.isfinite(n)), default=0.0)
    rows = []
    for depth, (k, norm) in enumerate(zip(kernels, norms), 1):
        mean, std = _pooled(caught[id(k.watched)])
        row = LayerSignal(
            depth=depth,
            name=k.name,
            class_name=type(k.owner).__name__,
            kernel_shape=tuple(int(d) for d in k.variable.shape),
            mean=mean,
            std=std,
            grad_norm=norm,
            weight_norm=_norm(k.variable.value),
            layer=k.owner.name,
            weight=k.weight,
        )
        flags = _flags(row, largest, k.variable.trainable, thresholds)
        note = zeroed.get(id(k.variable), "")
        if note and "vanishing gradient" in flags:
            # Zero by design until the branch's end weight moves, not a fault.
            flags = tuple(f for f in flags if f != "vanishing gradient")
        else:
            note = ""
        rows.append(dataclasses.replace(row, flags=flags, note=note))
    return rows


def _input_std(flat: list[np.ndarray]) -> float:
    """The std of the first floating-point input (NaN if all are integers, e.g. token ids)."""
    floats = [a for a in flat if a.dtype.kind == "f"]
    return float(floats[0].astype(np.float64).std()) if floats else math.nan


def diagnose(
    model: keras.Model,
    data: Any,
    targets: Any = None,
    *,
    loss: Any = None,
    layers: Sequence[str | keras.layers.Layer] | None = None,
    thresholds: Thresholds | None = None,
) -> Diagnosis:
    """Measures each kernel's layer output and gradient on one batch.

    It visits the kernels `initialize` visits, with the same walk over the
    model: layers of nested models, the layers inside `TimeDistributed` and
    `Bidirectional`, both kernels of `LSTM`/`GRU`/`SimpleRNN`, the depthwise
    and pointwise kernels of separable convolutions, grouped convolutions,
    the four projections of `MultiHeadAttention`, embeddings, and the
    sublayers of composite layers (keras-hub's `TransformerEncoder`, its
    GPT-2 and Llama decoder blocks, any subclassed layer). For each kernel
    `W` it records the mean and std of the output of the layer that applies
    it, over the batch and all units (pooled over every call of a layer
    called several times), and `||dL/dW||` (Frobenius norm) for the loss `L`
    on the batch. The rows are in the order the forward pass reaches them.
    The model runs in inference mode (`training=False`); no weight changes.
    It may be Sequential, functional (keras-hub backbones included) or
    subclassed: only the batch is needed, not a graph.

    A kernel inside a residual branch whose end weight is exactly zero (the
    last normalization's gamma, or the last kernel, as `initialize` leaves
    them by default) gets no gradient until that weight moves after the
    first update. Such rows are not flagged "vanishing gradient": their
    `note` says `"zeroed residual branch: ..."` instead, the table shows it,
    and they do not make `Diagnosis.ok` False. The branches are the ones
    `initialize` finds (`keras_weightinit._residual`).

    The loss, and `Diagnosis.loss_name`, which says which one was used:

    - with `targets`: `loss(targets, y)` averaged over the batch, `loss`
      defaulting to the model's compiled loss if it has a single one, else
      mean squared error;
    - without `targets`, for an output that ends in a softmax (over the last
      axis) or a sigmoid: the cross-entropy against labels drawn with a fixed
      seed (`seeded_labels`), whose gradient does not vanish on a healthy
      classifier;
    - without `targets`, for any other output (and for every output of a
      model without a graph): `mean(y²)` (`mean_square_loss`).

    Examples:

    >>> model = keras.Sequential([
    ...     keras.Input((16,)),
    ...     keras.layers.Dense(32, activation="relu"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> result = diagnose(model, np.ones((8, 16), "float32"))
    >>> [(row.depth, row.class_name, row.kernel_shape) for row in result]
    [(1, 'Dense', (16, 32)), (2, 'Dense', (32, 1))]
    >>> result.loss_name
    'mean(y²)'

    Args:
        model: A built Keras model (Sequential, functional or subclassed).
        data: One non-empty batch of inputs, as the model takes them (an
            array or tensor, or a list or dict of them for several inputs),
            of finite numbers. Not a stream of batches (a generator or
            iterator, a `tf.data.Dataset`, a torch `DataLoader`, a
            `keras.utils.PyDataset`): pass one batch of it.
        targets: Optional targets for the batch: one array per model output,
            of the output's shape or (for sparse labels) without its last axis.
        loss: Keras loss (name, function or `keras.losses.Loss`) used with
            `targets`.
        layers: Optional list of layers to report, in the order given: layer
            objects, layer names (every kernel of that layer) or row names
            (`"transformer_layer_0/self_attention_layer/query"`).
        thresholds: The `Thresholds` used to flag layers (default
            `Thresholds()`).

    Returns:
        A `Diagnosis`: `print` it for a table, call `.plot()` for a figure.

    Raises:
        TypeError: if `model` is not a built Keras model, or an argument has
            the wrong type (`data` that is not arrays of numbers, a stream of
            batches, `layers` entries that are neither names nor layers).
        ValueError: for a model without kernels, a bad `layers` entry, a
            `loss` without `targets`, `data` or `targets` that are empty, hold
            NaN/inf, or do not fit the model.
    """
    _check_model(model)
    if thresholds is None:
        thresholds = Thresholds()
    elif not isinstance(thresholds, Thresholds):
        raise TypeError(
            "Argument `thresholds` must be a `Thresholds` instance. "
            f"Received: thresholds={short_repr(thresholds)}"
        )
    if targets is None and loss is not None:
        raise ValueError(
            "Argument `loss` needs `targets`; without targets the loss is "
            f"`mean(y²)` of the outputs. Received: loss={loss!r}, targets=None"
        )
    arrays, flat = _batch(data, "data")
    inputs = _fit_inputs(model, arrays, flat)
    kernels = _select(_model_kernels(model), layers)
    if targets is None:
        loss_fn, used = _default_loss(model)
    else:
        loss_fn, label = _targets_loss(model, targets, loss, flat[0].shape[0])
    catcher = _Catcher(list({id(k.watched): k.watched for k in kernels}.values()))
    try:
        loss_value, caught, order, grads = _forward_backward(
            model, inputs, loss_fn, [k.variable for k in kernels], catcher
        )
    except _ArgumentError:
        raise
    except Exception as error:
        raise ValueError(
            f"Argument `data` does not fit the model {model.name!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    if targets is None:
        label = " + ".join(dict.fromkeys(used))
    missing = [k for k in kernels if not caught.get(id(k.watched))]
    if layers is not None and missing:
        raise ValueError(
            "Every entry of `layers` must be called when the model runs on `data`. "
            f"Received: layers naming {[k.name for k in missing]}, not called"
        )
    called = [k for k in kernels if caught.get(id(k.watched))]
    if layers is None:
        rank = {key: i for i, key in enumerate(order)}
        called.sort(key=lambda k: rank[id(k.watched)])  # stable: slot order kept
    return Diagnosis(
        layers=tuple(_rows(called, caught, grads, thresholds, _zeroed(model))),
        loss=float(_numpy(loss_value)),
        input_std=_input_std(flat),
        thresholds=thresholds,
        loss_name=label,
        not_called=tuple(k.name for k in missing),
    )
