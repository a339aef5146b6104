"""Shared test utilities: fresh Python processes and sampling statistics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

import keras_weightinit as kwi

#: The six Glorot/LeCun/He presets, in the table's order.
PRESET_CLASSES = [
    kwi.GlorotNormalCustom,
    kwi.GlorotUniformCustom,
    kwi.LecunNormalCustom,
    kwi.LecunUniformCustom,
    kwi.HeNormalCustom,
    kwi.HeUniformCustom,
]


def run_python(
    code: str | None,
    cwd: Path,
    timeout: float = 300,
    *,
    args: Sequence[str] = (),
    unset: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with the same backend, in `cwd`.

    The child gets the parent's environment (so the same KERAS_BACKEND) and
    imports only what `code` imports: a fresh process is the only honest test
    of "saved here, reloaded there". The child imports the same
    `keras_weightinit` as the parent (the one this suite is testing), not
    whatever copy `cwd` or site-packages would give it.

    With `code` None the child is `python ARGS` (e.g. `-m keras_weightinit
    --help`, or a script and its arguments); else `python -c code ARGS`.
    The variables in `unset` are removed from the child's environment.
    """
    env = dict(os.environ)
    env["KERAS_BACKEND"] = keras.backend.backend()
    package_root = str(Path(kwi.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in unset:
        env.pop(name, None)
    program = [] if code is None else ["-c", textwrap.dedent(code)]
    result = subprocess.run(
        [sys.executable, *program, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result


def check_ok(result: subprocess.CompletedProcess) -> str:
    """Asserts a child process succeeded; returns its stdout."""
    assert result.returncode == 0, (
        f"child failed ({result.returncode}):\nSTDOUT:\n{result.stdout}\n"
        f"STDERR:\n{result.stderr[-4000:]}"
    )
    return result.stdout


def to_numpy(x) -> np.ndarray:
    """A backend tensor as a float64 NumPy array (bfloat16 included).

    Half precisions go through float32, which holds them exactly (NumPy has
    no bfloat16); float64 is converted directly, so no value is rounded.
    """
    if keras.backend.standardize_dtype(getattr(x, "dtype", "float32")) in ("float16", "bfloat16"):
        x = keras.ops.cast(x, "float32")
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)
