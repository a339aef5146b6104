"""The demo as a library (keras_weightinit.demo): no argparse, plain result objects.

The command line's own behaviour (tables, files, exit codes) is tested in
tests/test_cli.py through its real entry points; here the same experiments
are called as a notebook would call them.
"""

from __future__ import annotations

import json
import math

import keras
import pytest

from keras_weightinit import demo
from keras_weightinit.diagnostics import Diagnosis


def test_candidates_are_every_preset_keras_default_factory_and_lsuv():
    found = demo.candidates()
    presets = [f"{f}_{d}_custom" for f in ("glorot", "lecun", "he") for d in ("normal", "uniform")]
    assert list(found) == ["default", *presets, "factory", "lsuv"]
    assert [c.name for c in found.values() if c.data_driven] == ["lsuv"]
    assert len({c.label for c in found.values()}) == len(found)  # one column label each


@pytest.mark.parametrize("names", [["he_uniform"], [], ["default", "Default"], "he"])
def test_unknown_initializers_are_refused_by_name(names):
    for run in (demo.compare, demo.train):
        with pytest.raises(ValueError, match=r"Argument `initializers` must be") as info:
            run(initializers=names)
        assert f"Received: initializers={names!r}" in str(info.value)


def test_for_each_runs_every_candidate_at_every_seed_in_order():
    chosen = [demo.candidates()["default"], demo.candidates()["factory"]]
    calls, lines = [], []

    def step(candidate, seed):
        calls.append((candidate.name, seed))
        return f"{candidate.name}@{seed}", f" seed {seed}"

    results = demo.for_each(chosen, [7, 8], step, lines.append)
    assert calls == [("default", 7), ("factory", 7), ("default", 8), ("factory", 8)]
    assert results == {"default": ["default@7", "default@8"], "factory": ["factory@7", "factory@8"]}
    assert lines == [
        "  1/4 default seed 7",
        "  2/4 factory seed 7",
        "  3/4 default seed 8",
        "  4/4 factory seed 8",
    ]


def test_one_name_is_one_initializer():
    assert [c.name for c in demo._chosen("lsuv")] == ["lsuv"]
    assert [c.name for c in demo._chosen(None)] == list(demo.candidates())


def _cells(text: str, label: str) -> list[str]:
    """The cells of the table row that starts with `label`."""
    for line in text.splitlines():
        if line.startswith(label):
            return line[len(label) :].split()
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_compare_returns_its_diagnoses_and_prints_them(tmp_path):
    progress = []
    comparison = demo.compare(
        depth=4,
        width=16,
        batch_size=32,
        initializers=["default", "he_normal_custom"],
        seed=3,
        progress=progress.append,
    )
    assert list(comparison.results) == ["default", "he_normal_custom"]
    assert all(isinstance(d, Diagnosis) for d in comparison.results.values())
    assert comparison.batch_size == 32 and comparison.mlp == demo.MLP("relu", 4, 16)
    # 4 hidden layers and the logits, each measured once per initializer.
    assert [len(d.layers) for d in comparison.results.values()] == [5, 5]
    assert progress[-1] == "  2/2 he_normal_custom: measured"

    text = str(comparison)
    assert text.startswith("output std per layer:\n")
    assert "kernel gradient norm per layer" in text
    stds = _cells(comparison.table("std"), "  1 hidden_1")
    for cell, diagnosis in zip(stds, comparison.results.values()):
        # Printed in four significant digits: a relative error below 5e-4.
        assert float(cell) == pytest.approx(diagnosis.layers[0].std, rel=5e-4)
    assert _cells(comparison.table("grad_norm"), "  5 logits") != []
    assert "he_n     he_normal_custom" in text

    record = comparison.to_dict()
    assert list(record) == ["command", "activation", "depth", "width", "backend", "seed", "results"]
    assert record["backend"] == keras.backend.backend() and record["seed"] == 3
    png, json_path = comparison.save(tmp_path / "new")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(json_path.read_text())["results"].keys() == comparison.results.keys()


def test_rows_to_show_keeps_both_ends_of_a_deep_mlp():
    assert demo._rows_to_show(5) == [1, 2, 3, 4, 5]
    rows = demo._rows_to_show(101)
    assert rows[0] == 1 and rows[-1] == 101 and len(rows) == 24 and rows == sorted(set(rows))


@pytest.mark.slow
def test_train_returns_runs_summaries_and_a_ranked_table():
    training = demo.train(
        depth=3, width=8, epochs=2, seeds=2, seed=5, initializers=["factory", "default"]
    )
    assert training.seeds == [5, 6]
    assert [r["initializer"] for r in training.results] == ["factory", "default"]
    for result in training.results:
        accs = [run["test_accuracy"] for run in result["runs"]]
        assert [run["seed"] for run in result["runs"]] == [5, 6]
        assert result["summary"]["n"] == 2
        assert result["summary"]["median"] == pytest.approx(sum(accs) / 2)  # two runs
        assert all(len(run["loss_curve"]) <= 2 for run in result["runs"])
        assert all(math.isfinite(run["seconds"]) and run["seconds"] > 0 for run in result["runs"])
    ranks = sorted(int(_cells(training.table(), name)[-1]) for name in ("factory", "default"))
    assert ranks == [1, 2]
    text = str(training)
    assert text.startswith("3 x Dense(8, relu) on digits, 2 epochs, seeds 5, 6 (chance: 10%):")
    assert text.endswith(training.sentence)
    assert "factory -> HeNormalCustom" in text
    record = training.to_dict()
    assert record["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    assert record["seeds"] == [5, 6] and record["epochs"] == 2
    json.dumps(record, allow_nan=True)  # what the command writes
