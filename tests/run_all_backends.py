"""Runs the whole test suite once per Keras backend, each in its own process.

Usage: python tests/run_all_backends.py [--backends tensorflow,jax,torch] [pytest args...]

Keras picks its backend once per process (KERAS_BACKEND), so each backend gets
a fresh `python -m pytest`. The last line sums the three runs up as
"N passed, N failed"; the exit code is non-zero if any run failed.

Tests marked `zoo` (whole keras.applications and keras-hub models) or `once`
(the docs build and the notebooks, whose committed outputs come from
TensorFlow) run on the first backend only (TensorFlow by default), to keep the
suite under 30 minutes on two cores; the model-level code they exercise is
backend-neutral and the rest of the suite runs it on every backend.
`--zoo-everywhere` runs them on every backend, and an explicit `-m` expression
is passed through unchanged.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("tensorflow", "jax", "torch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends to run (default: %(default)s)",
    )
    parser.add_argument(
        "--zoo-everywhere",
        action="store_true",
        help="run the tests marked `zoo` or `once` on every backend, not only the first",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {list(BACKENDS)}")

    totals = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    codes = {}
    selects = any(a == "-m" or a.startswith("-m") for a in pytest_args)
    for i, backend in enumerate(backends):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        extra = [] if (i == 0 or args.zoo_everywhere or selects) else ["-m", "not zoo and not once"]
        shown = f" (pytest {' '.join(extra)})" if extra else ""
        print(f"\n=== KERAS_BACKEND={backend}{shown} ===", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", *extra, *pytest_args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        summary = ""
        for line in proc.stdout:
            print(line, end="", flush=True)
            if re.search(r"\d+ (passed|failed|error)", line):
                summary = line
        codes[backend] = proc.wait()
        for key, pattern in (
            ("passed", r"(\d+) passed"),
            ("failed", r"(\d+) failed"),
            ("skipped", r"(\d+) skipped"),
            ("errors", r"(\d+) errors?"),
        ):
            match = re.search(pattern, summary)
            totals[key] += int(match.group(1)) if match else 0
        print(f"=== {backend}: exit {codes[backend]} in {time.monotonic() - start:.0f} s ===")

    print("\nper backend exit codes:", codes)
    failed = totals["failed"] + totals["errors"]
    if any(codes.values()) and failed == 0:
        failed = 1  # pytest failed without a count (collection or usage error)
    print(f"{totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
