"""initialize (analytic and LSUV) on real architectures: keras.applications and keras-hub.

Every model is built from constructor arguments (weights=None, tiny configs):
nothing is downloaded. The bounds are those of docs/model-init.md, "Residual networks": with N(0, 1)
inputs in inference mode (a fresh BatchNormalization is then the identity),
the residual stream of ResNet50 after the analytic scheme without residual
handling reaches std 193 and its logits 177; the bounds below (every `Add`
output std <= 10, logits std in [0.05, 10]) fail by a factor of about 20
without it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests import zoo
from tests.helpers import assert_std

pytestmark = [pytest.mark.slow, pytest.mark.zoo]

BATCH = 16  # LSUV's minimum: the smallest batch that keeps these tests lean


def _app(name: str) -> keras.Model:
    return zoo.application(name, classifier_activation=None)


def _images(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((BATCH, 32, 32, 3)).astype("float32")


def _add_and_logits(model, x, training=False):
    adds = [layer.output for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(model.inputs, adds + [model.output])
    outs = [np.asarray(keras.ops.convert_to_numpy(o)) for o in probe([x], training=training)]
    return outs[:-1], outs[-1]


@pytest.mark.parametrize(
    "name, action",
    [("ResNet50", "zeroed"), ("ResNet50V2", "scaled by 0.25"), ("MobileNetV2", "zeroed")],
)
def test_analytic_keeps_the_residual_stream_bounded(name, action):
    model = _app(name)
    report = kwi.initialize(model, seed=0)
    # ResNet50V2's branches end in a convolution (pre-activation blocks):
    # 16 of them, std times 1/sqrt(16).
    assert report.residual and {b.action for b in report.residual} == {action}
    x = _images()
    adds, logits = _add_and_logits(model, x)
    assert max(a.std() for a in adds) <= 10
    assert 0.05 <= logits.std() <= 10
    _, trained = _add_and_logits(model, x, training=True)
    assert np.isfinite(trained).all()


def test_resnet50_lsuv_keeps_zeroed_branches_and_checks():
    model = _app("ResNet50")
    report = kwi.initialize(model, _images(1), seed=0)
    zeroed = [b for b in report.residual if b.action == "zeroed"]
    assert len(zeroed) == 16  # one per bottleneck block: 3 + 4 + 6 + 3
    for b in zeroed:
        gamma = keras.ops.convert_to_numpy(model.get_layer(b.layer).gamma)
        assert not gamma.any()  # LSUV never rescales a zeroed branch back up
    report.check(0.9, 1.1)  # LSUV's default tol 0.1 on the variance: std within 5%
    adds, logits = _add_and_logits(model, _images(2))
    assert max(a.std() for a in adds) <= 10 and 0.05 <= logits.std() <= 10


def test_mobilenetv2_lsuv_checks():
    model = _app("MobileNetV2")
    kwi.initialize(model, _images(1), seed=0).check(0.9, 1.1)


def _hub(name: str) -> keras.Model:
    pytest.importorskip("keras_hub")
    return zoo.hub_backbone(name, max_sequence_length=32)


def _bert():
    return _hub("BertBackbone")


def _gpt2():
    return _hub("GPT2Backbone")


def _tokens(bert: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    data = {
        "token_ids": rng.integers(1, 1000, (BATCH, 16)).astype("int32"),
        "padding_mask": np.ones((BATCH, 16), dtype="int32"),
    }
    if bert:
        data["segment_ids"] = rng.integers(0, 2, (BATCH, 16)).astype("int32")
    return data


def test_bert_lsuv_passes_check():
    model = _bert()
    report = kwi.initialize(model, _tokens(True), seed=0)
    report.check(0.9, 1.1)
    # Post-LN blocks renormalize the sum after each add: nothing to scale.
    assert report.residual and all(b.action == "kept" for b in report.residual)
    assert all("normalize_first=False" in b.reason for b in report.residual)
    # The segment table (2 rows) is left out of the band, with the reason shown.
    (seg,) = report["segment_embedding"]
    assert not seg.checked and "a lookup has no input to normalize" in seg.note
    blocks = {s.layer for s in report.not_stored}
    assert {"transformer_layer_0", "transformer_layer_1"} <= blocks


def test_gpt2_scales_branches_and_ties_the_embedding():
    model = _gpt2()
    report = kwi.initialize(model, seed=0)
    # Two pre-LN blocks, two branches each: std times 1/sqrt(4).
    scaled = [b for b in report.residual if b.action.startswith("scaled")]
    assert len(scaled) == 4 and all(b.action == "scaled by 0.5" for b in scaled)
    (tok,) = report["token_embedding"]
    assert tok.fan_in == 64 and tok.mode == "fan_in"
    table = model.get_layer("token_embedding").embeddings
    # Tied: var 1/dim. 64,000 values: the sample std's relative SE is 0.28%;
    # 7 of them are 1.96%, under the 2% used before.
    assert_std(table, 1 / 8.0, 7)
    lsuv = kwi.initialize(model, _tokens(False), seed=0)
    lsuv.check(0.9, 1.1)
    ends = [row for row in lsuv if row.residual]
    assert len(ends) == 4
    for row in ends:
        # LSUV keeps the branch's scale: tol 0.1 on the variance is 5% on the std.
        assert row.target_std == 0.5 and abs(row.std_after / 0.5 - 1) <= 0.051
