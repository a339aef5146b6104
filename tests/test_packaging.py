"""What the package ships besides code: its license, its version, a quiet start-up."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import keras_weightinit
from tests.helpers import run_python

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_the_apache_2_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    # The nine sections of the license, then the appendix on how to apply it.
    for number in range(1, 10):
        assert f"\n   {number}. " in text, number
    assert "END OF TERMS AND CONDITIONS" in text
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]


def test_version_is_written_once():
    config = _pyproject()
    assert "version" not in config["project"], "the version belongs in __init__.py only"
    assert "version" in config["project"]["dynamic"]
    attr = config["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "keras_weightinit.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", keras_weightinit.__version__)


def test_console_script_enters_beside_the_package():
    config = _pyproject()
    assert config["project"]["scripts"]["keras-weightinit"] == "keras_weightinit_cli:main"
    assert config["tool"]["setuptools"]["py-modules"] == ["keras_weightinit_cli"]


def _child(args: list[str]) -> subprocess.CompletedProcess:
    # TensorFlow not quieted: what a user's shell would give the command.
    return run_python(args=args, cwd=ROOT, env={"TF_CPP_MIN_LOG_LEVEL": None})


@pytest.mark.slow
def test_command_prints_nothing_from_tensorflow_at_startup():
    # The console script's entry, in a fresh process whose environment does
    # not quiet TensorFlow: on the TensorFlow backend, importing it prints
    # its CPU-feature and absl lines unless TF_CPP_MIN_LOG_LEVEL is set first.
    result = _child(["-m", "keras_weightinit_cli", "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"keras-weightinit {keras_weightinit.__version__} ")
    assert result.stderr == ""


@pytest.mark.slow
def test_importing_the_package_leaves_the_environment_alone():
    # Keras's backends set some variables themselves when imported (TensorFlow
    # and JAX set TF_CPP_MIN_LOG_LEVEL=1 if it is unset), so the reference is
    # the environment a program has after importing Keras alone.
    code = "import os, json, {}; print(json.dumps(dict(os.environ), sort_keys=True))"
    environments = []
    for module in ("keras", "keras_weightinit"):
        result = _child(["-c", code.format(module)])
        assert result.returncode == 0, result.stderr
        environments.append(result.stdout.strip().splitlines()[-1])
    assert environments[1] == environments[0]
