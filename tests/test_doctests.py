"""Every docstring example in the package runs, on the backend of this run.

The examples are collected from every module of `keras_weightinit` (public
and private) with `doctest`'s own finder, one test per docstring, so a
module whose examples are new is run without being listed anywhere. Each
example sees its module's globals plus `keras`, `np` and `kwi`.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest

import keras_weightinit

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(keras_weightinit.__path__, "keras_weightinit.")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _collect() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [test for test in finder.find(module) if test.examples]
    return sorted(found, key=lambda test: test.name)


DOCTESTS = _collect()


def test_the_package_has_docstring_examples():
    # Nine modules held examples when this test was written; a collector
    # that silently found none would make every test below vacuous.
    modules = {test.globs["__name__"] for test in DOCTESTS}
    assert len(modules) >= 9, sorted(modules)


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda test: test.name)
def test_docstring_example(test: doctest.DocTest):
    test.globs = {**test.globs, "keras": keras, "np": np, "kwi": keras_weightinit}
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=report.append, clear_globs=False)
    assert result.failed == 0, "".join(report)
