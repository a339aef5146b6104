"""Signal diagnostics: does the signal survive the trip through the network?

`diagnose(model, data)` runs one batch forward and backward and reports, for
every layer that owns a kernel, the mean and standard deviation of the
layer's output and the norm of the gradient of the loss with respect to the
kernel. A good initialization keeps the output std about constant from layer
to layer and the gradient norms within a few orders of magnitude of each
other; a bad one lets either shrink towards zero (vanishing) or grow without
bound (exploding), and `diagnose` flags both.

The gradient is computed with the backend's own automatic differentiation
(`tf.GradientTape`, `jax.value_and_grad` or `torch.autograd.grad`), so the
same call works on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["Diagnosis", "LayerSignal", "Thresholds", "diagnose", "mean_square_loss"]


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
            value = getattr(self, field.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"Argument `{field.name}` must be a positive finite number. "
                    f"Received: {field.name}={value!r}"
                )
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
    """One row of a `Diagnosis`: a layer's output and kernel gradient.

    Attributes:
        depth: 1 for the first layer with a kernel, 2 for the next, ...
        name: The layer's name.
        class_name: The layer's class, e.g. `"Dense"`.
        kernel_shape: The shape of the layer's kernel.
        mean: Mean of the layer's output over the batch and all units.
        std: Standard deviation of the layer's output over the batch and
            all units.
        grad_norm: Frobenius norm of the loss gradient with respect to the
            kernel; `nan` for a kernel that is not trainable.
        weight_norm: Frobenius norm of the kernel.
        flags: The problems found, e.g. `("vanishing signal",)`.
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

    @property
    def relative_grad(self) -> float:
        """`grad_norm / weight_norm` (`inf` for a zero kernel with a gradient)."""
        if self.weight_norm > 0:
            return self.grad_norm / self.weight_norm
        return math.inf if self.grad_norm > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What `diagnose` measured, one `LayerSignal` per layer with a kernel.

    `str(diagnosis)` is a table; `diagnosis.plot()` draws the output std and
    the gradient norm against depth on log scales.

    Attributes:
        layers: The rows, input side first.
        loss: The value of the loss on the batch.
        input_std: Standard deviation of the (first) model input.
        thresholds: The `Thresholds` the flags were computed with.
    """

    layers: tuple[LayerSignal, ...]
    loss: float
    input_std: float
    thresholds: Thresholds

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
        """The diagnosis as plain Python data (for JSON, pandas, ...)."""
        return {
            "loss": self.loss,
            "input_std": self.input_std,
            "thresholds": dataclasses.asdict(self.thresholds),
            "layers": [dataclasses.asdict(row) for row in self.layers],
        }

    def table(self) -> str:
        """The diagnosis as a fixed-width text table."""
        header = (
            "depth",
            "layer",
            "kernel",
            "mean",
            "std",
            "grad norm",
            "grad/weight",
            "flags",
        )
        rows = [
            (
                str(row.depth),
                f"{row.name} ({row.class_name})",
                "x".join(map(str, row.kernel_shape)),
                f"{row.mean:+.3e}",
                f"{row.std:.3e}",
                f"{row.grad_norm:.3e}",
                f"{row.relative_grad:.3e}",
                ", ".join(row.flags) or "ok",
            )
            for row in self.layers
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        right = {0, 3, 4, 5, 6}

        def fmt(cells):
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        lines = [fmt(header), fmt(["-" * w for w in widths])]
        lines += [fmt(r) for r in rows]
        summary = f"loss {self.loss:.4g}, input std {self.input_std:.3g}; " + (
            "no layer flagged"
            if self.ok
            else f"{len(self.flagged)} of {len(self.layers)} layers flagged"
        )
        lines.append(summary)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

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
            ax.set_xlabel("depth (layer with a kernel)")
            ax.set_title(title)
            ax.grid(True, which="major", alpha=0.3)
        t = self.thresholds
        for y in (t.signal_low, t.signal_high):
            axes[0].axhline(y, color="grey", linestyle=":", linewidth=1)
        if label is not None:
            axes[0].legend(fontsize="small")
        return fig


def mean_square_loss(outputs: Sequence[Any]):
    """The default loss when no targets are given: `mean(y²)`.

    The mean over the batch and the units of the squared outputs, summed
    over the model's outputs. Its gradient with respect to an output is
    `2·y / n`, so it sends back the network's own output as error signal:
    it measures how well the network carries a signal backwards without
    needing labels.
    """
    total = 0.0
    for y in outputs:
        total = total + keras.ops.mean(keras.ops.square(keras.ops.cast(y, "float32")))
    return total


def _kernel_layers(model: keras.Model, layers) -> list[keras.layers.Layer]:
    if layers is None:
        found = [
            layer
            for layer in model.layers
            if isinstance(getattr(layer, "kernel", None), keras.Variable)
        ]
        if not found:
            raise ValueError(
                "The model has no layer with a kernel to diagnose. "
                f"Received: model with layers {[layer.name for layer in model.layers]}"
            )
        return found
    chosen = []
    for item in layers:
        layer = model.get_layer(item) if isinstance(item, str) else item
        if not isinstance(getattr(layer, "kernel", None), keras.Variable):
            raise ValueError(
                "Every entry of `layers` must be a layer of the model with a "
                f"kernel. Received: layers entry {item!r}"
            )
        chosen.append(layer)
    return chosen


def _resolve_loss(model, targets, loss) -> Callable:
    """Returns a function `outputs -> scalar loss`."""
    if targets is None:
        if loss is not None:
            raise ValueError(
                "Argument `loss` needs `targets`; without targets the loss is "
                f"`mean(y²)` of the outputs. Received: loss={loss!r}, targets=None"
            )
        return mean_square_loss
    if loss is None:
        compiled = getattr(model, "loss", None)
        loss = compiled if isinstance(compiled, str) or callable(compiled) else "mse"
    loss_fn = keras.losses.get(loss)
    target_list = [keras.ops.convert_to_tensor(t) for t in keras.tree.flatten(targets)]

    def compute(outputs):
        if len(outputs) != len(target_list):
            raise ValueError(
                f"The model has {len(outputs)} output(s) but `targets` holds "
                f"{len(target_list)} array(s)."
            )
        total = 0.0
        for y_true, y_pred in zip(target_list, outputs):
            total = total + keras.ops.mean(loss_fn(y_true, y_pred))
        return total

    return compute


def _gradients(extractor, inputs, loss_fn, kernels, n_out):
    """Forward and backward pass; returns (outputs, loss, kernel grads).

    `extractor(inputs)` returns the reported layers' outputs followed by the
    model's outputs; `loss_fn` reads the last `n_out` of them. Kernels that
    are not trainable get `None`.
    """
    backend = keras.backend.backend()
    trainable = [k for k in kernels if k.trainable]

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outs = extractor(inputs, training=False)
            loss = loss_fn(outs[-n_out:])
        grads = tape.gradient(loss, trainable) if trainable else []
    elif backend == "jax":
        import jax

        tv = extractor.trainable_variables
        ntv = extractor.non_trainable_variables

        def forward(t_values, nt_values):
            outs, _ = extractor.stateless_call(t_values, nt_values, inputs, training=False)
            return loss_fn(outs[-n_out:]), outs

        (loss, outs), t_grads = jax.value_and_grad(forward, has_aux=True)(
            [v.value for v in tv], [v.value for v in ntv]
        )
        by_id = {id(v): g for v, g in zip(tv, t_grads)}
        grads = [by_id.get(id(k)) for k in trainable]
    elif backend == "torch":
        import torch

        outs = extractor(inputs, training=False)
        loss = loss_fn(outs[-n_out:])
        grads = (
            torch.autograd.grad(loss, [k.value for k in trainable], allow_unused=True)
            if trainable
            else []
        )
    else:  # pragma: no cover - numpy/openvino cannot differentiate
        raise RuntimeError(
            "diagnose needs a backend with automatic differentiation "
            f"(tensorflow, jax or torch). Received: backend={backend!r}"
        )
    by_kernel = {id(k): g for k, g in zip(trainable, grads)}
    return outs, loss, [by_kernel.get(id(k)) for k in kernels]


def _as_float(x) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64))


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


def diagnose(
    model: keras.Model,
    data: Any,
    targets: Any = None,
    *,
    loss: Any = None,
    layers: Sequence[str | keras.layers.Layer] | None = None,
    thresholds: Thresholds | None = None,
) -> Diagnosis:
    """Measures each layer's output and kernel gradient on one batch.

    For every layer with a kernel (or those named in `layers`), in the
    model's order, it records the mean and std of the layer's output over
    the batch and all units, and `||dL/dW||` (Frobenius norm) for the
    layer's kernel `W` and the loss `L` on the batch. The model is run in
    inference mode (`training=False`) and no weight is changed.

    The loss is `mean(y²)` over the outputs `y` when `targets` is None (see
    `mean_square_loss`); with targets it is `loss(targets, y)` averaged over
    the batch, where `loss` defaults to the model's compiled loss if it has
    a single one, else mean squared error.

    Examples:

    >>> model = keras.Sequential([
    ...     keras.Input((16,)),
    ...     keras.layers.Dense(32, activation="relu"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> result = diagnose(model, np.ones((8, 16), "float32"))
    >>> [(row.depth, row.class_name, row.kernel_shape) for row in result.layers]
    [(1, 'Dense', (16, 32)), (2, 'Dense', (32, 1))]

    Args:
        model: A built Sequential or functional Keras model. Layers of a
            nested model are not looked into: the nested model counts as
            one layer without a kernel.
        data: One batch of inputs, as the model takes them (an array, or a
            list or dict of arrays for several inputs).
        targets: Optional targets for the batch.
        loss: Keras loss (name, function or `keras.losses.Loss`) used with
            `targets`.
        layers: Optional names or layer objects to report, in the order
            given; each must own a kernel.
        thresholds: The `Thresholds` used to flag layers (default
            `Thresholds()`).

    Returns:
        A `Diagnosis`: `print` it for a table, call `.plot()` for a figure.

    Raises:
        TypeError: if `model` is not a built Sequential or functional model.
        ValueError: for a model without kernels, a bad `layers` entry, a
            `loss` without `targets`, or targets that do not match.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras model. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    if thresholds is None:
        thresholds = Thresholds()
    elif not isinstance(thresholds, Thresholds):
        raise TypeError(
            "Argument `thresholds` must be a `Thresholds` instance. "
            f"Received: thresholds={thresholds!r}"
        )
    try:
        model_inputs = model.inputs
        model_outputs = model.outputs
    except (AttributeError, ValueError):
        model_inputs = model_outputs = None
    if not model_inputs or not model_outputs:
        raise TypeError(
            "Argument `model` must be a built Sequential or functional model "
            "(with known inputs): build it with `keras.Input(...)` first, or "
            "call `model.build(input_shape)`. Received: "
            f"model={model.name!r} (of type {type(model).__name__})"
        )
    chosen = _kernel_layers(model, layers)
    layer_outputs = []
    for layer in chosen:
        try:
            layer_outputs.append(keras.tree.flatten(layer.output)[0])
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"Layer {layer.name!r} has no single output in the model "
                "(a layer shared between several calls cannot be diagnosed): "
                f"{error}"
            ) from None
    final = list(keras.tree.flatten(model_outputs))
    extractor = keras.Model(model_inputs, layer_outputs + final)
    loss_fn = _resolve_loss(model, targets, loss)

    inputs = keras.tree.map_structure(keras.ops.convert_to_tensor, data)
    kernels = [layer.kernel for layer in chosen]
    outs, loss_value, grads = _gradients(extractor, inputs, loss_fn, kernels, len(final))

    first_input = np.asarray(
        keras.ops.convert_to_numpy(keras.tree.flatten(inputs)[0]), dtype=np.float64
    )
    stats = []
    for out in outs[: len(chosen)]:
        values = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
        with np.errstate(all="ignore"):
            stats.append((float(values.mean()), float(values.std())))
    norms = []
    for kernel, grad in zip(kernels, grads):
        if not kernel.trainable:
            norms.append(math.nan)
        elif grad is None:
            norms.append(0.0)
        else:
            g = np.asarray(keras.ops.convert_to_numpy(grad), dtype=np.float64)
            with np.errstate(all="ignore"):
                norms.append(float(np.sqrt(np.sum(g * g))))
    finite = [n for n in norms if math.isfinite(n)]
    largest = max(finite, default=0.0)
    rows = []
    for i, (layer, (mean, std), norm) in enumerate(zip(chosen, stats, norms)):
        w = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)
        row = LayerSignal(
            depth=i + 1,
            name=layer.name,
            class_name=type(layer).__name__,
            kernel_shape=tuple(int(d) for d in layer.kernel.shape),
            mean=mean,
            std=std,
            grad_norm=norm,
            weight_norm=float(np.sqrt(np.sum(w * w))),
        )
        flags = _flags(row, largest, layer.kernel.trainable, thresholds)
        rows.append(dataclasses.replace(row, flags=flags))
    return Diagnosis(
        layers=tuple(rows),
        loss=_as_float(loss_value),
        input_std=float(first_input.std()),
        thresholds=thresholds,
    )
