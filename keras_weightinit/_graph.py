"""The layers of a model in forward order, and what follows each of them.

Functional and Sequential models (nested ones included) record their graph:
every call of a layer is a `Node`, and a layer's outbound nodes
(`_keras_internals.outbound_nodes`) are the calls that consume its output. A
subclassed model records none; for its layers, "what follows" falls back to
the order in which the model holds its layers (the order of the attribute
assignments in `__init__`), which is usually the call order.

The search for the activation after a kernel walks forward through layers
that do not change which activation applies (dropout, reshaping, pooling,
padding, normalization, `Add`, `Concatenate`, ...) and stops at the first
activation layer, at any other layer, or at the model's output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from keras_weightinit import _keras_internals as internals
from keras_weightinit import _kinds as table
from keras_weightinit.activations import is_activation_layer, resolve_activation

# Groups of Keras layer names, shared by every module that reads a graph
# (`_residual`, `_moments`): each fact about a layer kind is written here once.
PASS_NAMES = (  # drop or pass values, or add noise; the identity in inference
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
)
RESHAPING_NAMES = ("Flatten", "Reshape", "Permute")
PADDING_NAMES = (
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
)
POOLING_NAMES = (
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
)
GLOBAL_POOLING_NAMES = (
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
)
UPSAMPLING_NAMES = ("UpSampling1D", "UpSampling2D", "UpSampling3D")
NORMALIZATION_NAMES = (
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "UnitNormalization",
)

# Layers that pass, drop, move or pool values without weighting them:
# zeroing or scaling their input zeroes or scales their output.
COMMUTING_NAMES = PASS_NAMES + RESHAPING_NAMES + POOLING_NAMES + PADDING_NAMES

# Layers through which the search for the next activation continues: none of
# them decides the variance the activation sees (normalization resets it
# whatever the kernel), and a merge passes the branch on to what follows it.
_TRANSPARENT_NAMES = (
    COMMUTING_NAMES
    + ("Masking", "RepeatVector")
    + NORMALIZATION_NAMES
    + GLOBAL_POOLING_NAMES
    + UPSAMPLING_NAMES
    + ("Add", "Average", "Concatenate")
)


def layer_types(names) -> tuple[type, ...]:
    """The classes of `keras.layers` with these names (those this Keras has)."""
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


def _transparent_types() -> tuple[type, ...]:
    return layer_types(_TRANSPARENT_NAMES)


def graph_of(container: Any):
    """The `Functional` graph of a container, or None (subclassed, unbuilt)."""
    if isinstance(container, keras.Sequential):
        return internals.sequential_graph(container)
    if isinstance(container, internals.functional_class()):
        return container
    return None


def _is_input(op: Any) -> bool:
    return isinstance(op, keras.layers.InputLayer)


def children(container: Any) -> list:
    """The direct sublayers of a container, in forward order when known."""
    graph = graph_of(container)
    if graph is not None:
        return [op for op in graph.operations if not _is_input(op)]
    return internals.sublayers(container)


def is_leaf(layer: Any) -> bool:
    """Whether the walk takes a layer whole (does not walk into its sublayers).

    A layer is, if the layer table knows its kernels (an `LSTM`, a
    `MultiHeadAttention`), or if it has no sublayers.
    """
    try:
        if table.kernel_slots(layer):
            return True
    except table.NotUnderstood:
        pass
    return not internals.has_sublayers(layer)


@dataclasses.dataclass
class Walk:
    """A model's layers in forward order, with the container of each.

    `containers` are the layers walked into (nested models, blocks), in the
    order they were entered.
    """

    layers: list
    parent: dict[int, Any]
    containers: list = dataclasses.field(default_factory=list)


def walk(model: Any) -> Walk:
    """Every layer of `model` that is handled whole, in forward order.

    Layers that only contain other layers (nested models, `Bidirectional`,
    `TimeDistributed`, custom blocks) are walked into; if such a container
    also holds weights of its own, it is listed too, so that those weights
    are reported. A layer shared between several places is listed once.
    """
    out: list = []
    parent: dict[int, Any] = {}
    containers: list = []
    seen: set[int] = set()

    def visit(container: Any) -> None:
        for child in children(container):
            if not isinstance(child, keras.layers.Layer) or id(child) in seen:
                continue
            seen.add(id(child))
            parent[id(child)] = container
            if is_leaf(child):
                out.append(child)
            else:
                if table.own_variables(child):
                    out.append(child)
                containers.append(child)
                visit(child)

    visit(model)
    return Walk(out, parent, containers)


def _entry_layers(container: Any, w: Walk) -> list:
    graph = graph_of(container)
    if graph is not None:
        first = []
        for op in graph.operations:
            if _is_input(op):
                first += [
                    n.operation
                    for n in internals.outbound_nodes(op)
                    if _in_graph(n.operation, graph)
                ]
        return first
    kids = children(container)
    return kids[:1]


def _in_graph(op: Any, graph: Any) -> bool:
    return any(op is o for o in graph.operations)


def _produces_output(op: Any, graph: Any) -> bool:
    return any(internals.producer(t) is op for t in graph.outputs)


def consumers(op: Any, w: Walk, state: dict) -> list:
    """The layers that take `op`'s output; `state["order"]` set if guessed by order."""
    container = w.parent.get(id(op))
    if container is None:
        return []
    graph = graph_of(container)
    found: list = []
    if graph is not None:
        for node in internals.outbound_nodes(op):
            if _in_graph(node.operation, graph):
                found.append(node.operation)
        if _produces_output(op, graph):
            found += consumers(container, w, state)
    else:
        state["order"] = True
        kids = children(container)
        index = next((i for i, k in enumerate(kids) if k is op), None)
        if index is not None and index + 1 < len(kids):
            found.append(kids[index + 1])
        else:
            found += consumers(container, w, state)
    expanded = []
    for c in found:
        if isinstance(c, keras.layers.Layer) and not is_leaf(c) and not is_activation_layer(c):
            for entry in _entry_layers(c, w):
                w.parent.setdefault(id(entry), c)
                expanded.append(entry)
        else:
            expanded.append(c)
    return expanded


@dataclasses.dataclass(frozen=True)
class Found:
    """The activation found after a layer, and where."""

    activation: Any  # what `for_activation` receives
    name: str  # canonical name
    source: str


def following_activation(layer: Any, w: Walk) -> Found:
    """The activation applied to `layer`'s output, searched forward."""
    transparent = _transparent_types()
    results: list[tuple[Any, Any]] = []
    seen: set[int] = set()
    state: dict = {}

    def search(op: Any) -> None:
        nexts = consumers(op, w, state)
        if not nexts:
            results.append((None, None))
        for c in nexts:
            if id(c) in seen:
                continue
            seen.add(id(c))
            if is_activation_layer(c):
                results.append((c, c))
            elif isinstance(c, transparent):
                search(c)
            else:
                results.append((None, c))

    search(layer)
    prefix = "order" if state.get("order") else "layer"
    nonlinear = []
    for act, via in results:
        if act is None:
            continue
        resolved = resolve_activation(act)
        if resolved.name != "linear" and all(resolved != r for r, _ in nonlinear):
            nonlinear.append((resolved, via))
    if not nonlinear:
        return Found(None, "linear", "none")
    resolved, via = nonlinear[0]
    source = f"{prefix} {via.name}"
    if len(nonlinear) > 1:
        others = ", ".join(r.name for r, _ in nonlinear[1:])
        source = f"ambiguous: {via.name}; also {others}"
    return Found(via, resolved.name, source)


def _is_linear(activation: Any) -> bool:
    try:
        return resolve_activation(activation).name == "linear"
    except ValueError:
        return False  # a callable of the user's own: not the identity


def activation_of(slot: Any, w: Walk) -> Found:
    """The activation after a kernel, found as its kind's row says (`slot.activation`)."""
    if slot.activation == table.NONE:
        return Found(None, "linear", "none")
    if slot.activation == table.OWN:
        return Found(slot.owner.activation, "", "own")
    own = getattr(slot.owner, "activation", None)
    if own is not None and not _is_linear(own):
        return Found(own, "", "own")
    return following_activation(slot.owner, w)
