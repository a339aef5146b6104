"""A `.keras` file is input from outside: edited configs must fail clearly.

Each test takes a small model saved with our initializers, edits its
`config.json` inside the zip (wrong types, negative or huge sizes, a Python
payload in a config field, unknown names) and loads it with Keras's default
`safe_mode`. Loading must raise a `ValueError`/`TypeError` whose message
names the problem; the payload must never run (its marker file must not
appear anywhere we can look), and a huge size must be refused before
anything is allocated.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import sys
import tempfile
import zipfile
from pathlib import Path

import keras
import pytest

import keras_weightinit as kwi

MARKER = "PWNED_keras_weightinit"
PAYLOAD = f"__import__('os').system('touch {MARKER}')"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The members of a valid `.keras` zip and its parsed config."""
    folder = tmp_path_factory.mktemp("base")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, kernel_initializer="he_uniform_custom", name="dense"),
            keras.layers.Dense(
                2,
                kernel_initializer=kwi.VarianceScalingCustom(2.0, "fan_avg", "normal", seed=3),
                name="out",
            ),
        ]
    )
    path = folder / "base.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return members, json.loads(members["config.json"])


def _layer(config: dict, name: str) -> dict:
    return next(lay for lay in config["config"]["layers"] if lay["config"].get("name") == name)


def _init(config: dict) -> dict:
    """The serialized VarianceScalingCustom of layer "out"."""
    return _layer(config, "out")["config"]["kernel_initializer"]


def _set_input_dim(config: dict, dim) -> None:
    # Every place a Sequential model records its input width.
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, dim]
    _layer(config, "dense")["build_config"]["input_shape"] = [None, dim]
    config["config"]["build_input_shape"] = [None, dim]
    config["build_config"]["input_shape"] = [None, dim]


def _lambda_layer() -> dict:
    # A Lambda layer whose serialized bytecode would create the marker.
    layer = keras.layers.Lambda(lambda x: __import__("os").system(f"touch {MARKER}") or x)
    return json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))


OS_SYSTEM = {
    "module": "os",
    "class_name": "system",
    "config": {"command": f"touch {MARKER}"},
    "registered_name": None,
}

# name: (edit of the parsed config, fragments the error message must contain)
CASES = {
    "seed payload": (
        lambda c: _init(c)["config"].update(seed=PAYLOAD),
        ["Argument `seed`", PAYLOAD],
    ),
    "mode payload": (
        lambda c: _init(c)["config"].update(mode=PAYLOAD),
        ["Argument `mode`", PAYLOAD],
    ),
    "distribution payload": (
        lambda c: _init(c)["config"].update(distribution=PAYLOAD),
        ["Argument `distribution`", PAYLOAD],
    ),
    "scale payload": (
        lambda c: _init(c)["config"].update(scale=PAYLOAD),
        ["Argument `scale`", PAYLOAD],
    ),
    "input_axes payload": (
        lambda c: _init(c)["config"].update(input_axes=PAYLOAD, output_axes=[1]),
        ["Argument `input_axes`", PAYLOAD],
    ),
    "seed as os.system object": (
        lambda c: _init(c)["config"].update(seed=OS_SYSTEM),
        ["Argument `seed`", "SeedGenerator"],
    ),
    "SeedGenerator with payload seed": (
        lambda c: _init(c)["config"].update(
            seed={"class_name": "SeedGenerator", "config": {"seed": PAYLOAD}}
        ),
        ["Argument `seed`", PAYLOAD],
    ),
    "seed wrong type": (
        lambda c: _init(c)["config"].update(seed=[1, 2]),
        ["Argument `seed`", "[1, 2]"],
    ),
    "scale negative": (
        lambda c: _init(c)["config"].update(scale=-2.0),
        ["Argument `scale`", "-2.0"],
    ),
    "scale nan": (
        lambda c: _init(c)["config"].update(scale=float("nan")),
        ["Argument `scale`", "nan"],
    ),
    "scale overflows float32": (
        lambda c: _init(c)["config"].update(scale=1e300),
        ["`scale`", "overflow float32", "1e+300"],
    ),
    "output axis out of range": (
        lambda c: _init(c)["config"].update(input_axes=[0], output_axes=[7]),
        ["Argument `output_axes`", "7"],
    ),
    "unknown config key": (
        lambda c: _init(c)["config"].update(evil=PAYLOAD),
        ["Unknown key(s) 'evil'", "VarianceScalingCustom"],
    ),
    "config not a dict": (
        lambda c: _init(c).update(config=PAYLOAD),
        ["VarianceScalingCustom", PAYLOAD],
    ),
    "unknown class name": (
        lambda c: _init(c).update(
            class_name="NoSuchInit", registered_name="keras_weightinit>NoSuchInit"
        ),
        ["Could not interpret initializer identifier", "NoSuchInit"],
    ),
    "unknown registered_name": (
        lambda c: _init(c).update(registered_name="evil>Thing"),
        ["Could not interpret initializer identifier", "evil>Thing"],
    ),
    "payload as class name": (
        lambda c: _init(c).update(class_name=PAYLOAD, registered_name=PAYLOAD),
        ["Could not interpret initializer identifier", PAYLOAD],
    ),
    "initializer is os.system": (
        lambda c: _layer(c, "out")["config"].update(kernel_initializer=OS_SYSTEM),
        ["Could not interpret initializer identifier", "'module': 'os'"],
    ),
    "initializer is a payload string": (
        lambda c: _layer(c, "out")["config"].update(kernel_initializer=PAYLOAD),
        ["Could not interpret initializer identifier", PAYLOAD],
    ),
    "initializer is an int": (
        lambda c: _layer(c, "out")["config"].update(kernel_initializer=5),
        ["Could not interpret initializer identifier: 5"],
    ),
    "unknown layer class": (
        lambda c: _layer(c, "out").update(class_name="NoSuchLayer"),
        ["NoSuchLayer"],
    ),
    "units negative": (
        lambda c: _layer(c, "out")["config"].update(units=-3),
        ["`units`", "units=-3"],
    ),
    "units not a number": (
        lambda c: _layer(c, "out")["config"].update(units=PAYLOAD),
        ["`units`", PAYLOAD],
    ),
    "units fractional": (
        lambda c: _layer(c, "out")["config"].update(units=2.5),
        ["`units`", "units=2.5"],
    ),
    "input width negative": (
        lambda c: _set_input_dim(c, -4),
        ["Negative dimensions", "-4"],
    ),
    "activation payload": (
        lambda c: _layer(c, "out")["config"].update(activation=PAYLOAD),
        ["activation", PAYLOAD],
    ),
    "Lambda layer with bytecode": (
        lambda c: c["config"]["layers"].append(_lambda_layer()),
        ["Lambda", "safe_mode"],
    ),
}

# Sizes no machine of ours can hold: refused by the initializer's size check
# before any backend allocates (12 TB of float32 each).
HUGE_CASES = {
    "units 10**12": (
        lambda c: _layer(c, "out")["config"].update(units=10**12),
        ["shape (3, 1000000000000)", "physical memory", "float32"],
    ),
    "input width 10**12": (
        lambda c: _set_input_dim(c, 10**12),
        ["shape (1000000000000, 3)", "physical memory", "float32"],
    ),
}


def _write(members: dict, config: dict, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    return path


def _places() -> list[Path]:
    return [Path.cwd(), Path.home(), REPO, Path(tempfile.gettempdir())]


def _load_edited(saved, edit, tmp_path, monkeypatch) -> BaseException:
    members, base = saved
    config = copy.deepcopy(base)
    edit(config)
    path = _write(members, config, tmp_path / "edited.keras")
    # A payload that ran would write its marker in the working directory.
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, TypeError)) as info:
        keras.saving.load_model(path)
    for place in [tmp_path, *_places()]:
        assert not (place / MARKER).exists(), f"payload ran: {place / MARKER}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.keras"]
    return info.value


def test_unedited_file_loads(saved, tmp_path):
    # The control: the edits below, not the file itself, cause the errors.
    members, base = saved
    model = keras.saving.load_model(_write(members, base, tmp_path / "same.keras"))
    init = model.get_layer("out").kernel_initializer
    assert isinstance(init, kwi.VarianceScalingCustom)
    assert init.get_config()["seed"] == 3 and init.mode == "fan_avg"


@pytest.mark.parametrize("case", list(CASES))
def test_edited_config_fails_clearly(case, saved, tmp_path, monkeypatch):
    edit, fragments = CASES[case]
    error = _load_edited(saved, edit, tmp_path, monkeypatch)
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message[-600:]}"


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


@pytest.mark.parametrize("case", list(HUGE_CASES))
def test_huge_size_refused_before_allocating(case, saved, tmp_path, monkeypatch):
    edit, fragments = HUGE_CASES[case]
    before = _peak_rss_bytes()
    error = _load_edited(saved, edit, tmp_path, monkeypatch)
    assert isinstance(error, ValueError)
    for fragment in fragments:
        assert fragment in str(error), str(error)
    # The process's peak memory did not grow by even 1 GiB (the tensor
    # would be 12 TB; a partial allocation would show here).
    assert _peak_rss_bytes() - before < 2**30


@pytest.mark.parametrize("dtype, itemsize", [("float16", 2), ("float32", 4)])
def test_size_check_counts_bytes(dtype, itemsize):
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    n = memory // itemsize + 1  # one element more than physical memory holds
    with pytest.raises(ValueError, match="physical memory") as info:
        kwi.HeNormalCustom(seed=0)((n, 1), dtype=dtype)
    assert f"shape ({n}, 1)" in str(info.value) and dtype in str(info.value)
    # A zero-size tensor with a huge dimension allocates nothing: allowed.
    x = kwi.HeNormalCustom(seed=0)((0, 10**12), dtype=dtype)
    assert tuple(x.shape) == (0, 10**12)
    assert keras.backend.standardize_dtype(x.dtype) == dtype
