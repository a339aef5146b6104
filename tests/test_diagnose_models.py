"""diagnose on real architectures: it sees the kernels initialize touches.

Every model is built from constructor arguments (weights=None, tiny
keras-hub configs): nothing is downloaded. For each, `initialize` lists the
kernels it re-drew; `diagnose` must report at least 90% of them (matched by
layer name and weight, as a multiset: keras-hub repeats sublayer names in
every block) with finite statistics. Before diagnose followed the model's
walk it refused GPT-2 ("no layer with a kernel") and saw nothing inside
BERT's transformer blocks.
"""

from __future__ import annotations

import math
from collections import Counter

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from tests import zoo

pytestmark = [pytest.mark.slow, pytest.mark.zoo]

BATCH = 4  # diagnose needs no minimum; a small batch keeps these lean


def _app(name: str) -> keras.Model:
    return zoo.application(name)  # ends in Dense(softmax), as the loss test expects


def _tokens(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(0, 1000, size=(BATCH, 16)).astype("int32"),
        "padding_mask": np.ones((BATCH, 16), "int32"),
    }


def _hub(name: str) -> keras.Model:
    pytest.importorskip("keras_hub")
    return zoo.hub_backbone(name, max_sequence_length=32)


def _bert():
    batch = {**_tokens(), "segment_ids": np.zeros((BATCH, 16), "int32")}
    return _hub("BertBackbone"), batch


def _gpt2():
    return _hub("GPT2Backbone"), _tokens()


def _images(name):
    def build():
        x = np.random.default_rng(0).standard_normal((BATCH, 32, 32, 3)).astype("float32")
        return _app(name), x

    return build


def _covered(report, result) -> tuple[int, int]:
    touched = Counter((r.layer, r.weight) for r in report)
    finite = Counter(
        (row.layer, row.weight)
        for row in result
        if all(math.isfinite(v) for v in (row.mean, row.std, row.grad_norm, row.weight_norm))
    )
    return sum(min(n, finite[key]) for key, n in touched.items()), sum(touched.values())


@pytest.mark.parametrize(
    "build, classifier",
    [
        (_images("ResNet50"), True),
        (_images("MobileNetV2"), True),
        (_bert, False),
        (_gpt2, False),
    ],
    ids=["ResNet50", "MobileNetV2", "BertBackbone", "GPT2Backbone"],
)
def test_diagnose_covers_the_kernels_initialize_touches(build, classifier):
    model, batch = build()
    report = kwi.initialize(model, seed=0)
    result = kwi.diagnose(model, batch)
    covered, total = _covered(report, result)
    assert total > 10 and covered >= 0.9 * total, (covered, total, result.table())
    assert math.isfinite(result.loss)
    # keras.applications end in Dense(softmax): no targets means the seeded
    # cross-entropy; a backbone's hidden states get mean(y²).
    expected = "cross-entropy against seeded random labels" if classifier else "mean(y²)"
    assert result.loss_name == expected


def test_rows_inside_transformer_blocks_are_named_by_path():
    model, batch = _gpt2()
    result = kwi.diagnose(model, batch)
    names = [row.name for row in result]
    for block in ("transformer_layer_0", "transformer_layer_1"):
        for part in ("query", "key", "value", "output"):
            assert f"{block}/self_attention/{part}" in names
    assert result[0].name == "token_embedding"


def test_resnet50_zeroed_branches_are_noted_not_flagged():
    model, batch = _images("ResNet50")()
    kwi.initialize(model, seed=0)  # zeroes the last gamma of each bottleneck branch
    result = kwi.diagnose(model, batch)
    # ResNet50 has 3 + 4 + 6 + 3 = 16 bottleneck blocks of 3 convolutions.
    noted = [row for row in result if row.note]
    assert len(noted) == 16 * 3, result.table()
    assert all(row.grad_norm == 0.0 for row in noted)
    assert all(row.name.split("_")[-1] == "conv" and "_0_" not in row.name for row in noted)
    assert not any("vanishing gradient" in row.flags for row in result), result.table()
    assert len(result.flagged) <= 3, result.table()
