"""The residual branches of a model, found from its graph and its layer types.

A residual block computes `x + f(x)`: each such addition adds the branch's
variance to the stream's, so variance-preserving branches make the stream
grow with depth (×2 per block without normalization; `+1` per block when a
normalization precedes each branch). This module finds every branch and
the weight at its end, which `initialize` then zeroes or scales down.

Where branches are found:

- Functional graphs (the model's and every nested functional model's):
  every two-input `Add` layer, or `+` of two tensors (`keras.ops.add`), whose
  inputs differ in weight: the input with fewer kernel layers since the two
  paths forked is the shortcut, and it must hold at most one (an identity,
  a pooling, or a projection convolution with its normalization). The other
  input is the branch.
- keras-hub's blocks that add inside `call` (`TransformerEncoder`,
  `TransformerDecoder` and the decoder blocks of GPT-2, Llama, Gemma, Bart,
  ...), recognized by type: a keras-hub layer named `...Encoder`,
  `...Decoder`, `...DecoderBlock`, `...TransformerLayer` (and the like)
  holding an attention sublayer. Its branches end in the attention's output
  projection and in the last kernel of its feed-forward network.

The end of a branch is the last layer before the `Add`, through dropout,
drop-path, identity, pooling, padding and reshaping layers (zeroing or scaling
commutes with them): a normalization with a scale (`gamma`), or a layer
with a kernel (for `MultiHeadAttention`, its `output` projection). A branch
that ends in a learned scale of its own (ConvNeXt's `LayerScale`, 1e-6 at
the start) is already bounded, and one whose sum is normalized right after
the add (post-norm: BERT's and Bart's `normalize_first=False`) cannot make
the stream grow: both are left alone.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import keras

from keras_weightinit import _graph as graph
from keras_weightinit import _keras_internals as internals
from keras_weightinit import _kinds as table
from keras_weightinit.activations import resolve_activation

GAMMA = "gamma"  # the branch ends in a normalization with a scale
KERNEL = "kernel"  # the branch ends in a layer with a kernel
NONE = "none"  # nothing to act on (reason given)
SCALED = "scaled"  # the branch ends in a learned scale of its own (LayerScale)
SHARED = "shared"  # the branch's end also feeds other layers

_NORM_NAMES = ("BatchNormalization", "LayerNormalization", "GroupNormalization")
_HUB_BLOCK = re.compile(
    r"(Encoder|Decoder|DecoderBlock|EncoderBlock|TransformerLayer|DecoderLayer|EncoderLayer)$"
)


@dataclasses.dataclass
class Branch:
    """One residual branch and the weight at its end.

    Attributes:
        site: Where the branch is added to the stream: the `Add` layer's
            name, or `"<block> (attention)"` / `"<block> (feedforward)"`.
        layer: The layer holding the weight (a normalization, a `Dense`, a
            `MultiHeadAttention`, ...), or None.
        weight: `"gamma"`, or the kernel's name as the report shows it.
        kind: `GAMMA`, `KERNEL` or `NONE`.
        reason: Why it was recognized (or why nothing can be done).
        inside: The layers on the branch between the fork and the add
            (the end layer included), whose gradient passes through the
            branch's end weight; `branch_kernels` lists their kernels.
    """

    site: str
    layer: Any
    weight: str
    kind: str
    reason: str
    inside: tuple = ()


def _has_gamma(layer: Any) -> bool:
    return isinstance(layer, graph.layer_types(_NORM_NAMES)) and isinstance(
        getattr(layer, "gamma", None), keras.Variable
    )


def _is_norm(layer: Any) -> bool:
    names = _NORM_NAMES + ("RMSNormalization", "UnitNormalization")
    return isinstance(layer, graph.layer_types(names)) or "Norm" in type(layer).__name__


def _is_stream_norm(layer: Any) -> bool:
    # A BatchNormalization in inference mode is a fixed affine map (fresh:
    # the identity), so it does not renormalize the stream; the others
    # normalize each example whatever the mode.
    return _is_norm(layer) and not isinstance(layer, keras.layers.BatchNormalization)


def _slots(layer: Any) -> list:
    try:
        return table.kernel_slots(layer) or []
    except table.NotUnderstood:
        return []


def _weight_count(op: Any) -> int:
    """How many kernel layers an operation counts for on a path (containers: 2)."""
    if not isinstance(op, keras.layers.Layer):
        return 0
    if _slots(op):
        return 1
    if op.weights and internals.has_sublayers(op):
        return 2  # a nested model or block: certainly more than a projection
    return 1 if table.own_variables(op) and not _is_norm(op) else 0


def _history(tensor: Any):
    return internals.history(tensor)


def _inputs_of(tensor: Any) -> list:
    hist = _history(tensor)
    if hist is None or isinstance(hist.operation, keras.layers.InputLayer):
        return []
    node = internals.producing_node(tensor)
    return [t for t in node.input_tensors if _history(t) is not None]


def _ancestors(outputs: list) -> dict[int, frozenset]:
    """Tensor id -> ids of the operations it depends on (itself included)."""
    memo: dict[int, frozenset] = {}
    stack = list(outputs)
    while stack:
        t = stack[-1]
        if id(t) in memo:
            stack.pop()
            continue
        parents = _inputs_of(t)
        missing = [p for p in parents if id(p) not in memo]
        if missing:
            stack.extend(missing)
            continue
        ops = {id(_history(t).operation)}
        for p in parents:
            ops |= memo[id(p)]
        memo[id(t)] = frozenset(ops)
        stack.pop()
    return memo


def _passes(op: Any) -> bool:
    """Whether zeroing or scaling before `op` is the same as after it."""
    if isinstance(op, graph.layer_types(graph.COMMUTING_NAMES)):
        return True
    if isinstance(op, keras.layers.Activation):
        try:
            return resolve_activation(op).name == "linear"
        except ValueError:
            return False
    # Drop-path layers (ConvNeXt's StochasticDepth) are the identity at inference.
    return type(op).__name__ in ("StochasticDepth", "DropPath")


def _shared(op: Any) -> bool:
    """Whether `op`'s output feeds more than the one path to the `Add`."""
    return len(internals.outbound_nodes(op)) > 1


def _end_of(tensor: Any) -> tuple[Any, str, str]:
    """(layer, weight, kind) at the end of a branch ending in `tensor`.

    The kind is `SHARED` when the end's output also feeds other layers
    (NASNet's cells read one normalized input from several operations):
    zeroing or scaling it would change them too.
    """
    op = _history(tensor).operation
    while _passes(op):
        if _shared(op):
            return op, "", SHARED
        (tensor,) = _inputs_of(tensor)[:1] or (None,)
        if tensor is None:
            return op, "", NONE
        op = _history(tensor).operation
    if _shared(op) and (_has_gamma(op) or _slots(op)):
        return op, "", SHARED
    if _has_gamma(op):
        return op, "gamma", GAMMA
    if "Scale" in type(op).__name__ and table.own_variables(op):
        return op, "", SCALED
    slots = _slots(op)
    if slots:
        return op, slots[-1].weight, KERNEL
    return op, "", NONE


def _add_ops() -> tuple[type, ...]:
    return (keras.layers.Add, internals.add_op_class())


def _functional(container: Any, out: list[Branch]) -> None:
    g = graph.graph_of(container)
    if g is None:
        return
    memo = _ancestors(list(g.outputs))
    ops = {id(op): op for op in g.operations}
    adds = _add_ops()
    for op in g.operations:
        if not isinstance(op, adds):
            continue
        for node in internals.inbound_nodes(op):
            if not node.output_tensors or id(node.output_tensors[0]) not in memo:
                continue  # a call of a shared Add in another graph
            inputs = [t for t in node.input_tensors if id(t) in memo]
            if len(inputs) != 2:
                continue
            a, b = (memo[id(t)] for t in inputs)
            counts = [
                sum(_weight_count(ops.get(i)) for i in a - b),
                sum(_weight_count(ops.get(i)) for i in b - a),
            ]
            if counts[0] == counts[1] or min(counts) > 1:
                continue  # a merge of two comparable paths, not a shortcut
            branch = inputs[int(counts[1] > counts[0])]
            shortcut = "identity" if min(counts) == 0 else "projection"
            layer, weight, kind = _end_of(branch)
            if "Embedding" in type(layer).__name__:
                continue  # a position embedding added to a token embedding
            reason = f"{shortcut} shortcut; the branch ends in {type(layer).__name__}"
            kind, reason = _acting(kind, reason, node.output_tensors[0], op)
            side = a - b if branch is inputs[0] else b - a
            inside = tuple(
                ops[i]
                for i in side
                if isinstance(ops.get(i), keras.layers.Layer) and ops[i] is not op
            )
            site = getattr(op, "name", type(op).__name__)
            out.append(Branch(site, layer, weight, kind, reason, inside))


def _acting(kind: str, reason: str, total: Any, op: Any) -> tuple[str, str]:
    """What may act on a branch's end (`kind`, NONE for nothing), and the reason.

    `total` is the output of the `Add` (`op`) that closes the branch.
    """
    if kind == KERNEL and _followed_by_norm(total, op):
        return NONE, "the sum is normalized right after the add (post-norm)"
    if kind == SHARED:
        return NONE, (
            f"{reason}, whose output also feeds other layers: zeroing or scaling it "
            "would change them too"
        )
    if kind == SCALED:
        return NONE, f"{reason}, a learned scale of its own whose initial value bounds the stream"
    if kind == NONE:
        return NONE, f"{reason}, which has neither a normalization scale nor a kernel"
    return kind, reason


def _followed_by_norm(tensor: Any, op: Any) -> bool:
    consumers = [
        n.operation
        for n in internals.outbound_nodes(op)
        if any(t is tensor for t in n.input_tensors)
    ]
    return bool(consumers) and all(_is_stream_norm(c) for c in consumers)


def _attrs(layer: Any) -> list[tuple[str, Any]]:
    """The sublayers a layer holds as attributes, in assignment order, with their names."""
    items = dict(vars(layer))
    # On the PyTorch backend a layer is a torch Module, which keeps its
    # sublayers in `_modules` instead of the instance's dict.
    items.update(vars(layer).get("_modules") or {})
    return [(k, v) for k, v in items.items() if isinstance(v, keras.layers.Layer)]


def _dense_types() -> tuple[type, ...]:
    return (keras.layers.Dense, keras.layers.EinsumDense)


def _is_attention(name: str, layer: Any) -> bool:
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return True  # ViT's `mha`
    name = name.lower()
    return (
        ("attention" in name or "attn" in name)
        and "norm" not in name
        and "dropout" not in name
        and not _is_norm(layer)
    )


def _last_projection(layer: Any) -> tuple[Any, str] | None:
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer, "output"
    denses = [(k, v) for k, v in _attrs(layer) if isinstance(v, _dense_types())]
    named = [v for k, v in denses if re.search(r"out|o_proj", k.lower())]
    found = named[-1] if named else (denses[-1][1] if denses else None)
    return None if found is None else (found, "kernel")


def is_hub_block(layer: Any) -> bool:
    """A keras-hub residual block that adds inside `call`."""
    cls = type(layer)
    return (
        cls.__module__.startswith("keras_hub.")
        and _HUB_BLOCK.search(cls.__name__) is not None
        and any(_is_attention(k, v) for k, v in _attrs(layer))
    )


def _hub(block: Any, out: list[Branch]) -> None:
    kind_name = type(block).__name__
    post = getattr(block, "normalize_first", True) is False
    attrs = _attrs(block)
    for name, sub in attrs:
        if _is_attention(name, sub):
            found = _last_projection(sub)
            _hub_branch(out, block, f"{name.strip('_')}", found, kind_name, post, (sub,))
    ffn = [(k, v) for k, v in attrs if isinstance(v, _dense_types()) and not _is_attention(k, v)]
    if not ffn:
        # The feed-forward network as a sublayer of its own (ViT's `MLP`).
        ffn = [
            (f"{k}.{k2}", v2)
            for k, v in attrs
            if not _is_attention(k, v)
            for k2, v2 in _attrs(v)
            if isinstance(v2, _dense_types())
        ]
    if ffn:
        named = [v for k, v in ffn if re.search(r"out|down|linear", k.lower())]
        last = named[-1] if named else ffn[-1][1]
        inside = tuple(v for _, v in ffn)
        _hub_branch(out, block, "feedforward", (last, "kernel"), kind_name, post, inside)


def _hub_branch(out, block, part, found, kind_name, post, inside) -> None:
    site = f"{block.name} ({part})"
    if found is None:
        out.append(Branch(site, None, "", NONE, f"{kind_name}: no output projection found"))
    elif post:
        out.append(
            Branch(
                site,
                found[0],
                found[1],
                NONE,
                f"{kind_name}(normalize_first=False) normalizes the sum after each add",
                inside,
            )
        )
    else:
        reason = f"{kind_name}: the {part} branch's output"
        out.append(Branch(site, found[0], found[1], KERNEL, reason, inside))


def find(model: Any) -> list[Branch]:
    """Every residual branch of a built model, in the walk's (forward) order."""
    out: list[Branch] = []
    w = graph.walk(model)
    containers = [model] + [c for c in w.containers if graph.graph_of(c) is not None]
    for container in containers:
        _functional(container, out)
    for layer in w.containers:
        if is_hub_block(layer):
            _hub(layer, out)
    return out


def end_variable(branch: Branch) -> Any:
    """The variable at the end of a branch (its gamma or its last kernel), or None."""
    if branch.kind == GAMMA:
        return branch.layer.gamma
    if branch.kind == KERNEL:
        return next((s.variable for s in _slots(branch.layer) if s.weight == branch.weight), None)
    return None


def branch_kernels(branch: Branch) -> list:
    """The kernel variables inside a branch, nested layers' included, except its end weight.

    Their gradient flows through the end weight: while it is zero, theirs is zero too.
    """
    end = end_variable(branch)
    found: dict[int, Any] = {}
    for top in branch.inside:
        for layer in [top] + graph.walk(top).layers:
            for slot in _slots(layer):
                if slot.variable is not end:
                    found.setdefault(id(slot.variable), slot.variable)
    return list(found.values())
