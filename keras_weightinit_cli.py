"""Start-up of the `keras-weightinit` command: its console script calls `main` here.

This module sits beside the `keras_weightinit` package, not inside it, on
purpose. Importing anything from the package first runs its `__init__`,
which imports Keras, and Keras imports its backend: on the TensorFlow
backend that prints TensorFlow's C++ start-up lines (CPU features, absl)
unless the environment says not to. `main` keeps the command's arguments in
`ARGS` and then imports the package, whose first import
(`keras_weightinit._startup`) sees them and sets the environment, for this
process only, before Keras is imported; `python -m keras_weightinit` goes
through the same function. A program that imports `keras_weightinit`
itself keeps its environment as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The command's arguments while `main` imports the package (read by
#: `keras_weightinit._startup.command_args`); None before.
ARGS: list[str] | None = None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-weightinit` console script."""
    global ARGS
    ARGS = list(sys.argv[1:] if argv is None else argv)
    from keras_weightinit.cli import main as run

    return run(ARGS)


if __name__ == "__main__":
    sys.exit(main())
