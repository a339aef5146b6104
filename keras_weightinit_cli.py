"""Start-up of the `keras-weightinit` command: its console script calls `main` here.

This module sits beside the `keras_weightinit` package, not inside it, on
purpose. Importing anything from the package first runs its `__init__`,
which imports Keras, and Keras imports its backend: on the TensorFlow
backend that prints TensorFlow's C++ start-up lines (CPU features, CUDA
stubs, absl) before any code of the command could quiet them. Here the
environment is set first, for this process only, and then the command runs
(`keras_weightinit.cli.main`). A program that imports `keras_weightinit`
itself keeps its environment as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

#: Hides TensorFlow's C++ log lines of every level; TensorFlow's Python
#: errors still raise as usual.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def startup_environment(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to set before Keras is imported.

    None with `--verbose` (TensorFlow's start-up lines are shown then), and
    none that the user has set already.
    """
    if "--verbose" in argv:
        return {}
    return {key: value for key, value in QUIET.items() if key not in environ}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-weightinit` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.update(startup_environment(args, os.environ))
    from keras_weightinit.cli import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
