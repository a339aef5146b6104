"""The command line, through its real entry points in a fresh process."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import sys
from pathlib import Path

import pytest

from tests.helpers import run_python


def run_cli(*args: str, cwd: Path, script: str | None = None, timeout: float = 300, unset=()):
    """Runs `python -m keras_weightinit ARGS` (or the console script) in a fresh process."""
    entry = [script] if script else ["-m", "keras_weightinit"]
    return run_python(None, cwd, timeout, args=[*entry, *args], env=dict.fromkeys(unset))


def explain(result) -> str:
    return f"exit {result.returncode}\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-3000:]}"


def test_help_lists_commands_and_options(tmp_path, capsys):
    # In an environment that does not quiet TensorFlow: on its backend,
    # importing Keras prints TensorFlow's C++ start-up lines (absl, CPU
    # features) unless the command sets TF_CPP_MIN_LOG_LEVEL before the import.
    result = run_cli("--help", cwd=tmp_path, unset=["TF_CPP_MIN_LOG_LEVEL"])
    assert result.returncode == 0, explain(result)
    assert result.stderr == "", explain(result)
    assert "absl" not in result.stdout and "cpu_feature_guard" not in result.stdout
    assert result.stdout.startswith("usage: keras-weightinit ")
    for word in ("compare", "train", "--out", "--seed", "--epochs"):
        assert word in result.stdout

    from keras_weightinit.cli import main

    # The subcommands' help, in-process (a fresh interpreter costs seconds).
    for command, words in [
        (
            "train",
            (
                "--depth",
                "--width",
                "--activation",
                "--initializers",
                "--epochs",
                "--seeds",
                "--learning-rate",
                "--momentum",
                "--batch-size",
            ),
        ),
        (
            "compare",
            (
                "--depth",
                "--width",
                "--activation",
                "--initializers",
                "--batch-size",
                "--out",
                "--seed",
            ),
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for word in words:
            assert word in text, (command, word)


def test_wrong_option_exits_with_a_message(tmp_path):
    result = run_cli("compare", "--depth", "0", cwd=tmp_path)
    assert result.returncode == 2, explain(result)
    assert "--depth: expected a positive integer, got 0" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


# The same parser in-process, for the other cases: one fresh interpreter per
# case would spend most of the suite's time importing the backend.
@pytest.mark.parametrize(
    "args, message",
    [
        (["frobnicate"], "invalid choice"),
        (["compare", "--depth", "many"], "positive integer"),
        (["train", "--activation", "relux"], "unknown Keras activation"),
        (["train", "--initializers", "he_uniform"], "invalid choice"),
        (["train", "--momentum", "1.5"], "[0, 1)"),
        (["train", "--learning-rate", "nan"], "positive number"),
        (["train", "--seeds", "0"], "--seeds: expected a positive integer, got 0"),
        (["compare", "--no-such-option"], "unrecognized arguments"),
        # Each of these used to end in a traceback.
        (["train", "--activation", "threshold"], "needs arguments a name cannot give"),
        (["compare", "--activation", "glu"], "changes the shape of its input"),
        (["--seed", "-1"], "--seed: expected an integer from 0 to 2**32 - 1, got -1"),
        (["compare", "--seed", str(2**70)], f"got {2**70}"),
        (["compare", "--seed", "2**70"], "got '2**70'"),
        (["compare", "--width", "200000"], "--width 200000 makes an MLP of"),
        (["train", "--depth", "100000", "--width", "4096"], "more than half this machine"),
    ],
)
def test_wrong_options_in_process(args, message, capsys):
    from keras_weightinit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    # argparse's form: the usage, then one line "PROG ...: error: ...".
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if ": error: " in line]) == 1


def test_options_before_or_after_the_command():
    from keras_weightinit.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["--out", "a", "--seed", "3", "--epochs", "2", "train"])
    assert (args.out, args.seed, args.epochs) == ("a", 3, 2)
    args = parser.parse_args(["train", "--out", "b", "--epochs", "4"])
    assert (args.out, args.seed, args.epochs, args.seeds) == ("b", 0, 4, 3)
    assert parser.parse_args(["train", "--seeds", "5"]).seeds == 5
    args = parser.parse_args([])
    assert args.command is None and args.out == "." and args.epochs == 10


@pytest.mark.slow
def test_compare_writes_its_files_and_shows_vanishing_signal(tmp_path):
    out = tmp_path / "results" / "compare"
    result = run_cli(
        "compare",
        "--depth",
        "12",
        "--width",
        "32",
        "--batch-size",
        "64",
        "--initializers",
        "default",
        "he_normal_custom",
        "factory",
        "--out",
        str(out),
        "--seed",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, explain(result)
    png = out / "compare_relu_depth12.png"
    data = json.loads((out / "compare_relu_depth12.json").read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(data["results"]) == {"default", "he_normal_custom", "factory"}
    assert "output std per layer" in result.stdout
    assert "kernel gradient norm per layer" in result.stdout

    # Glorot under ReLU halves the variance at every layer (factor
    # fan_in · 2/(fan_in+fan_out) · 1/2 = 1/2): over the 11 layers from the
    # first hidden to the last, the std falls by 2**(-11/2) ≈ 0.022, far
    # more than the noise of a 64 x 32 batch. He keeps the factor at 1.
    def ratio(name):
        stds = [row["std"] for row in data["results"][name]["layers"]]
        return stds[11] / stds[0]

    assert ratio("default") < 0.1
    assert 0.3 < ratio("he_normal_custom") < 3.0
    # Nothing but the files named was written, and only under --out.
    assert sorted(p.name for p in out.iterdir()) == [
        "compare_relu_depth12.json",
        "compare_relu_depth12.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


TRAIN_ROW = re.compile(
    r"^(\S+)\s+(\d+\.\d)%\s+(\d+\.\d)%-(\d+\.\d)%\s+(\d+\.\d)%\s+(\d+)/(\d+)\s+\S+\s+\S+\s+(\d+)$"
)


def parse_train_table(stdout: str) -> dict[str, dict[str, float]]:
    """initializer -> its printed median, range, mean, divergences and rank."""
    rows = {}
    for line in stdout.splitlines():
        match = TRAIN_ROW.match(line)
        if match:
            name, median, low, high, mean, diverged, n, rank = match.groups()
            rows[name] = {
                "median": float(median) / 100,
                "min": float(low) / 100,
                "max": float(high) / 100,
                "mean": float(mean) / 100,
                "diverged": int(diverged),
                "n": int(n),
                "rank": int(rank),
            }
    return rows


def _diverged(run: dict) -> bool:
    # The command's rule, restated: a loss that is not finite (or a run
    # stopped before its last epoch) or an accuracy at chance (<= 15%).
    losses = [*run["loss_curve"], run["test_loss"]]
    return not all(math.isfinite(v) for v in losses) or run["test_accuracy"] <= 0.15


@pytest.mark.slow
def test_train_runs_several_seeds_and_reports_their_spread(tmp_path):
    result = run_cli(
        "train",
        "--depth",
        "6",
        "--width",
        "16",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--seed",
        "4",
        "--initializers",
        "default",
        "factory",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, explain(result)
    data = json.loads((tmp_path / "train_relu_depth6.json").read_text())
    assert data["seeds"] == [4, 5]
    assert [r["initializer"] for r in data["results"]] == ["default", "factory"]
    table = parse_train_table(result.stdout)
    assert set(table) == {"default", "factory"}, result.stdout
    for entry in data["results"]:
        runs = entry["runs"]
        assert [r["seed"] for r in runs] == [4, 5]
        assert all(len(r["loss_curve"]) <= 2 for r in runs)
        accs = [r["test_accuracy"] for r in runs]
        row = table[entry["initializer"]]
        # The printed figures are the runs' own, to the printed 0.1 point.
        assert row["median"] == pytest.approx(statistics.median(accs), abs=0.0006)
        assert row["min"] == pytest.approx(min(accs), abs=0.0006)
        assert row["max"] == pytest.approx(max(accs), abs=0.0006)
        assert row["mean"] == pytest.approx(statistics.fmean(accs), abs=0.0006)
        assert (row["diverged"], row["n"]) == (sum(map(_diverged, runs)), 2)
    # The sentence names the initializer with the highest median, from the runs.
    medians = {
        e["initializer"]: statistics.median(r["test_accuracy"] for r in e["runs"])
        for e in data["results"]
    }
    best = max(medians, key=medians.get)
    assert f"Highest median over 2 seeds: {best} " in result.stdout
    assert table[best]["rank"] == 1
    assert (tmp_path / "train_relu_depth6.png").read_bytes()[:4] == b"\x89PNG"
    assert result.stderr.count("epoch") == 0  # --quiet: no progress lines


@pytest.mark.slow
def test_train_counts_runs_that_diverge(tmp_path, capsys):
    from keras_weightinit.cli import main

    # SGD at rate 50 with momentum 0.9 on a ReLU MLP: the first steps
    # multiply the weights by ~50 x gradient, the loss overflows.
    code = main(
        [
            "train",
            "--depth", "3",
            "--width", "8",
            "--epochs", "2",
            "--seeds", "2",
            "--learning-rate", "50",
            "--initializers", "he_normal_custom",
            "--out", str(tmp_path),
            "--verbose",
        ]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    data = json.loads((tmp_path / "train_relu_depth3.json").read_text())
    runs = data["results"][0]["runs"]
    assert all(_diverged(r) for r in runs), runs
    assert parse_train_table(captured.out)["he_normal_custom"]["diverged"] == 2
    assert "2 of 2 runs diverged" in captured.out
    # --verbose: a line per epoch that ran (a NaN epoch ends its run).
    epochs_run = sum(len(r["loss_curve"]) for r in runs)
    assert captured.err.count(": epoch ") == epochs_run


def _result(name: str, accs, nan_at=()):
    from keras_weightinit._training import Run, summarize

    runs = [
        Run(a, math.nan if i in nan_at else 0.5, [1.0, 0.5], epochs=2) for i, a in enumerate(accs)
    ]
    return {"initializer": name, "summary": summarize(runs)}


def test_train_sentence_is_computed_from_the_runs():
    from keras_weightinit.demo import train_sentence

    apart = train_sentence(
        [_result("a", [0.8, 0.85, 0.9]), _result("b", [0.2, 0.3, 0.5], nan_at=(1,))]
    )
    assert apart.startswith(
        "Highest median over 3 seeds: a 85.0% (80.0%-90.0%); lowest: b 30.0% (20.0%-50.0%)."
    )
    assert "Every run of a beat every run of b." in apart
    assert "1 of 6 runs diverged (NaN loss or chance accuracy): b 1/3." in apart
    # The same medians, ranges that overlap: no claim that one beats the other.
    overlap = train_sentence([_result("b", [0.6, 0.7, 0.9]), _result("a", [0.95, 0.5, 0.55])])
    assert overlap.startswith("Highest median over 3 seeds: b 70.0%")
    assert "ranges overlap" in overlap and "beat" not in overlap
    assert overlap.endswith("No run diverged (of 6).")
    # At chance (<= 15%) counts as diverged even with a finite loss.
    assert "a 1/1" in train_sentence([_result("a", [0.12])])


@pytest.mark.slow
def test_console_script(tmp_path):
    script = shutil.which("keras-weightinit", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the package is not installed: no keras-weightinit script")
    result = run_cli("train", "--width", "0", cwd=tmp_path, script=script)
    assert result.returncode == 2, explain(result)
    assert "--width: expected a positive integer" in result.stderr
