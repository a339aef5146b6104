"""Residual-aware initialization, and the layer forms of real architectures.

The growth bounds are those of docs/model-init.md, "Residual networks". Without residual handling a
variance-preserving branch doubles the stream's variance per block when no
normalization precedes it ((1 + 1)^24 for the MLP below: x4096 on the std)
and adds 1 per branch after a LayerNormalization (sqrt(1 + 16) = x4.1 for
the transformer). Scaling each of the N branch ends' std by 1/sqrt(N)
bounds them at sqrt((1 + 1/N)^N) < sqrt(e) = 1.65 and sqrt(1 + 1) = 1.41.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import _forward
from keras_weightinit.report import NO_KERNEL
from tests.helpers import assert_std, to_numpy
from tests.zoo import hub_backbone, pre_ln_transformer, residual_mlp


def _normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _growth(model, x):
    return float(to_numpy(model(x)).std() / x.std())


def test_residual_mlp_stream_grows_at_most_x3():
    keras.utils.set_random_seed(0)
    model = residual_mlp()
    x = _normal((512, 128))
    kwi.initialize(model, seed=0, residual="none")
    assert _growth(model, x) > 100  # the failure this fixes: x4096 expected
    report = kwi.initialize(model, seed=0)
    assert _growth(model, x) <= 3
    assert len(report.residual) == 24
    assert {b.action for b in report.residual} == {f"scaled by {1 / math.sqrt(24):.4g}"}
    # The branch end is linear: Glorot, var 2 / (128 + 128), times 1/24.
    last = model.layers[-2]
    assert isinstance(last, keras.layers.Dense)
    expected = math.sqrt(2.0 / 256 / 24)
    # 16,384 values: the sample std's relative SE is 0.55%; 5 SE is 2.76%,
    # under the 3% used before.
    assert_std(last.kernel, expected, 5)


def test_pre_ln_transformer_stream_grows_at_most_x2():
    keras.utils.set_random_seed(0)
    model = pre_ln_transformer()
    x = _normal((64, 16, 64))
    kwi.initialize(model, seed=0, residual="none")
    assert _growth(model, x) > 3  # sqrt(17) = 4.1 expected
    report = kwi.initialize(model, seed=0)
    assert _growth(model, x) <= 2
    weights = sorted({(b.layer_type, b.weight) for b in report.residual})
    assert weights == [("Dense", "kernel"), ("MultiHeadAttention", "output")]
    # One initializer serves MHA's four projections: the scale is not stored.
    assert any(s.layer_type == "MultiHeadAttention" for s in report.not_stored)


def test_zero_mode_makes_every_block_the_identity():
    keras.utils.set_random_seed(0)
    model = residual_mlp(depth=4, width=32)
    x = _normal((32, 32))
    report = kwi.initialize(model, seed=0, residual="zero")
    assert {b.action for b in report.residual} == {"zeroed"}
    np.testing.assert_array_equal(to_numpy(model(x)), x)
    # LSUV leaves a zeroed branch at zero.
    kwi.initialize(model, x, seed=0, residual="zero")
    np.testing.assert_array_equal(to_numpy(model(x)), x)


def _bn_block(width=16):
    inp = keras.Input((width,))
    h = keras.layers.Dense(width, activation="relu")(inp)
    h = keras.layers.Dense(width)(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    return keras.Model(inp, keras.layers.Add(name="add")([inp, h]))


def test_gamma_is_zeroed_or_scaled_and_stored_in_the_config():
    model = _bn_block()
    report = kwi.initialize(model, seed=0)
    (branch,) = report.residual
    assert (branch.site, branch.layer, branch.weight, branch.action) == (
        "add",
        "bn",
        "gamma",
        "zeroed",
    )
    assert not to_numpy(model.get_layer("bn").gamma).any()
    clone = keras.models.clone_model(model)  # rebuilt from the config
    assert not to_numpy(clone.get_layer("bn").gamma).any()
    kwi.initialize(model, seed=0, residual="scale")  # one branch: 1/sqrt(1)
    np.testing.assert_array_equal(to_numpy(model.get_layer("bn").gamma), 1.0)
    x = _normal((32, 16))
    kwi.initialize(model, x, seed=0)
    assert not to_numpy(model.get_layer("bn").gamma).any()


def test_none_keeps_todays_behaviour():
    a, b = _bn_block(), _bn_block()
    kwi.initialize(a, seed=0, residual="none")
    report = kwi.initialize(b, seed=0, residual="none")
    assert report.residual == []
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(to_numpy(va), to_numpy(vb))
    assert to_numpy(a.get_layer("bn").gamma).all()


@pytest.mark.parametrize("bad", ["bogus", None, 1])
def test_residual_argument_is_validated(bad):
    with pytest.raises((ValueError, TypeError), match="residual"):
        kwi.initialize(_bn_block(), residual=bad)


def test_lsuv_keeps_the_scale_of_a_scaled_branch():
    keras.utils.set_random_seed(0)
    model = residual_mlp(depth=8, width=64)
    report = kwi.initialize(model, _normal((256, 64)), seed=0)
    report.check(0.9, 1.1)
    ends = [r for r in report if r.residual]
    assert len(ends) == 8
    for r in ends:
        assert r.target_std == pytest.approx(1 / math.sqrt(8))
        # LSUV's tol 0.1 on the variance is within 5.1% on the std.
        assert abs(r.std_after / r.target_std - 1) <= 0.051


def test_lsuv_unit_aims_at_its_target_std():
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(64)
    model = keras.Sequential([keras.Input((64,)), dense])
    unit = _forward.Unit(dense, dense.kernel, target_std=0.25)
    x = _normal((256, 64))
    _forward.run(model, x, [unit], lsuv=True, tol=0.01, max_iter=10)
    assert unit.converged
    out = to_numpy(model(x)).std()
    # tol 0.01 on the variance ratio: the std is within 0.5% of 0.25.
    assert abs(out / 0.25 - 1) <= 0.006


def test_grouped_conv_gets_the_depthwise_variance():
    channels = 256
    conv = keras.layers.Conv2D(channels, 7, groups=channels, padding="same")
    depthwise = keras.layers.DepthwiseConv2D(7, padding="same")
    inp = keras.Input((16, 16, channels))
    model = keras.Model(inp, depthwise(conv(inp)))
    report = kwi.initialize(model, seed=0)
    grouped, dw = report[0], report[1]
    assert (grouped.fan_in, grouped.fan_out) == (49, 49) == (dw.fan_in, dw.fan_out)
    expected = math.sqrt(2.0 / (49 + 49))  # linear: Glorot with fans 49 and 49
    # 12,544 values each: relative SE 0.63%; 4.5 SE is 2.84%, under the 3%
    # used before.
    for layer in (conv, depthwise):
        assert_std(layer.kernel, expected, 4.5, what=layer.name)
    assert grouped.weight_std == pytest.approx(expected)


def _doubled_relu(x):
    return 2.0 * keras.activations.relu(x)


def test_gain_accepts_any_callable_activation():
    model = keras.Sequential(
        [keras.Input((256,)), keras.layers.Dense(256, activation=_doubled_relu)]
    )
    report = kwi.initialize(model, seed=0)
    assert not len(report)
    (skip,) = report.skipped
    assert "gain=" in skip.reason
    report = kwi.initialize(model, seed=0, gain="second_moment")
    (row,) = report
    # E[(2 relu z)^2] = 4 / 2 = 2: gain 1/sqrt(2), scale 1/2.
    assert row.activation == "_doubled_relu"
    assert row.scale == pytest.approx(0.5, rel=1e-3)
    (row,) = kwi.initialize(model, seed=0, gain=1.5)
    assert row.scale == pytest.approx(2.25)


def test_tied_embedding_gives_unit_logits():
    vocab, dim = 1000, 64
    emb = keras.layers.ReversibleEmbedding(vocab, dim, tie_weights=True)
    tok = keras.Input((8,), dtype="int32")
    h = keras.layers.LayerNormalization()(emb(tok))
    model = keras.Model(tok, emb(h, reverse=True))
    report = kwi.initialize(model, seed=0)
    (row,) = report[emb.name]
    assert (row.fan_in, row.mode) == (dim, "fan_in") and "tied" in row.note
    ids = np.random.default_rng(0).integers(0, vocab, (16, 8))
    # Each logit is a sum of 64 terms h_i e_i with E[h_i^2] = 1 (normalized)
    # and Var(e) = 1/64: unit variance. 128,000 logits, a table of 64,000
    # values (relative SE 0.3%): 5% is far beyond chance, far below sqrt(64).
    assert abs(to_numpy(model(ids)).std() - 1.0) < 0.05


def test_position_embedding_gets_the_token_tables_scale():
    keras_hub = pytest.importorskip("keras_hub")
    vocab, seq, dim = 1000, 256, 64
    tok = keras.Input((seq,), dtype="int32")
    emb = keras.layers.ReversibleEmbedding(vocab, dim, tie_weights=True)
    pos = keras_hub.layers.PositionEmbedding(seq)
    x = emb(tok)
    model = keras.Model(tok, keras.layers.LayerNormalization()(x + pos(x)))
    report = kwi.initialize(model, seed=0)
    assert pos.name not in [s.layer for s in report.skipped]
    (row,) = report[pos.name]
    assert (row.fan_in, row.mode) == (dim, "fan_in")
    # var 1/dim, as the tied token rows (fan_in = dim): std 0.125 where a
    # lookup's N(0, 1) gives 1 and keras-hub's glorot_uniform 0.088. 16,384
    # values: the sample std's relative SE is 1/sqrt(2n) = 0.55%; 5 SE is 2.76%,
    # under the 3% used before.
    assert_std(pos.position_embeddings, 1 / math.sqrt(dim), 5)
    # Two samples (64,000 and 16,384 values): the SE of the ratio of their
    # stds is sqrt(1/128,000 + 1/32,768) = 0.62%, so 3% is 4.8 SE.
    table_std = to_numpy(pos.position_embeddings).std()
    assert abs(to_numpy(emb.embeddings).std() / table_std - 1) < 0.03
    # The scheme is written into the layer, so a rebuilt layer draws the same.
    assert pos.get_config()["initializer"]["config"]["mode"] == "fan_in"


def test_report_indexing_by_position_and_name():
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")]
    )
    report = kwi.initialize(model, seed=0)
    assert report[0] is list(report)[0] and report[-1].layer == "b"
    assert report["a"] == [report[0]]
    assert report[0:2] == list(report)
    with pytest.raises(TypeError, match="position"):
        report[1.5]


class _Block(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(16)
        self.act = keras.layers.ReLU()
        self.scale = None

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.scale = self.add_weight(shape=(16,), initializer="ones", name="scale")

    def call(self, x):
        return self.act(self.dense(x)) * self.scale


def test_guesses_and_containers_are_reported_as_such():
    inp = keras.Input((16,))
    model = keras.Model(inp, _Block()(inp))
    report = kwi.initialize(model, seed=0)
    (row,) = report
    assert row.activation == "relu" and row.guessed
    assert "guessed" in str(report)
    (container,) = report.skipped
    assert container.container and "sublayers are initialized" in container.reason
    assert "0 layers left unchanged" in str(report)


@pytest.mark.slow
def test_the_residual_benchmark_runs_and_meets_its_targets(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "signal_propagation.py"
    spec = importlib.util.spec_from_file_location("signal_propagation", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.residual_main(["--seeds", "0", "--apps"]) == 0
    out = capsys.readouterr().out
    assert "| mlp |" in out and "| transformer |" in out
    assert out.count("PASS") == 2 and "FAIL" not in out


def test_check_reads_every_row_against_its_target():
    from keras_weightinit.report import InitReport, LayerInit, SignalOutOfBandError

    def row(std, target=1.0):
        return LayerInit(
            "self_attention", "MultiHeadAttention", "output", (4, 4), 4, 4, "linear",
            "none", "GlorotNormalCustom", {}, 1.0, "fan_avg", 0.5,
            std_after=std, target_std=target,
        )  # fmt: skip

    # Two blocks whose sublayers share a name: the second is out of band.
    report = InitReport("lsuv", [row(1.0), row(3.0)], [], 0, True)
    with pytest.raises(SignalOutOfBandError, match="1 of 2"):
        report.check(0.9, 1.1)
    # A branch end scaled to 0.25 on purpose is judged against 0.25.
    InitReport("lsuv", [row(0.25, target=0.25)], [], 0, True).check(0.9, 1.1)
    with pytest.raises(SignalOutOfBandError, match="target 0.25"):
        InitReport("lsuv", [row(1.0, target=0.25)], [], 0, True).check(0.9, 1.1)


def test_branches_are_found_in_nested_models_and_tensor_sums():
    inp = keras.Input((16,))
    x = _bn_block()(inp)  # an Add inside a nested model
    for i in range(2):  # `x + f(x)` on tensors: keras.ops.add in the graph
        h = keras.layers.Dense(16, activation="relu")(x)
        x = x + keras.layers.Dense(16, name=f"end{i}")(h)
    x = keras.layers.Dense(16, name="pooled_end")(x)
    shortcut = keras.layers.Reshape((16, 1))(x)
    h = keras.layers.Reshape((16, 1))(keras.layers.Dense(16, name="branch_end")(x))
    x = keras.layers.Add()([shortcut, keras.layers.MaxPooling1D(1)(h)])  # through a pooling
    report = kwi.initialize(keras.Model(inp, x), seed=0)
    found = {(b.layer, b.weight, b.action) for b in report.residual}
    factor = f"scaled by {1 / math.sqrt(3):.4g}"  # three branches end in a kernel
    assert found == {
        ("bn", "gamma", "zeroed"),
        ("end0", "kernel", factor),
        ("end1", "kernel", factor),
        ("branch_end", "kernel", factor),
    }


def test_a_branch_end_that_feeds_other_layers_is_kept():
    # NASNet's cell form: h = BN(conv(x)) is both a branch of `p + pool(h)`
    # and the input of the cell's other operations. Zeroing h's gamma would
    # zero those too (LSUV then measured std 0 at the separable convolutions).
    inp = keras.Input((8, 8, 4))
    p = keras.layers.ReLU()(inp)
    h = keras.layers.BatchNormalization(name="h_bn")(keras.layers.Conv2D(4, 1)(p))
    pooled = keras.layers.AveragePooling2D(3, strides=1, padding="same")(h)
    x = keras.layers.Add(name="cell_add")([pooled, p])
    other = keras.layers.Conv2D(4, 3, padding="same", name="other")(h)
    model = keras.Model(inp, keras.layers.Concatenate()([x, other]))
    report = kwi.initialize(model, seed=0)
    (branch,) = [b for b in report.residual if b.site == "cell_add"]
    assert branch.action == "kept" and "also feeds other layers" in branch.reason
    gamma = to_numpy(model.get_layer("h_bn").gamma)
    assert np.all(gamma == 1.0)
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 4)).astype("float32")
    probe = keras.Model(inp, model.get_layer("other").output)
    # The other operation still sees h: a conv of 36 unit-variance inputs,
    # variance-preserving, std near 1 (never 0).
    assert to_numpy(probe(x)).std() > 0.3


class RootMeanSquareNorm(keras.layers.Layer):
    """A normalization of a library's own (keras-hub's LlamaLayerNorm's form)."""

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * keras.ops.rsqrt(keras.ops.mean(x * x, -1, keepdims=True) + 1e-6) * self.scale


class MixingNorm(keras.layers.Layer):
    """Named like a normalization, but owns a matrix: not a scale-only layer."""

    def build(self, shape):
        self.mix = self.add_weight(shape=(shape[-1], shape[-1]), initializer="identity")

    def call(self, x):
        return x @ self.mix


def test_normalizations_of_a_library_own_are_kept_not_unknown():
    from keras.src.applications.convnext import LayerScale

    inp = keras.Input((8,))
    x = RootMeanSquareNorm()(keras.layers.Dense(8)(inp))
    x = LayerScale(1e-6, 8)(x)
    model = keras.Model(inp, MixingNorm()(x))
    report = kwi.initialize(model, seed=0)
    reasons = {s.layer_type: s.reason for s in report.skipped}
    assert reasons["RootMeanSquareNorm"] == reasons["LayerScale"] == NO_KERNEL
    assert reasons["MixingNorm"] == "unknown layer type"
    # Kept as they are: the scale stays 1 and LayerScale's 1e-6.
    assert np.all(to_numpy(model.layers[2].scale) == 1.0)
    assert np.allclose(to_numpy(model.layers[3].gamma), 1e-6)


@pytest.mark.slow
@pytest.mark.zoo
def test_vit_blocks_branches_are_found():
    # ViTEncoderBlock holds its attention as `mha` and its feed-forward
    # network as an `MLP` sublayer: both branch ends must still be found.
    pytest.importorskip("keras_hub")
    model = hub_backbone("ViTBackbone", seed=None)
    report = kwi.initialize(model, seed=0)
    ends = sorted((b.site.split(" ")[-1], b.layer_type) for b in report.residual)
    assert ends == [("(feedforward)", "Dense")] * 2 + [("(mha)", "MultiHeadAttention")] * 2
    # Four branches, pre-LN: each end's std times 1/sqrt(4).
    assert {b.action for b in report.residual} == {"scaled by 0.5"}
