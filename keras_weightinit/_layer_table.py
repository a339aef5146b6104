"""Which weights of which layer types are kernels, and their true fans.

Keras reads the fans of every kernel from its shape, taking the last axis as
the outputs and the one before it as the inputs. That is right for `Dense`
and ungrouped `ConvND`, and wrong for these layer forms:

| layer                 | kernel shape          | input_axes           | output_axes          |
| --------------------- | --------------------- | -------------------- | -------------------- |
| Dense                 | `(in, out)`           | `[0]`                | `[1]`                |
| ConvND                | `(*k, in, out)`       | spatial + `[-2]`     | spatial + `[-1]`     |
| ConvND, `groups=g`    | `(*k, in/g, out)`     | as ConvND; fan_out = `∏k·out/g` ||
| ConvNDTranspose       | `(*k, out, in)`       | spatial + `[-1]`     | spatial + `[-2]`     |
| DepthwiseConvND       | `(*k, in, mult)`      | spatial              | spatial + `[-1]`     |
| SeparableConvND       | depthwise as above, pointwise `(1.., in·mult, out)` as ConvND |||
| EinsumDense, MHA      | from the equation     | in input only        | in output only       |
| LSTM / GRU / SimpleRNN| `(in, gates·units)`   | `[0]`                | `[1]` (see below)    |
| Embedding             | `(vocab, dim)`        | `[]` (fan_in = 1)    | `[1]`                |
| ReversibleEmbedding, tied | `(vocab, dim)`    | `[1]`                | `[0]`                |
| PositionEmbedding (keras-hub) | `(seq, dim)`  | `[1]`                | `[0]`                |

"spatial" is every axis before the last two; a spatial axis is on both lists
because each output of a convolution sees every tap of the window. The
channel axis of a depthwise kernel is on neither list: each output channel
sees one input channel only. The same rule reads an `EinsumDense` equation:
a kernel axis that appears in the input only is an input axis, one in the
output only an output axis, and one in both (a batch-like axis, as in
`"abc,bcd->abd"`) is on neither list. Keras instead puts such an axis on
the output list.

A grouped convolution (`groups=g`) splits its channels into `g` groups, and
each input channel feeds only the `out/g` outputs of its group: its fan-out
is `∏k·out/g`, which no choice of axes expresses, so `Fans.fan_out` holds it
and the model-level initializer folds the difference into the scale. With
`groups` equal to the channels, `Conv2D(C, k, groups=C)` is
`DepthwiseConv2D(k)` and gets the same fans (`∏k` in, `∏k` out).

A `ReversibleEmbedding` with `tie_weights=True` (Keras's, and keras-hub's
subclass) uses its table twice: as a lookup, and transposed as the output
projection `logits = x @ tableᵀ`. Its fans are the projection's (`fan_in` =
`dim`, read along axis 1), because the projection is the use whose scale
matters (see `keras_weightinit.model_init`). An untied one has a separate
`reverse_embeddings` kernel `(dim, vocab)`, read as a linear map.

keras-hub's `PositionEmbedding` is added to the token embedding, so it is
read with the fans of a tied token table (`fan_in = dim`): its rows get
variance `1/dim`, the token rows' scale, and neither term swamps the other.

Recurrent layers stack one `(in, units)` matrix per gate along the last
axis (4 for LSTM, 3 for GRU, 1 for SimpleRNN). The fan-in of each gate is
`in`, exactly; its fan-out is `units`, which no choice of axes of the
stacked kernel can express, so the model-level initializer reads recurrent
input kernels in `fan_in` mode, where only the (exact) fan-in counts.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import keras

from keras_weightinit.fans import compute_fans

# Roles, which decide how `initialize` treats a kernel.
KERNEL = "kernel"  # a linear map followed by the activation found
LINEAR = "linear"  # a linear map whose output is never activated (Q/K/V, depthwise half)
RECURRENT = "recurrent"  # the hidden-to-hidden kernel of a recurrent cell
RNN_INPUT = "rnn_input"  # the input kernel of a recurrent cell (fan_in mode)
EMBEDDING = "embedding"  # a lookup table (fan_in = 1, fan_in mode)
TIED = "tied"  # a lookup table that is also the output projection (fan_in = dim)


@dataclasses.dataclass(frozen=True)
class Fans:
    """The fans of one kernel, with the axes that give them.

    `fan_in` and `fan_out` are what the model-level initializer uses. They
    equal `compute_fans(shape, input_axes, output_axes)` except for the
    stacked gate kernels of recurrent layers, whose `fan_out` is one gate's
    (`units`), not the stack's.
    """

    fan_in: int
    fan_out: int
    input_axes: list[int]
    output_axes: list[int]


@dataclasses.dataclass
class Slot:
    """One kernel of one layer: where it lives and how to write it back.

    Attributes:
        owner: The layer the user sees (an `LSTM`, a `MultiHeadAttention`).
        holder: The layer whose attribute holds the variable (the `LSTMCell`,
            the query `EinsumDense`); `owner` for most layers.
        weight: The weight's name as the report shows it.
        variable: The kernel variable.
        init_attr: The attribute of `holder` that holds its initializer
            (None: the layer has no initializer of this kernel's own, as the
            `reverse_embeddings` of an untied `ReversibleEmbedding`).
        fans: The kernel's `Fans`.
        role: One of the roles above.
        bias: The bias variable that goes with this kernel, if any.
        bias_attr: The attribute of `holder` that holds the bias initializer.
    """

    owner: Any
    holder: Any
    weight: str
    variable: Any
    init_attr: str | None
    fans: Fans
    role: str
    bias: Any = None
    bias_attr: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)


class NotUnderstood(Exception):
    """A layer whose kernels this table cannot describe (with the reason)."""


def _fans(shape, input_axes, output_axes) -> Fans:
    fan_in, fan_out = compute_fans(shape, input_axes, output_axes)
    return Fans(fan_in, fan_out, list(input_axes), list(output_axes))


def _shape(variable) -> tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def conv_fans(shape, groups: int = 1) -> Fans:
    r = len(shape)
    spatial = list(range(r - 2))
    fans = _fans(shape, spatial + [r - 2], spatial + [r - 1])
    if groups > 1:
        # Each input channel feeds the out/groups outputs of its group only.
        fans = dataclasses.replace(fans, fan_out=fans.fan_out // groups)
    return fans


def conv_transpose_fans(shape) -> Fans:
    r = len(shape)
    spatial = list(range(r - 2))
    return _fans(shape, spatial + [r - 1], spatial + [r - 2])


def depthwise_fans(shape) -> Fans:
    r = len(shape)
    spatial = list(range(r - 2))
    return _fans(shape, spatial, spatial + [r - 1])


def einsum_fans(equation: str, shape) -> Fans:
    """Fans of an `EinsumDense` kernel from the layer's equation."""
    match = re.fullmatch(r"\s*([\w.]*)\s*,\s*(\w*)\s*->\s*([\w.]*)\s*", equation)
    if match is None or len(match.group(2)) != len(shape):
        raise NotUnderstood(f"cannot read the einsum equation {equation!r}")
    inputs, weights, outputs = match.groups()
    input_axes = [i for i, c in enumerate(weights) if c in inputs and c not in outputs]
    output_axes = [i for i, c in enumerate(weights) if c in outputs and c not in inputs]
    return _fans(shape, input_axes, output_axes)


def _own_variables(layer) -> list:
    return list(getattr(layer, "_trainable_variables", [])) + list(
        getattr(layer, "_non_trainable_variables", [])
    )


def _check_plain(layer) -> None:
    if getattr(layer, "quantization_mode", None):
        raise NotUnderstood(f"quantized ({layer.quantization_mode}) kernels are left alone")
    if getattr(layer, "lora_enabled", False):
        raise NotUnderstood("LoRA-enabled kernels are left alone")


def _variable(holder, attr: str):
    """The variable behind `holder.<attr>`, not a computed tensor."""
    value = getattr(holder, "_" + attr, None)
    if not isinstance(value, keras.Variable):
        value = getattr(holder, attr, None)
    if not isinstance(value, keras.Variable):
        raise NotUnderstood(f"`{attr}` is not a variable")
    return value


def _bias(holder):
    if not getattr(holder, "use_bias", True):
        return None
    bias = getattr(holder, "bias", None)
    return bias if isinstance(bias, keras.Variable) else None


def _rnn_gates(cell) -> int | None:
    layers = keras.layers
    if isinstance(cell, layers.LSTMCell):
        return 4
    if isinstance(cell, layers.GRUCell):
        return 3
    if isinstance(cell, layers.SimpleRNNCell):
        return 1
    return None


def kernel_slots(layer) -> list[Slot] | None:
    """The kernels of a built layer, or None for a layer that has none.

    Raises:
        NotUnderstood: for a layer that owns weights this table cannot
            describe (quantized, LoRA, unexpected rank, ...).
    """
    L = keras.layers
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv

    def slot(holder, weight, attr, fans, role, init_attr=None, bias=True, owner=None):
        var = _variable(holder, attr)
        return Slot(
            owner=owner or layer,
            holder=holder,
            weight=weight,
            variable=var,
            init_attr=init_attr or f"{attr}_initializer",
            fans=fans(_shape(var)) if callable(fans) else fans,
            role=role,
            bias=_bias(holder) if bias else None,
            bias_attr="bias_initializer" if bias else None,
        )

    if isinstance(layer, L.MultiHeadAttention):
        if not layer.built:
            raise NotUnderstood("the layer is not built")
        slots = []
        for part in ("query", "key", "value", "output"):
            sub = getattr(layer, f"_{part}_dense")
            _check_plain(sub)
            var = _variable(sub, "kernel")
            # One initializer serves all four projections (the layer has a
            # single `kernel_initializer`), so all four are read as linear.
            slots.append(slot(sub, part, "kernel", einsum_fans(sub.equation, _shape(var)), LINEAR))
        return slots
    if isinstance(layer, (L.Dense, L.EinsumDense, BaseConv, BaseConvTranspose)):
        _check_plain(layer)
        var = _variable(layer, "kernel")
        shape = _shape(var)
        if isinstance(layer, L.Dense):
            if len(shape) != 2:
                raise NotUnderstood(f"a Dense kernel of rank {len(shape)}")
            fans = _fans(shape, [0], [1])
        elif isinstance(layer, L.EinsumDense):
            fans = einsum_fans(layer.equation, shape)
        elif isinstance(layer, BaseConvTranspose):
            fans = conv_transpose_fans(shape)
        else:
            fans = conv_fans(shape, int(getattr(layer, "groups", 1) or 1))
        return [slot(layer, "kernel", "kernel", fans, KERNEL)]
    if isinstance(layer, BaseSeparableConv):
        return [
            slot(
                layer,
                "depthwise_kernel",
                "depthwise_kernel",
                depthwise_fans,
                LINEAR,
                init_attr="depthwise_initializer",
                bias=False,
            ),
            slot(
                layer,
                "pointwise_kernel",
                "pointwise_kernel",
                conv_fans,
                KERNEL,
                init_attr="pointwise_initializer",
            ),
        ]
    if isinstance(layer, BaseDepthwiseConv):
        return [
            # Keras names this variable `kernel`, its initializer
            # `depthwise_initializer`.
            slot(
                layer, "kernel", "kernel", depthwise_fans, KERNEL, init_attr="depthwise_initializer"
            )
        ]
    if isinstance(layer, L.Embedding):
        _check_plain(layer)
        var = _variable(layer, "embeddings")
        if len(_shape(var)) != 2:
            raise NotUnderstood("an Embedding table of rank other than 2")
        if is_reversible(layer) and layer.tie_weights:
            fans = _fans(_shape(var), [1], [0])
            return [slot(layer, "embeddings", "embeddings", fans, TIED, bias=False)]
        if is_reversible(layer):
            reverse = _variable(layer, "reverse_embeddings")
            table_fans = _fans(_shape(var), [], [1])
            out = [
                slot(layer, "embeddings", "embeddings", table_fans, EMBEDDING, bias=False),
                slot(
                    layer,
                    "reverse_embeddings",
                    "reverse_embeddings",
                    _fans(_shape(reverse), [0], [1]),
                    LINEAR,
                    bias=False,
                ),
            ]
            # One initializer serves both tables: the projection's scheme
            # cannot be written into the layer's config.
            out[1].init_attr = None
            return out
        return [
            slot(
                layer,
                "embeddings",
                "embeddings",
                _fans(_shape(var), [], [1]),
                EMBEDDING,
                bias=False,
            )
        ]
    if isinstance(layer, L.RNN) and not isinstance(layer, L.Bidirectional):
        cell = getattr(layer, "cell", None)
        gates = _rnn_gates(cell)
        if gates is None:
            raise NotUnderstood(f"recurrent cell {type(cell).__name__} is not supported")
        kernel = _variable(cell, "kernel")
        _variable(cell, "recurrent_kernel")  # raises if it is not a variable
        units = int(cell.units)
        k_in = _shape(kernel)[0]
        return [
            slot(cell, "kernel", "kernel", Fans(k_in, units, [0], [1]), RNN_INPUT, owner=layer),
            slot(
                cell,
                "recurrent_kernel",
                "recurrent_kernel",
                Fans(units, units, [0], [1]),
                RECURRENT,
                init_attr="recurrent_initializer",
                bias=False,
                owner=layer,
            ),
        ]
    if is_position_embedding(layer):
        # Added to the token embedding: drawn on the scale of a tied token
        # table (fan_in = dim, var 1/dim), so that neither term swamps the
        # other; a lookup's N(0, 1) would outweigh the tokens sqrt(dim) times.
        var = _variable(layer, "position_embeddings")
        if len(_shape(var)) != 2:
            raise NotUnderstood("a position embedding table of rank other than 2")
        fans = _fans(_shape(var), [1], [0])
        return [
            slot(
                layer,
                "embeddings",
                "position_embeddings",
                fans,
                EMBEDDING,
                init_attr="initializer",
                bias=False,
            )
        ]
    if _own_variables(layer):
        if isinstance(layer, no_kernel_types()) or _is_scale_only(layer):
            return None
        raise NotUnderstood("unknown layer type")
    return None


def is_position_embedding(layer) -> bool:
    """keras-hub's `PositionEmbedding`: a learned `(sequence_length, dim)` table."""
    return type(layer).__name__ == "PositionEmbedding" and isinstance(
        getattr(layer, "initializer", None), keras.initializers.Initializer
    )


def is_reversible(layer) -> bool:
    """A `ReversibleEmbedding` (Keras's, or keras-hub's subclass of it)."""
    cls = getattr(keras.layers, "ReversibleEmbedding", None)
    return cls is not None and isinstance(layer, cls)


def no_kernel_types() -> tuple[type, ...]:
    """Layers that own weights but no kernel: their weights are kept as they are."""
    names = (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "UnitNormalization",
        "Normalization",
        "PReLU",
    )
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


_SCALE_ONLY = re.compile(r"(Norm|Normalization|LayerScale)$")


def _is_scale_only(layer) -> bool:
    """A normalization or learned scale of a library's own (keras-hub's
    `LlamaLayerNorm`, `T5LayerNorm`, ConvNeXt's `LayerScale`): named as one,
    and owning only per-channel vectors (a scale, an offset), no kernel."""
    variables = _own_variables(layer)
    return (
        _SCALE_ONLY.search(type(layer).__name__) is not None
        and bool(variables)
        and all(len(v.shape) <= 1 for v in variables)
    )


def own_variables(layer) -> list:
    """The variables a layer holds itself (not through its sublayers)."""
    return _own_variables(layer)


def layer_fans(layer) -> dict[str, Fans]:
    """The true fans of each kernel of a built layer, from its type.

    Keras's shape rule gets transposed and depthwise convolutions wrong;
    this reads the fans from what each layer type does (see the table at the
    top of `keras_weightinit._layer_table`).

    Examples:

    >>> layer = keras.layers.Conv2DTranspose(8, 3)
    >>> layer.build((None, 16, 16, 64))
    >>> layer_fans(layer)["kernel"]  # kernel (3, 3, 8, 64): 3*3*64 in, 3*3*8 out
    Fans(fan_in=576, fan_out=72, input_axes=[0, 1, 3], output_axes=[0, 1, 2])
    >>> layer = keras.layers.DepthwiseConv2D(3)
    >>> layer.build((None, 16, 16, 64))
    >>> layer_fans(layer)["kernel"]  # kernel (3, 3, 64, 1): each output sees 3*3 inputs
    Fans(fan_in=9, fan_out=9, input_axes=[0, 1], output_axes=[0, 1, 3])

    Args:
        layer: A built Keras layer.

    Returns:
        A dict from weight name (`"kernel"`, `"depthwise_kernel"`,
        `"pointwise_kernel"`, `"recurrent_kernel"`, `"embeddings"`, or
        `"query"`/`"key"`/`"value"`/`"output"` for `MultiHeadAttention`) to
        `Fans(fan_in, fan_out, input_axes, output_axes)`; empty for a layer
        without kernels.

    Raises:
        TypeError: if `layer` is not a Keras layer.
        ValueError: if the layer is not built, or owns weights of a kind this
            function does not know.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "Argument `layer` must be a Keras layer. "
            f"Received: layer={layer!r} (of type {type(layer).__name__})"
        )
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built: build it (or call it on data) "
            f"first. Received: layer={layer!r}"
        )
    try:
        slots = kernel_slots(layer)
    except NotUnderstood as e:
        raise ValueError(
            f"The fans of layer {layer.name!r} ({type(layer).__name__}) are "
            f"unknown: {e}. Received: layer={layer!r}"
        ) from None
    return {s.weight: s.fans for s in slots or []}
