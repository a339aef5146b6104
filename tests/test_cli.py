"""The command line, through its real entry points in a fresh process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, script: str | None = None, timeout: float = 300):
    """Runs `python -m keras_weightinit ARGS` (or the console script)."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = keras.backend.backend()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The checkout first, so the code under test is this tree's.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = [script] if script else [sys.executable, "-m", "keras_weightinit"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def explain(result) -> str:
    return f"exit {result.returncode}\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-3000:]}"


def test_help_lists_commands_and_options(tmp_path, capsys):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, explain(result)
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
    assert (args.out, args.seed, args.epochs) == ("b", 0, 4)
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


def parse_train_table(stdout: str) -> dict[str, tuple[float, int]]:
    """initializer -> (test accuracy, rank), read from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"^(\S+)\s+(\d+\.\d)%\s+(\S+)\s+(\S+)\s+(\d+)", line)
        if match:
            rows[match.group(1)] = (float(match.group(2)) / 100, int(match.group(5)))
    return rows


@pytest.mark.slow
def test_train_ranks_the_factory_above_keras_default_for_deep_relu(tmp_path):
    # 20 ReLU layers as in the technique's measurement, narrower and shorter
    # so the test stays fast; the gap is large (Glorot's signal is ~1e-3 at
    # the top, He's ~1) and the seed is fixed.
    result = run_cli(
        "train",
        "--depth",
        "20",
        "--width",
        "32",
        "--epochs",
        "4",
        "--initializers",
        "default",
        "factory",
        "--seed",
        "0",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, explain(result)
    table = parse_train_table(result.stdout)
    assert set(table) == {"default", "factory"}, result.stdout
    assert table["factory"][1] == 1 and table["default"][1] == 2, result.stdout
    assert table["factory"][0] > table["default"][0] + 0.2, result.stdout
    # --out defaults to the current folder.
    assert (tmp_path / "train_relu_depth20.png").stat().st_size > 0
    data = json.loads((tmp_path / "train_relu_depth20.json").read_text())
    assert [r["initializer"] for r in data["results"]] == ["default", "factory"]
    assert result.stderr.count("epoch") == 0  # --quiet: no progress lines


@pytest.mark.slow
def test_console_script(tmp_path):
    script = shutil.which("keras-weightinit", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the package is not installed: no keras-weightinit script")
    result = run_cli("train", "--width", "0", cwd=tmp_path, script=script)
    assert result.returncode == 2, explain(result)
    assert "--width: expected a positive integer" in result.stderr
