"""Shared test utilities: fresh Python processes and sampling statistics.

The tolerances of every statistical test come from `std_rel_se` and
`mean_se` below: a test states how many standard errors it allows (`n_se`),
and the helper turns that into a tolerance for the sample at hand.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
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


def snake_name(cls) -> str:
    """A class's string name by the package's naming rule: HeNormalCustom -> he_normal_custom.

    Written here from the rule, not read from the registry, so that a test
    resolving these names checks the registry against the rule.
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


#: The presets' registered string names, in PRESET_CLASSES's order.
PRESET_NAMES = [snake_name(cls) for cls in PRESET_CLASSES]


def run_python(
    code: str | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    program: str | None = None,
) -> subprocess.CompletedProcess:
    """Runs a fresh interpreter with the same backend: the one way tests spawn Python.

    `python -c code ARGS` when `code` is given, else `python ARGS` (a script
    path or `-m module` first); `program` runs a console script of this
    environment instead of the interpreter. `cwd` None keeps the parent's.

    The child gets the parent's environment (so the same KERAS_BACKEND,
    TensorFlow quiet unless the parent says otherwise) with `env` laid over
    it, where a value None removes the variable. It imports only what it is
    told to: a fresh process is the only honest test of "saved here, reloaded
    there" or of start-up output. It imports the same `keras_weightinit` as
    the parent (the one this suite is testing), not whatever copy `cwd` or
    site-packages would give it.
    """
    child_env = dict(os.environ)
    child_env["KERAS_BACKEND"] = keras.backend.backend()
    package_root = str(Path(kwi.__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_root, child_env.get("PYTHONPATH")])
    )
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    command = [program] if program else [sys.executable]
    if code is not None:
        command += ["-c", textwrap.dedent(code)]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


# -- Sampling tolerances ------------------------------------------------------
#
# The sample variance s^2 of n independent draws with std sigma and kurtosis
# k = E[(x - mu)^4] / sigma^4 has Var(s^2) ≈ sigma^4 (k - 1) / n. By the delta
# method (s = sqrt(s^2), ds = d(s^2) / (2 sigma)) the sample std has
#
#     SE(s) / sigma ≈ sqrt((k - 1) / (4 n)),
#
# which is 1/sqrt(2n) for a normal (k = 3). A distribution with lighter tails
# has a smaller kurtosis and so a more precise sample std.


def _truncated_normal_kurtosis(a: float) -> float:
    """Kurtosis of N(0, 1) truncated to [-a, a], from its moments.

    With Z = 2Φ(a) - 1 and φ the normal density, integrating by parts
    (∫ z^{m+2} φ = [-z^{m+1} φ] + (m+1) ∫ z^m φ) gives
    E[z^2] = 1 - 2aφ(a)/Z and E[z^4] = 3 E[z^2] - 2a^3 φ(a)/Z.
    """
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    z = math.erf(a / math.sqrt(2))  # 2Φ(a) - 1
    m2 = 1 - 2 * a * phi / z
    m4 = 3 * m2 - 2 * a**3 * phi / z
    return m4 / m2**2


#: Kurtosis of the three distributions the initializers draw from. Normal 3;
#: uniform on [-r, r]: E[x^4] / E[x^2]^2 = (r^4/5) / (r^2/3)^2 = 9/5; the
#: normal truncated at ±2 sigma (Keras's and ours): 2.3655.
KURTOSIS = {
    "normal": 3.0,
    "uniform": 1.8,
    "truncated_normal": _truncated_normal_kurtosis(2.0),
}


def std_rel_se(n: int, distribution: str = "normal") -> float:
    """Relative standard error of the sample std of `n` i.i.d. draws.

    `sqrt((k - 1) / (4n))` for kurtosis k (see above): 1/sqrt(2n) = 0.707/sqrt(n)
    for a normal, 0.584/sqrt(n) for the truncated normal and 0.447/sqrt(n)
    for a uniform. "normal" is the safe default: of the three it has the
    largest error, so a tolerance computed for it never fails a true uniform
    or truncated draw more often than it would a normal one.
    """
    if n < 2:
        raise ValueError(f"Argument `n` must be at least 2. Received: n={n!r}")
    return math.sqrt((KURTOSIS[distribution] - 1) / (4 * n))


def mean_se(n: int, sigma: float) -> float:
    """Standard error of the sample mean of `n` i.i.d. draws: sigma / sqrt(n)."""
    return sigma / math.sqrt(n)


def _sample(w, n):
    """(value, n) for an array of draws, or for a scalar with its sample size."""
    if np.ndim(w) == 0:
        if n is None:
            raise ValueError("Argument `n` is needed when `w` is a measured scalar.")
        return float(w), int(n)
    values = to_numpy(w) if not isinstance(w, np.ndarray) else np.asarray(w, np.float64)
    return values, values.size if n is None else int(n)


def assert_std(w, expected: float, n_se: float = 6.0, *, distribution="normal", n=None, what=""):
    """Asserts that the std of the draws `w` is `expected` within `n_se` SEs.

    `w` is an array (any backend tensor) of i.i.d. draws, or an already
    measured std with its sample size `n`. The tolerance, relative to
    `expected`, is `n_se * std_rel_se(n, distribution)`: it assumes independent
    draws from a distribution with the kurtosis of `distribution` ("normal",
    "uniform", "truncated_normal"). Fixed seeds make a pass or a failure
    repeatable; n_se >= 5 makes a failure at a correct formula a < 1e-6 event
    for a fresh seed. Returns the relative tolerance used.
    """
    values, size = _sample(w, n)
    measured = float(np.std(values)) if isinstance(values, np.ndarray) else values
    tol = n_se * std_rel_se(size, distribution)
    error = measured / expected - 1.0
    assert abs(error) < tol, (
        f"{what + ': ' if what else ''}std {measured:.6g}, expected {expected:.6g} "
        f"({error:+.3%}); tolerance {tol:.3%} = {n_se} standard errors of the "
        f"sample std for n={size} ({distribution})"
    )
    return tol


def assert_mean(w, expected: float, sigma: float, n_se: float = 5.0, *, n=None, what=""):
    """Asserts that the mean of the draws `w` is `expected` within `n_se` SEs.

    The standard error of the mean of n i.i.d. draws of std `sigma` (given
    from the formula, not measured) is sigma / sqrt(n), for any distribution.
    Returns the absolute tolerance used.
    """
    values, size = _sample(w, n)
    measured = float(np.mean(values)) if isinstance(values, np.ndarray) else values
    tol = n_se * mean_se(size, sigma)
    assert abs(measured - expected) < tol, (
        f"{what + ': ' if what else ''}mean {measured:.6g}, expected {expected:.6g}; "
        f"tolerance {tol:.3g} = {n_se} standard errors (sigma {sigma:.4g}, n={size})"
    )
    return tol
