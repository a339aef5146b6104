"""Layer kinds as data: which weights are kernels, their roles and true fans.

`KINDS` holds one row per layer kind: how a layer is recognized, and for
each of its kernels the layer that holds it, the attribute of the variable,
the initializer and bias that go with it, its role, how its fans are read
and how the activation after it is found. `kernel_slots` walks the table;
adding a layer kind is adding a row (see the architecture page).

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
from collections.abc import Callable
from typing import Any

import keras

from keras_weightinit import _keras_internals as internals
from keras_weightinit.fans import Fans, compute_fans

# Roles, which decide how `initialize` treats a kernel.
KERNEL = "kernel"  # a linear map followed by the activation found
LINEAR = "linear"  # a linear map whose output is never activated (Q/K/V, depthwise half)
RECURRENT = "recurrent"  # the hidden-to-hidden kernel of a recurrent cell
RNN_INPUT = "rnn_input"  # the input kernel of a recurrent cell (fan_in mode)
EMBEDDING = "embedding"  # a lookup table (fan_in = 1, fan_in mode)
TIED = "tied"  # a lookup table that is also the output projection (fan_in = dim)

# How the activation after a kernel is found (`_graph.activation_of`).
NONE = "none"  # its output is never activated: linear
OWN = "own"  # the layer applies its own activation inside (recurrent cells)
OWN_OR_NEXT = "own or next"  # the layer's own if not linear, else the next activation layer


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
        activation: How the activation after it is found (`NONE`, `OWN` or
            `OWN_OR_NEXT`).
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
    activation: str = OWN_OR_NEXT

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)


own_variables = internals.own_variables  # the variables a layer holds itself


class NotUnderstood(Exception):
    """A layer whose kernels this table cannot describe (with the reason)."""


# -- how fans are read (holder, kernel shape) -> Fans ----------------------------


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


def _matrix(what: str, input_axes, output_axes) -> Callable:
    """Fans of a rank-2 table read along fixed axes; `what` names it in the error."""

    def read(holder, shape) -> Fans:
        if len(shape) != 2:
            raise NotUnderstood(what.format(rank=len(shape)))
        return _fans(shape, input_axes, output_axes)

    return read


def _along(input_axes, output_axes) -> Callable:
    return lambda holder, shape: _fans(shape, input_axes, output_axes)


_DENSE = _matrix("a Dense kernel of rank {rank}", [0], [1])
_TABLE = "an Embedding table of rank other than 2"


def _einsum(holder, shape) -> Fans:
    return einsum_fans(holder.equation, shape)


def _conv_kernel(holder, shape) -> Fans:
    return conv_fans(shape, int(getattr(holder, "groups", 1) or 1))


def _pointwise(holder, shape) -> Fans:
    return conv_fans(shape)


def _transpose(holder, shape) -> Fans:
    return conv_transpose_fans(shape)


def _depthwise(holder, shape) -> Fans:
    return depthwise_fans(shape)


# A recurrent cell stacks its gates along the last axis: each gate's fan-out
# is `units`, not the stack's `gates·units`.
def _rnn_input(cell, shape) -> Fans:
    return Fans(shape[0], int(cell.units), [0], [1])


def _rnn_recurrent(cell, shape) -> Fans:
    return Fans(int(cell.units), int(cell.units), [0], [1])


def is_position_embedding(layer) -> bool:
    """keras-hub's `PositionEmbedding`: a learned `(sequence_length, dim)` table."""
    return type(layer).__name__ == "PositionEmbedding" and isinstance(
        getattr(layer, "initializer", None), keras.initializers.Initializer
    )


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
    variables = own_variables(layer)
    return (
        _SCALE_ONLY.search(type(layer).__name__) is not None
        and bool(variables)
        and all(len(v.shape) <= 1 for v in variables)
    )


# -- the table -------------------------------------------------------------------


def _self(layer):
    return layer


@dataclasses.dataclass(frozen=True)
class Weight:
    """One kernel of a layer kind.

    Attributes:
        name: The weight's name in the report.
        attr: The attribute of the holder that holds the variable.
        role: One of the roles above.
        fans: `(holder, kernel shape) -> Fans`; raises `NotUnderstood` for a
            shape it cannot read.
        init_attr: The holder's attribute that holds its initializer (None:
            it has none of its own).
        bias: Whether the holder's bias goes with this kernel.
        activation: How the activation after it is found.
        holder: `layer -> the layer that holds the variable` (the layer
            itself, a recurrent layer's cell, an attention projection).
    """

    name: str
    attr: str
    role: str
    fans: Callable[[Any, tuple], Fans]
    init_attr: str | None
    bias: bool = False
    activation: str = OWN_OR_NEXT
    holder: Callable[[Any], Any] = _self


@dataclasses.dataclass(frozen=True)
class Kind:
    """One layer kind: how it is recognized and its kernels.

    Attributes:
        name: What the kind is, for a reader.
        matches: `layer -> bool`; the first row that matches a layer wins.
        weights: Its kernels, in the order they are drawn; empty for a kind
            that owns weights but no kernel (they are kept as they are).
        check: `layer -> None`, raises `NotUnderstood` for a layer of the
            kind that cannot be read (unbuilt, an unknown cell).
        plain: Whether each holder must be unquantized and without LoRA.
    """

    name: str
    matches: Callable[[Any], bool]
    weights: tuple[Weight, ...]
    check: Callable[[Any], None] | None = None
    plain: bool = False


def _is(name: str) -> Callable[[Any], bool]:
    return lambda layer: isinstance(layer, getattr(keras.layers, name))


def _conv(form: str) -> Callable[[Any], bool]:
    return lambda layer: internals.conv_form(layer) == form


def is_reversible(layer) -> bool:
    """A `ReversibleEmbedding` (Keras's, or keras-hub's subclass of it)."""
    cls = getattr(keras.layers, "ReversibleEmbedding", None)
    return cls is not None and isinstance(layer, cls)


def _tied(layer) -> bool:
    return is_reversible(layer) and bool(layer.tie_weights)


def _recurrent(layer) -> bool:
    return isinstance(layer, keras.layers.RNN) and not isinstance(layer, keras.layers.Bidirectional)


def _projection(part: str) -> Callable[[Any], Any]:
    return lambda layer: internals.attention_projections(layer)[part]


def _check_built(layer) -> None:
    if not layer.built:
        raise NotUnderstood("the layer is not built")


def _rnn_gates(cell) -> int | None:
    layers = keras.layers
    if isinstance(cell, layers.LSTMCell):
        return 4
    if isinstance(cell, layers.GRUCell):
        return 3
    if isinstance(cell, layers.SimpleRNNCell):
        return 1
    return None


def _check_cell(layer) -> None:
    cell = getattr(layer, "cell", None)
    if _rnn_gates(cell) is None:
        raise NotUnderstood(f"recurrent cell {type(cell).__name__} is not supported")


def _cell(layer):
    return layer.cell


def _no_kernel(layer) -> bool:
    return isinstance(layer, no_kernel_types()) or _is_scale_only(layer)


# The kernels: name, attribute, role, fans, initializer attribute; then
# whether the holder's bias goes with it, how the activation after it is
# found, and the layer that holds it where that is not the layer itself.
def _kernel(fans, init_attr: str = "kernel_initializer") -> Weight:
    return Weight("kernel", "kernel", KERNEL, fans, init_attr, bias=True)


# One initializer serves all four projections of a `MultiHeadAttention`
# (the layer has a single `kernel_initializer`), so all four are linear.
_PROJECTIONS = tuple(
    Weight(
        part, "kernel", LINEAR, _einsum, "kernel_initializer",
        bias=True, activation=NONE, holder=_projection(part),
    )
    for part in ("query", "key", "value", "output")
)  # fmt: skip
_DEPTHWISE_HALF = Weight(
    "depthwise_kernel", "depthwise_kernel", LINEAR, _depthwise, "depthwise_initializer",
    activation=NONE,
)  # fmt: skip
_POINTWISE_HALF = Weight(
    "pointwise_kernel", "pointwise_kernel", KERNEL, _pointwise, "pointwise_initializer",
    bias=True,
)  # fmt: skip
_LOOKUP = Weight(
    "embeddings", "embeddings", EMBEDDING, _matrix(_TABLE, [], [1]), "embeddings_initializer"
)
_TIED_TABLE = Weight(
    "embeddings", "embeddings", TIED, _matrix(_TABLE, [1], [0]), "embeddings_initializer",
    activation=NONE,
)  # fmt: skip
# One initializer serves both tables of an untied `ReversibleEmbedding`: the
# projection's scheme cannot be written into the layer's config.
_REVERSE = Weight(
    "reverse_embeddings", "reverse_embeddings", LINEAR, _along([0], [1]), None,
    activation=NONE,
)  # fmt: skip
_RNN_KERNEL = Weight(
    "kernel", "kernel", RNN_INPUT, _rnn_input, "kernel_initializer",
    bias=True, activation=OWN, holder=_cell,
)  # fmt: skip
_RNN_RECURRENT_KERNEL = Weight(
    "recurrent_kernel", "recurrent_kernel", RECURRENT, _rnn_recurrent, "recurrent_initializer",
    activation=OWN, holder=_cell,
)  # fmt: skip
# keras-hub's `PositionEmbedding` is added to the token embedding: drawn on
# the scale of a tied token table (fan_in = dim, var 1/dim), so that neither
# term swamps the other; a lookup's N(0, 1) would outweigh the tokens
# sqrt(dim) times.
_POSITIONS = Weight(
    "embeddings", "position_embeddings", EMBEDDING,
    _matrix("a position embedding table of rank other than 2", [1], [0]), "initializer",
)  # fmt: skip

# One row per layer kind; the first row that matches a layer wins.
KINDS: tuple[Kind, ...] = (
    Kind("MultiHeadAttention", _is("MultiHeadAttention"), _PROJECTIONS, _check_built, plain=True),
    Kind("Dense", _is("Dense"), (_kernel(_DENSE),), plain=True),
    Kind("EinsumDense", _is("EinsumDense"), (_kernel(_einsum),), plain=True),
    Kind("ConvND (grouped or not)", _conv("conv"), (_kernel(_conv_kernel),), plain=True),
    Kind("ConvNDTranspose", _conv("transpose"), (_kernel(_transpose),), plain=True),
    Kind("SeparableConvND", _conv("separable"), (_DEPTHWISE_HALF, _POINTWISE_HALF)),
    # Keras names this variable `kernel`, its initializer `depthwise_initializer`.
    Kind("DepthwiseConvND", _conv("depthwise"), (_kernel(_depthwise, "depthwise_initializer"),)),
    Kind("ReversibleEmbedding, tied", _tied, (_TIED_TABLE,), plain=True),
    Kind("ReversibleEmbedding, untied", is_reversible, (_LOOKUP, _REVERSE), plain=True),
    Kind("Embedding", _is("Embedding"), (_LOOKUP,), plain=True),
    Kind("LSTM, GRU, SimpleRNN", _recurrent, (_RNN_KERNEL, _RNN_RECURRENT_KERNEL), _check_cell),
    Kind("keras-hub PositionEmbedding", is_position_embedding, (_POSITIONS,)),
    Kind("normalizations and learned scales: weights, no kernel", _no_kernel, ()),
)


# -- the lookup ------------------------------------------------------------------


def _check_plain(layer) -> None:
    if getattr(layer, "quantization_mode", None):
        raise NotUnderstood(f"quantized ({layer.quantization_mode}) kernels are left alone")
    if getattr(layer, "lora_enabled", False):
        raise NotUnderstood("LoRA-enabled kernels are left alone")


def _variable(holder, attr: str):
    """The variable behind `holder.<attr>`, not a computed tensor."""
    value = internals.stored_variable(holder, attr)
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


def _slot(layer, kind: Kind, weight: Weight) -> Slot:
    holder = weight.holder(layer)
    if kind.plain:
        _check_plain(holder)
    variable = _variable(holder, weight.attr)
    return Slot(
        owner=layer,
        holder=holder,
        weight=weight.name,
        variable=variable,
        init_attr=weight.init_attr,
        fans=weight.fans(holder, _shape(variable)),
        role=weight.role,
        bias=_bias(holder) if weight.bias else None,
        bias_attr="bias_initializer" if weight.bias else None,
        activation=weight.activation,
    )


def kind_of(layer) -> Kind | None:
    """The first row of `KINDS` that matches `layer`, or None."""
    return next((kind for kind in KINDS if kind.matches(layer)), None)


def kernel_slots(layer) -> list[Slot] | None:
    """The kernels of a built layer, or None for a layer that has none.

    Raises:
        NotUnderstood: for a layer that owns weights this table cannot
            describe (quantized, LoRA, unexpected rank, ...).
    """
    kind = kind_of(layer)
    if kind is None:
        if own_variables(layer):
            raise NotUnderstood("unknown layer type")
        return None
    if not kind.weights:
        return None
    if kind.check is not None:
        kind.check(layer)
    return [_slot(layer, kind, weight) for weight in kind.weights]


def layer_fans(layer) -> dict[str, Fans]:
    """The true fans of each kernel of a built layer, from its type.

    Keras's shape rule gets transposed and depthwise convolutions wrong;
    this reads the fans from what each layer type does (see the table at the
    top of `keras_weightinit._kinds`).

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
