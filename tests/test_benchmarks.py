"""The benchmark script runs, briefly and at tiny sizes, so that it cannot rot.

No speed is asserted: the machines that run the suite are shared and their
timings are noise. What is asserted is that each case produces its rows and
that the memory measurement sees the tensor a backend allocates.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import keras
import pytest

from tests.helpers import PRESET_NAMES, check_ok, run_python

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_initializers.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # run_python puts this checkout first on the child's path: a script's own
    # folder comes first on its `sys.path`, so it would otherwise import
    # whatever copy is installed.
    return run_python(
        args=[str(SCRIPT), "--backend", keras.backend.backend(), *args], timeout=timeout
    )


def test_help_lists_the_options():
    out = check_ok(_run("--help", timeout=60))
    for option in ("--backend", "--quick", "--cases", "--rows", "--runs", "--json"):
        assert option in out


def test_unknown_row_is_refused():
    result = _run("--quick", "--rows", "he_uniform_customm", timeout=60)
    assert result.returncode != 0
    assert "he_uniform_customm" in result.stderr
    assert "he_uniform_custom" in result.stderr  # the known rows are listed


@pytest.mark.slow
def test_timing_cases_produce_every_selected_row(tmp_path):
    out_json = tmp_path / "timing.json"
    stdout = check_ok(
        _run(
            "--quick",
            "--cases", "dense,model,model_init",
            "--rows", "he_uniform_custom,numpy random",
            "--runs", "2",
            "--warmup", "0",
            "--no-memory",
            "--json", str(out_json),
        )
    )  # fmt: skip
    raw = json.loads(out_json.read_text())
    assert raw["backend"] == keras.backend.backend()
    dense = raw["cases"]["dense"]["timing"]["times"]
    # The row asked for, its Keras baseline, and the NumPy reference, each
    # timed once per round.
    assert set(dense) == {"he_uniform_custom", "keras he_uniform", "numpy random"}
    assert all(len(t) == 2 and min(t) > 0 for t in dense.values())
    # NumPy cannot build a Keras model: that case has only the Keras rows.
    model = raw["cases"]["model"]["timing"]["times"]
    assert set(model) == {"he_uniform_custom", "keras he_uniform"}
    assert "| he_uniform_custom | keras he_uniform |" in stdout
    model_init = raw["cases"]["model_init"]
    if not model_init.get("skipped"):
        assert set(model_init["times"]) >= {"initialize(model)", "LSUV", "one forward pass"}
        assert "× one forward pass" in stdout


@pytest.mark.slow
def test_memory_case_sees_the_tensor_the_backend_allocates(tmp_path):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is measured through Linux's /proc")
    out_json = tmp_path / "memory.json"
    stdout = check_ok(
        _run("--quick", "--cases", "huge", "--rows", "he_uniform_custom", "--json", str(out_json))
    )
    memory = json.loads(out_json.read_text())["cases"]["huge"]["memory"]
    assert set(memory) == {"he_uniform_custom", "keras he_uniform"}
    for row in memory.values():
        # The drawn tensor stays alive until VmHWM is read, so the peak is at
        # least its size (minus a little: RSS is counted in pages and other
        # threads may free memory meanwhile). A method blind to backend
        # allocations (tracemalloc) would report about 0 here.
        assert row["peak_bytes"] >= 0.9 * row["tensor_bytes"], row
    assert "peak / size" in stdout


SIGNAL_SCRIPT = SCRIPT.parent / "signal_propagation.py"


@pytest.mark.slow
def test_signal_propagation_runs_and_judges_its_targets(tmp_path):
    out_json = tmp_path / "signal.json"
    result = run_python(
        args=[
            str(SIGNAL_SCRIPT),
            "--depth",
            "6",
            "--width",
            "32",
            "--batch",
            "64",
            "--activations",
            "relu",
            "selu",
            "--seeds",
            "0",
            "--spread-seeds",
            "3",
            "--conv-batch",
            "16",
            "--json",
            str(out_json),
        ],
        timeout=600,
    )
    # At these toy sizes a target may be missed by chance (8-channel layers,
    # 3 networks); the script must then say FAIL and exit 1, else exit 0.
    assert result.returncode in (0, 1), result.stderr[-4000:]
    stdout = result.stdout
    verdicts = [line for line in stdout.splitlines() if line.startswith(("- PASS", "- FAIL"))]
    assert (result.returncode == 1) == any(v.startswith("- FAIL") for v in verdicts)
    data = json.loads(out_json.read_text())
    # The spread covers the four analytic targets, Gaussian, orthogonal and
    # moments, on each of the 3 networks, whatever --activations says.
    spread = data["spread"]
    assert len(spread) == 4 * 3 * 3
    assert {r["activation"] for r in spread} == {"relu", "leaky_relu", "selu", "linear"}
    assert all(r["ratio"] > 0 for r in spread)
    # Keras's default, analytic, orthogonal, moments and LSUV (and AnyInit if
    # it imports) side by side, per activation.
    schemes = ["keras", "analytic", "orthogonal", "moments", "lsuv"]
    if importlib.util.find_spec("anyinit") is not None:
        schemes.append("anyinit")
    assert {(r["activation"], r["scheme"]) for r in data["mlp"]} == {
        (a, s) for a in ("relu", "selu") for s in schemes
    }
    # The count of networks within [0.5, 2], one row per scheme, agrees with
    # the rows: a network is within iff its min and max std are.
    for r in data["mlp"]:
        assert r["within"] == (0.5 <= r["std_min"] and r["std_max"] <= 2.0)
    for scheme in schemes:
        n = sum(r["within"] for r in data["mlp"] if r["scheme"] == scheme)
        assert f"| {scheme} | {n}/2 |" in stdout
    assert "Spread over networks" in stdout
    judged = {v.split(":")[0][7:] for v in verdicts}
    assert judged == {
        "lsuv relu",
        "lsuv selu",
        "analytic relu",
        "analytic leaky_relu",
        "analytic selu",
        "analytic linear",
        "moments relu",
        "moments leaky_relu",
        "moments selu",
        "moments linear",
        "moments",
        "analytic Conv2DTranspose 256->8",
        "analytic DepthwiseConv2D + 1x1 Conv2D x6, 128 ch",
    }
    # LSUV sets each layer's std on its batch, so it meets its band at any size.
    assert all(v.startswith("- PASS") for v in verdicts if v[7:].startswith("lsuv"))
    assert {r["stack"] for r in data["conv"]} == {
        "Conv2DTranspose 256->8",
        "DepthwiseConv2D + 1x1 Conv2D x6, 128 ch",
    }


TRAINING_SCRIPT = SCRIPT.parent / "training.py"


@pytest.mark.slow
def test_training_benchmark_runs_every_cell_and_initializer(tmp_path):
    out_json = tmp_path / "training.json"
    result = run_python(
        args=[str(TRAINING_SCRIPT), "--quick", "--quiet", "--json", str(out_json)], timeout=1200
    )
    stdout = check_ok(result)
    data = json.loads(out_json.read_text())
    assert data["backend"] == keras.backend.backend()
    assert data["seeds"] == [0, 1]
    expected_rows = [
        "keras_default",
        *PRESET_NAMES,
        "for_activation",
        "initialize",
        *(["moments"] if data["moments"]["present"] else []),
        "lsuv",
    ]
    assert data["initializers"] == expected_rows
    if not data["moments"]["present"]:
        # The data-free mode is detected, not assumed: its absence is said.
        assert "data-free mode: absent" in stdout
    cells = {
        f"{c}-{o}"
        for c in ("relu", "selu", "tanh", "gelu", "residual_relu")
        for o in ("sgd", "adam")
    }
    assert set(data["cells"]) == cells
    for key, cell in data["cells"].items():
        assert set(cell["runs"]) == set(expected_rows), key
        for name, runs in cell["runs"].items():
            # Both seeds ran, each for its one epoch unless its loss was NaN.
            assert [r["seed"] for r in runs] == [0, 1], (key, name)
            assert all(len(r["loss_curve"]) in (0, 1) for r in runs)
            summary = cell["summary"][name]
            accs = [r["test_accuracy"] for r in runs]
            assert summary["median"] == pytest.approx(sum(accs) / 2)  # median of two
            assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
            assert summary["min"] == min(accs)
        verdict = cell["verdict"]
        assert verdict["best_fixed"] in expected_rows[:7]
        assert set(verdict["against_best_fixed"]) == set(expected_rows[7:])
        assert key in stdout  # a table per cell
    # The residual cell is the functional model with Add blocks.
    assert "residual" in data["cells"]["residual_relu-sgd"]["description"]
    assert "best of the baselines" in stdout


COST_SCRIPT = SCRIPT.parent / "lsuv_cost.py"


@pytest.mark.slow
def test_lsuv_cost_prints_a_ratio_per_model(tmp_path):
    out_json = tmp_path / "cost.json"
    stdout = check_ok(
        run_python(
            args=[
                str(COST_SCRIPT),
                "--backend", keras.backend.backend(),
                "--models", "mlp", "mobilenetv2",
                "--mlp-depth", "3",
                "--mlp-width", "16",
                "--mlp-batch", "32",
                "--image-batch", "16",
                "--rounds", "2",
                "--json", str(out_json),
            ],
            timeout=600,
        )
    )  # fmt: skip
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["model"] for r in rows] == ["mlp", "mobilenetv2"]
    for r in rows:
        # Every timing is positive and each ratio is the median of the rounds'.
        assert all(len(t) == 2 and min(t) > 0 for t in r["times"].values())
        per_round = sorted(a / f for a, f in zip(r["times"]["lsuv"], r["times"]["forward"]))
        assert r["lsuv_ratio"] == pytest.approx(sum(per_round) / 2)
        assert f"| {r['lsuv_ratio']:.2f} |" in stdout
    assert "3 x Dense(16), batch 32" in stdout
    assert "Median of lsuv / forward over the models" in stdout
