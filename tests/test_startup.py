"""The command's start-up (keras_weightinit._startup): TensorFlow quieted in its process only."""

from __future__ import annotations

import importlib.machinery
import types

from keras_weightinit import _startup

PYTHON = "/usr/bin/python3"


def test_startup_environment_quiets_tensorflow_unless_verbose_or_set():
    quiet = _startup.startup_environment([], {})
    assert quiet == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    assert _startup.startup_environment(["compare", "--depth", "5"], {}) == quiet
    assert _startup.startup_environment(["train", "--verbose"], {}) == {}
    user = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert _startup.startup_environment(["train"], user) == {}


def test_python_m_keras_weightinit_is_the_command():
    # What Python shows while it imports the package on the way to its
    # __main__: sys.argv is ["-m", *ARGS], sys.orig_argv the whole line.
    args = _startup.command_args(
        ["-m", "train", "--seeds", "2"],
        [PYTHON, "-X", "utf8", "-m", "keras_weightinit", "train", "--seeds", "2"],
        {},
    )
    assert args == ["train", "--seeds", "2"]
    glued = _startup.command_args(["-m", "--help"], [PYTHON, "-mkeras_weightinit", "--help"], {})
    assert glued == ["--help"]


def test_other_programs_are_not_the_command():
    cases = [
        # another module run with -m, even one given our name as an argument
        (["-m", "keras_weightinit"], [PYTHON, "-m", "pytest", "keras_weightinit"]),
        (["-m"], [PYTHON, "-m", "keras_weightinit.cli"]),
        (["-c"], [PYTHON, "-c", "import keras_weightinit"]),
        (["train.py", "-m", "keras_weightinit"], [PYTHON, "train.py", "-m", "keras_weightinit"]),
        ([], []),
    ]
    for argv, orig_argv in cases:
        assert _startup.command_args(argv, orig_argv, {}) is None, orig_argv


def _module(name: str, spec_name: str, args) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(spec_name, None)
    module.ARGS = args
    return module


def test_the_console_module_hands_over_its_arguments():
    argv, orig_argv = ["/venv/bin/keras-weightinit", "x"], [PYTHON, "/venv/bin/keras-weightinit"]
    console = _module("keras_weightinit_cli", "keras_weightinit_cli", ["train", "--verbose"])
    found = _startup.command_args(argv, orig_argv, {"keras_weightinit_cli": console})
    assert found == ["train", "--verbose"]
    # `python -m keras_weightinit_cli`: the module runs as __main__.
    main = _module("__main__", "keras_weightinit_cli", ["--version"])
    assert _startup.command_args(argv, orig_argv, {"__main__": main}) == ["--version"]
    # Imported, but its main has not run (ARGS None), or another __main__.
    idle = _module("keras_weightinit_cli", "keras_weightinit_cli", None)
    assert _startup.command_args(argv, orig_argv, {"keras_weightinit_cli": idle}) is None
    other = _module("__main__", "pytest.__main__", ["x"])
    assert _startup.command_args(argv, orig_argv, {"__main__": other}) is None
