"""The `keras-weightinit` command's start-up: TensorFlow's log lines quieted.

On the TensorFlow backend, importing Keras imports TensorFlow, which prints
its C++ start-up lines (CPU features, absl) unless `TF_CPP_MIN_LOG_LEVEL` is
set first. Python imports this package before any code of the command runs,
both for `python -m keras_weightinit` (the package, then its `__main__`) and
for the console script (`keras_weightinit_cli.main` imports the package). So
`__init__.py` imports this module first, and importing it runs
`quiet_the_command()`: in the command's own process, and only there, the
environment is set before Keras is imported. A program that imports
`keras_weightinit` keeps its environment as it is.

This module imports nothing from the package, nor Keras.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

#: Hides TensorFlow's C++ log lines of every level; TensorFlow's Python
#: errors still raise as usual.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}

#: The module `python -m` runs as the command.
PACKAGE = "keras_weightinit"

#: The console script's module; its `ARGS` holds the command's arguments
#: while its `main` imports the package.
CONSOLE_MODULE = "keras_weightinit_cli"


def startup_environment(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the command sets before Keras is imported.

    None with `--verbose` (TensorFlow's start-up lines are shown then), and
    none that the user has set already.
    """
    if "--verbose" in argv:
        return {}
    return {key: value for key, value in QUIET.items() if key not in environ}


def command_args(
    argv: Sequence[str], orig_argv: Sequence[str], modules: Mapping[str, ModuleType]
) -> list[str] | None:
    """The command's arguments if this process is the command, else None.

    - The console script (or `python -m keras_weightinit_cli`):
      `keras_weightinit_cli.main` keeps its arguments in its `ARGS` while it
      imports the package.
    - `python [options] -m keras_weightinit ARGS`: while Python imports the
      package on the way to its `__main__`, `sys.argv` is `["-m", *ARGS]`
      and `sys.orig_argv` ends with the module's name, then ARGS.
    """
    for console in (modules.get(CONSOLE_MODULE), modules.get("__main__")):
        # `python -m keras_weightinit_cli` runs the module as `__main__`.
        spec = getattr(console, "__spec__", None)
        if getattr(spec, "name", None) == CONSOLE_MODULE and console.ARGS is not None:
            return list(console.ARGS)
    if not argv or argv[0] != "-m" or len(orig_argv) < len(argv):
        return None
    module = orig_argv[len(orig_argv) - len(argv)]
    if module in (PACKAGE, f"-m{PACKAGE}"):  # `-m name` or `-mname`
        return list(argv[1:])
    return None


def quiet_the_command() -> None:
    """Sets `startup_environment` in this process if it is the command."""
    args = command_args(sys.argv, getattr(sys, "orig_argv", ()), sys.modules)
    if args is not None:
        os.environ.update(startup_environment(args, os.environ))


quiet_the_command()
