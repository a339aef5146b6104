"""Keras's private API, reached through keras_weightinit._keras_internals only.

Each accessor is called on real Keras objects, and what it returns is checked
against what the public API says about the same objects (an accessor that
falls back to a default would otherwise hide a renamed attribute). A failure
names the Keras attribute that moved, the Keras release running and the one
the accessor was checked against.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_weightinit import _keras_internals as internals

PACKAGE = Path(internals.__file__).resolve().parent
L = keras.layers


def _chain():
    """`inp -> Dense(4, "a") -> Dropout -> Dense(2, "b")`, functional, built on `[inp]`."""
    inp = keras.Input((3,))
    a = L.Dense(4, name="a")
    drop = L.Dropout(0.1, name="drop")
    b = L.Dense(2, name="b")
    model = keras.Model([inp], b(drop(a(inp))))
    return model, a, drop, b


def _attention():
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4)
    mha.build((None, 3, 6), (None, 3, 6))
    return mha


def check_conv_bases():
    forms = {
        L.Conv2D(2, 3): "conv",
        L.Conv1D(2, 3, groups=1): "conv",
        L.Conv2DTranspose(2, 3): "transpose",
        L.DepthwiseConv2D(3): "depthwise",
        L.SeparableConv1D(2, 3): "separable",
        L.Dense(2): None,
        L.EinsumDense("ab,bc->ac", 2): None,
    }
    for layer, form in forms.items():
        assert internals.conv_form(layer) == form, (type(layer).__name__, form)
        assert internals.is_convolution(layer) == (form is not None)


def check_functional_class():
    model, *_ = _chain()
    assert isinstance(model, internals.functional_class())
    assert issubclass(internals.functional_class(), keras.Model)


def check_add_op_class():
    x, y = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([x, y], keras.ops.add(x, y))
    assert any(isinstance(op, internals.add_op_class()) for op in model.operations)


def check_initializer_names():
    names = internals.initializer_names()
    assert {"glorot_uniform", "GlorotUniform", "he_normal", "zeros"} <= names
    for name in ("glorot_uniform", "HeNormal"):
        assert keras.initializers.get(name) is not None


class _Block(L.Layer):
    """A custom container: a nested Sequential, then a Dense, as attributes."""

    def __init__(self):
        super().__init__(name="block")
        self.inner = keras.Sequential([L.Dense(3, name="inner_dense")], name="inner")
        self.top = L.Dense(1, name="top")


def check_flatten_layers():
    block = _Block()
    assert [x.name for x in internals.sublayers(block)] == ["inner", "top"]
    names = [x.name for x in internals.sublayers(block, recursive=True)]
    assert names == ["inner", "inner_dense", "top"]
    assert [x.name for x in internals.sublayers(block, include_self=True)][0] == "block"


def check_layers():
    model = keras.Sequential([keras.Input((2,)), L.Dense(3)])
    assert internals.has_sublayers(model)
    assert not internals.has_sublayers(model.layers[0])


def check_own_variables():
    dense = L.Dense(3)
    dense.build((None, 2))
    norm = L.BatchNormalization()
    norm.build((None, 3))
    assert [id(v) for v in internals.own_variables(dense)] == [id(v) for v in dense.weights]
    # Trainable (gamma, beta) and non-trainable (moving mean, variance) alike.
    assert {id(v) for v in internals.own_variables(norm)} == {id(v) for v in norm.weights}
    assert len(internals.own_variables(norm)) == 4
    # A container's own list leaves out its sublayers' variables.
    model = keras.Sequential([keras.Input((2,)), L.Dense(3)])
    assert internals.own_variables(model) == []


def check_stored_variable():
    dense = L.Dense(3)
    dense.build((None, 2))
    table = L.Embedding(10, 4)
    table.build((None, 5))
    assert internals.stored_variable(dense, "kernel") is dense.kernel
    assert internals.stored_variable(table, "embeddings") is table.embeddings
    # A LoRA layer's public `kernel` is a computed tensor; the variable stays.
    dense.enable_lora(2)
    assert isinstance(internals.stored_variable(dense, "kernel"), keras.Variable)


def check_attention_projections():
    mha = _attention()
    parts = internals.attention_projections(mha)
    assert list(parts) == ["query", "key", "value", "output"]
    kernels = {id(v) for v in mha.weights}
    for sub in parts.values():
        assert isinstance(sub, L.EinsumDense)
        assert id(sub.kernel) in kernels


def check_attention_initializers():
    mha = _attention()
    internals.set_attention_initializers(
        mha, kernel=keras.initializers.Orthogonal(), bias=keras.initializers.Ones()
    )
    config = mha.get_config()
    assert config["kernel_initializer"]["class_name"] == "Orthogonal"
    assert config["bias_initializer"]["class_name"] == "Ones"


def check_call_has_training_arg():
    for layer in (L.Dropout(0.5), L.Dense(2), L.Flatten(), L.ReLU()):
        takes = "training" in inspect.signature(layer.call).parameters
        assert internals.call_has_training_arg(layer) == takes, type(layer).__name__
    assert not all(
        internals.call_has_training_arg(x) for x in (L.Flatten(), L.ReLU())
    )  # both answers occur


def check_sequential_functional():
    model = keras.Sequential([keras.Input((2,)), L.Dense(3, name="d")])
    graph = internals.sequential_graph(model)
    assert isinstance(graph, internals.functional_class())
    assert model.get_layer("d") in graph.operations


def check_nodes():
    model, a, drop, b = _chain()
    assert [n.operation for n in internals.outbound_nodes(a)] == [drop]
    assert internals.outbound_nodes(b) == []
    (node,) = internals.inbound_nodes(b)
    assert node.operation is b
    assert internals.producer(node.input_tensors[0]) is drop


def check_keras_history():
    model, a, drop, b = _chain()
    (out,) = model.outputs
    assert internals.producer(out) is b
    assert internals.history(out).operation is b
    assert internals.producing_node(out).operation is b
    assert internals.history(np.zeros(2)) is None


def check_inputs_struct():
    model, *_ = _chain()
    assert isinstance(internals.inputs_struct(model), list)  # built on `[inp]`
    inp = keras.Input((3,))
    single = keras.Model(inp, L.Dense(2)(inp))
    assert isinstance(internals.inputs_struct(single), keras.KerasTensor)


def check_run_through_graph():
    model, a, drop, b = _chain()
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    seen = []

    def operation_fn(op):
        seen.append(op)
        return op

    out = internals.run_through_graph(model, [x], operation_fn)
    assert seen == [a, drop, b]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(model([x])), rtol=1e-6
    )


def check_stateless_scope():
    assert not internals.in_stateless_scope()
    with keras.StatelessScope():
        assert internals.in_stateless_scope()


def check_jax_tracing_scope():
    assert not internals.in_jax_tracing_scope()
    if keras.backend.backend() != "jax":
        return
    import jax

    inside = []
    jax.jit(lambda x: inside.append(internals.in_jax_tracing_scope()) or x)(np.zeros(2))
    assert inside == [True]


# (what moves when Keras changes it, the check that calls the accessor)
CHECKS = [
    ("keras.src.layers.convolutional.base_*.Base*Conv*", check_conv_bases),
    ("keras.src.models.functional.Functional", check_functional_class),
    ("keras.src.ops.numpy.Add", check_add_op_class),
    ("keras.src.initializers.ALL_OBJECTS_DICT", check_initializer_names),
    ("Layer._flatten_layers", check_flatten_layers),
    ("Layer._layers", check_layers),
    ("Layer._trainable_variables / _non_trainable_variables", check_own_variables),
    ("Dense._kernel / Embedding._embeddings", check_stored_variable),
    (
        "MultiHeadAttention._query_dense, _key_dense, _value_dense, _output_dense",
        check_attention_projections,
    ),
    ("MultiHeadAttention._kernel_initializer / _bias_initializer", check_attention_initializers),
    ("Layer._call_has_training_arg", check_call_has_training_arg),
    ("Sequential._functional", check_sequential_functional),
    ("Operation._outbound_nodes / _inbound_nodes", check_nodes),
    ("KerasTensor._keras_history", check_keras_history),
    ("Functional._inputs_struct", check_inputs_struct),
    ("Functional._run_through_graph", check_run_through_graph),
    ("keras.src.backend.common.stateless_scope.in_stateless_scope", check_stateless_scope),
    ("keras.src.utils.jax_utils.is_in_jax_tracing_scope", check_jax_tracing_scope),
]


@pytest.mark.parametrize("attribute, check", CHECKS, ids=[c.__name__[6:] for _, c in CHECKS])
def test_accessor(attribute, check):
    try:
        check()
    except Exception as e:  # any failure of an accessor means the same thing
        pytest.fail(
            f"Keras {keras.version()} moved or changed `{attribute}` (keras_weightinit."
            f"_keras_internals was checked against Keras {internals.KERAS_CHECKED}): "
            f"{type(e).__name__}: {e}",
            pytrace=True,
        )


def test_every_private_attribute_has_a_check():
    checked = " ".join(attribute for attribute, _ in CHECKS)
    missing = [a for a in internals.PRIVATE_ATTRIBUTES if a.lstrip("_") not in checked]
    assert not missing, f"add a check to CHECKS for {missing}"


# -- no other module touches them ----------------------------------------------


def _private_prefix(node: ast.expr) -> str | None:
    """The leading text of a string expression (`"_x"`, `"_" + y`, `f"_{y}"`), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _private_prefix(node.left)
    if isinstance(node, ast.JoinedStr) and node.values:
        return _private_prefix(node.values[0])
    return None


def _private_uses(path: Path) -> list[str]:
    """Where a module reaches `keras.src` or a private attribute of a Keras object."""
    text = path.read_text(encoding="utf-8")
    found = [(i, "keras.src") for i, line in enumerate(text.splitlines(), 1) if "keras.src" in line]
    private = set(internals.PRIVATE_ATTRIBUTES)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append((node.lineno, f".{node.attr}"))
        # getattr(x, "_name"), hasattr, setattr: a private name read as a string.
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
        ):
            prefix = _private_prefix(node.args[1]) or ""
            if prefix.startswith("_") and not prefix.startswith("__"):
                found.append((node.lineno, f"{node.func.id}(..., {ast.unparse(node.args[1])})"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_no_other_module_touches_keras_private_api():
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name != "_keras_internals.py")
    assert len(modules) > 10
    # The benchmarks too: they import the package and run on the same Keras.
    modules += sorted((PACKAGE.parent / "benchmarks").glob("*.py"))
    uses = {f"{p.parent.name}/{p.name}": _private_uses(p) for p in modules}
    uses = {name: found for name, found in uses.items() if found}
    assert not uses, (
        f"reach Keras's private API through keras_weightinit._keras_internals only: {uses}"
    )


def test_the_grep_finds_a_private_use(tmp_path):
    # The check above must be able to fail.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from keras.src.models.functional import Functional\n"
        "x = layer._flatten_layers()\n"
        "y = getattr(layer, '_keras_history', None)\n"
        "z = getattr(layer, '_' + attr)\n"
        "w = getattr(layer, f'_{part}_dense')\n"
        "v = getattr(layer, 'name') or getattr(layer, '__name__') or getattr(layer, attr)\n",
        encoding="utf-8",
    )
    found = [u.split(":")[0] for u in _private_uses(bad)]
    assert found == ["line 1", "line 2", "line 3", "line 4", "line 5"]
