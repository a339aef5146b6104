"""Every use of Keras's private API, in one place.

The package reads a few things Keras keeps to itself: the graph a
functional model records, the sublayers a layer tracks, the variable behind
a property, the base classes of the convolutions. Each accessor below names
the private attribute it reads, and why the public API does not do it. All
were checked against Keras `KERAS_CHECKED`; `tests/test_keras_internals.py`
calls each one on real Keras objects and fails, naming the attribute, when a
Keras release moves it. No other module of the package touches `keras.src`
or these attributes (the same test greps for them).
"""

from __future__ import annotations

import functools
from typing import Any

#: The Keras release every accessor was checked against.
KERAS_CHECKED = "3.15.1"

#: The private attributes of Keras objects read here (the test greps the
#: rest of the package for them).
PRIVATE_ATTRIBUTES = (
    "_flatten_layers",
    "_layers",
    "_functional",
    "_outbound_nodes",
    "_inbound_nodes",
    "_keras_history",
    "_run_through_graph",
    "_inputs_struct",
    "_call_has_training_arg",
    "_trainable_variables",
    "_non_trainable_variables",
    "_kernel_initializer",
    "_bias_initializer",
    "_query_dense",
    "_key_dense",
    "_value_dense",
    "_output_dense",
)


# -- layer classes -------------------------------------------------------------


@functools.cache
def _conv_bases() -> dict[str, type]:
    # Public API exports only the concrete Conv1D/2D/3D, ...Transpose,
    # DepthwiseConv1D/2D and SeparableConv1D/2D; a layer that subclasses a
    # base directly (a library's own convolution) is one too, and shares its
    # kernel layout. `keras.src.layers.convolutional.base_*`.
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv

    return {
        "conv": BaseConv,
        "transpose": BaseConvTranspose,
        "depthwise": BaseDepthwiseConv,
        "separable": BaseSeparableConv,
    }


def conv_form(layer: Any) -> str | None:
    """`"conv"`, `"transpose"`, `"depthwise"` or `"separable"`: which Keras
    convolution `layer` is (by its base class); None for any other layer."""
    return next((k for k, cls in _conv_bases().items() if isinstance(layer, cls)), None)


def is_convolution(layer: Any) -> bool:
    """Whether `layer` is a Keras convolution of any form (the one predicate)."""
    return conv_form(layer) is not None


def functional_class() -> type:
    # `keras.Model(inputs, outputs)` returns a `Functional`, which Keras does
    # not export. `keras.src.models.functional.Functional`.
    from keras.src.models.functional import Functional

    return Functional


def add_op_class() -> type:
    # `keras.ops.add` on symbolic tensors records an `Add` operation in the
    # graph; `keras.ops` exports the function only. `keras.src.ops.numpy.Add`.
    from keras.src.ops.numpy import Add

    return Add


def initializer_names() -> set[str]:
    """The names `keras.initializers.get` resolves (classes and aliases)."""
    # No public list of them. `keras.src.initializers.ALL_OBJECTS_DICT`.
    from keras.src.initializers import ALL_OBJECTS_DICT

    return set(ALL_OBJECTS_DICT)


# -- sublayers and variables ---------------------------------------------------


def sublayers(layer: Any, recursive: bool = False, include_self: bool = False) -> list:
    """The layers `layer` tracks, in tracking order (depth first if recursive)."""
    # `Model.layers` exists on models only and is never recursive.
    # `Layer._flatten_layers`.
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def has_sublayers(layer: Any) -> bool:
    """Whether `layer` tracks sublayers of its own."""
    # A plain `Layer` has no public `layers`. `Layer._layers`.
    return bool(getattr(layer, "_layers", None))


def own_variables(layer: Any) -> list:
    """The variables a layer holds itself (not through its sublayers)."""
    # `layer.weights` includes the sublayers'. `Layer._trainable_variables`
    # and `Layer._non_trainable_variables`.
    return list(getattr(layer, "_trainable_variables", [])) + list(
        getattr(layer, "_non_trainable_variables", [])
    )


def stored_variable(holder: Any, attr: str) -> Any:
    """The variable `holder` stores for its property `attr`, if any.

    `Dense.kernel` and `Embedding.embeddings` are properties that return a
    computed tensor for a quantized or LoRA layer; the variable itself is
    `holder._<attr>`. None where there is no such attribute (the caller
    falls back to the public property).
    """
    return getattr(holder, "_" + attr, None)


def attention_projections(layer: Any) -> dict[str, Any]:
    """The query, key, value and output `EinsumDense` of a `MultiHeadAttention`."""
    # Not exposed publicly. `MultiHeadAttention._query_dense`, ... .
    return {part: getattr(layer, f"_{part}_dense") for part in ("query", "key", "value", "output")}


def set_attention_initializers(layer: Any, kernel: Any = None, bias: Any = None) -> None:
    """Sets the initializers a `MultiHeadAttention` writes into its config."""
    # The layer has no public setter; `get_config` reads these.
    # `MultiHeadAttention._kernel_initializer` and `._bias_initializer`.
    if kernel is not None:
        layer._kernel_initializer = kernel
    if bias is not None:
        layer._bias_initializer = bias


def call_has_training_arg(layer: Any) -> bool:
    """Whether `layer.call` takes a `training` argument."""
    # Computed by Keras from the signature of `call`.
    # `Layer._call_has_training_arg`.
    return bool(layer._call_has_training_arg)


# -- the graph of a functional model -------------------------------------------


def sequential_graph(model: Any) -> Any:
    """The `Functional` a built `Sequential` runs, or None."""
    # `Sequential._functional`.
    return getattr(model, "_functional", None)


def outbound_nodes(op: Any) -> list:
    """The calls (nodes) that consume `op`'s output."""
    # The graph is public only as `Functional.operations`.
    # `Operation._outbound_nodes`.
    return list(getattr(op, "_outbound_nodes", None) or [])


def inbound_nodes(op: Any) -> list:
    """The calls (nodes) of `op`, one per time it was called."""
    # `Operation._inbound_nodes`.
    return list(getattr(op, "_inbound_nodes", None) or [])


def history(tensor: Any) -> Any:
    """`(operation, node_index, tensor_index)` that produced a symbolic
    tensor, or None."""
    # `KerasTensor._keras_history`.
    return getattr(tensor, "_keras_history", None)


def producer(tensor: Any) -> Any:
    """The operation that produced a symbolic tensor, or None."""
    hist = history(tensor)
    return None if hist is None else hist.operation


def producing_node(tensor: Any) -> Any:
    """The node (call) that produced a symbolic tensor."""
    hist = history(tensor)
    return inbound_nodes(hist.operation)[hist.node_index]


def inputs_struct(graph: Any) -> Any:
    """The nested structure of a `Functional`'s declared inputs, or None."""
    # `Functional.inputs` is flat. `Functional._inputs_struct`.
    return getattr(graph, "_inputs_struct", None)


def run_through_graph(graph: Any, inputs: Any, operation_fn) -> Any:
    """Runs a `Functional`'s graph with `operation_fn(op)` in place of each op."""
    # Calling the model runs the operations themselves; there is no public
    # way to substitute them. `Functional._run_through_graph`.
    return graph._run_through_graph(inputs, operation_fn=operation_fn)


# -- backend state -------------------------------------------------------------


def in_jax_tracing_scope() -> bool:
    """Whether JAX is tracing the current call (under `jax.jit`)."""
    # `keras.src.utils.jax_utils.is_in_jax_tracing_scope`.
    from keras.src.utils.jax_utils import is_in_jax_tracing_scope

    return bool(is_in_jax_tracing_scope())


def in_stateless_scope() -> bool:
    """Whether a `keras.StatelessScope` is active."""
    # `keras.StatelessScope` is public, the query is not.
    # `keras.src.backend.common.stateless_scope.in_stateless_scope`.
    from keras.src.backend.common.stateless_scope import in_stateless_scope as inside

    return bool(inside())
