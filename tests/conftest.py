"""Pytest configuration shared by every test module."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    import keras_weightinit

    return (
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"keras_weightinit from {os.path.dirname(keras_weightinit.__file__)}"
    )


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()
