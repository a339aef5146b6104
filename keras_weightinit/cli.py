"""The `keras-weightinit` command: see weight initialization matter.

Run `keras-weightinit --help` (or `python -m keras_weightinit --help`).

- `keras-weightinit compare`: a deep MLP, once per initializer; each
  layer's output std and kernel gradient norm side by side, and a PNG plot.
- `keras-weightinit train`: the same MLP trained for a few epochs on
  scikit-learn's bundled digits (no download), at several seeds per
  initializer (3 by default); the median and range of the test accuracy,
  the runs that diverged, and a PNG plot of the spread.
- `keras-weightinit` alone: a short demo of both (about a minute on two
  CPU cores).

This module parses the arguments and dispatches; the experiments, their
tables and plots are `keras_weightinit.demo`'s, which works without it. The
backend is Keras's: set `KERAS_BACKEND` to `tensorflow`, `jax` or `torch`.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import keras

from keras_weightinit import demo

PROG = "keras-weightinit"


class Output:
    """The command's printer: progress lines to stderr, results to stdout."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.start = time.perf_counter()

    def progress(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:5.1f}s] {message}", file=sys.stderr, flush=True)

    def result(self, text: str = "") -> None:
        print(text, flush=True)


# -- the commands ------------------------------------------------------------------


def _run(experiment, output: Output, out: str, **settings) -> demo.Comparison | demo.Training:
    """Runs `demo.compare` or `demo.train`; prints what it found and writes its files."""
    result = experiment(**settings, progress=output.progress)
    output.result(f"\n{result}")
    png, json_path = result.save(out)
    output.result(f"\nwrote {png}\nwrote {json_path}")
    return result


def _given(args: argparse.Namespace, experiment) -> dict:
    """The options that are `experiment`'s keyword arguments."""
    names = inspect.signature(experiment).parameters
    return {name: value for name, value in vars(args).items() if name in names}


def run_compare(args: argparse.Namespace, output: Output) -> demo.Comparison:
    """`compare`: prints the tables, writes the PNG and JSON to `--out`."""
    return _run(demo.compare, output, args.out, **_given(args, demo.compare))


def run_train(args: argparse.Namespace, output: Output) -> demo.Training:
    """`train`: prints the table and the sentence, writes the PNG and JSON to `--out`."""
    return _run(demo.train, output, args.out, **_given(args, demo.train))


#: The demo's training runs: the initializers each activation is shown with
#: (in the order of `demo.candidates()`).
DEMO_TRAINING = {
    "relu": ("default", "he_normal_custom", "he_uniform_custom", "factory", "lsuv"),
    "selu": ("lecun_normal_custom", "he_uniform_custom", "factory"),
}


def run_demo(args: argparse.Namespace, output: Output) -> None:
    """compare, then train with ReLU, then train with SELU; small sizes."""
    output.result(
        "Weight initialization, shown three ways on a 20-layer MLP "
        f"(backend {keras.backend.backend()}).\n"
        "1) compare: how each initializer carries the signal forward and the "
        "gradient back."
    )
    sizes = {"depth": 20, "width": 64, "seed": args.seed}
    _run(demo.compare, output, args.out, activation="relu", batch_size=256, **sizes)
    headings = {
        "relu": "2) train with ReLU",
        "selu": f"3) train with SELU (the factory's choice: {demo.describe_factory('selu')})",
    }
    for activation, names in DEMO_TRAINING.items():
        output.result(f"\n{headings[activation]}, {demo.DEFAULT_SEEDS} seeds per initializer:")
        _run(
            demo.train,
            output,
            args.out,
            activation=activation,
            initializers=names,
            epochs=args.epochs,
            **sizes,
        )
    output.result(
        f"\nDone in {time.perf_counter() - output.start:.0f}s. Plots are in "
        f"{Path(args.out).resolve()}. See `{PROG} --help` for more."
    )


COMMANDS = {"compare": run_compare, "train": run_train, None: run_demo}


# -- argument parsing ------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _seed(text: str) -> int:
    # NumPy's legacy seeding and scikit-learn's random_state take 32 bits.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 2**32 - 1, got {text!r}"
        ) from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {value}")
    return value


def _activation(text: str) -> str:
    try:
        fn = keras.activations.get(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"unknown Keras activation {text!r} (try relu, tanh, selu, gelu, ...)"
        ) from None
    # A hidden Dense layer calls it on its (batch, width) output: it must
    # take no other argument and keep the shape.
    try:
        shape = tuple(fn(keras.ops.zeros((2, 4))).shape)
    except TypeError:
        raise argparse.ArgumentTypeError(
            f"activation {text!r} needs arguments a name cannot give (use it "
            "through its layer, e.g. keras.layers.ReLU(threshold=...), in your own model)"
        ) from None
    if shape != (2, 4):
        raise argparse.ArgumentTypeError(
            f"activation {text!r} changes the shape of its input ({(2, 4)} -> "
            f"{shape}): a hidden layer's output would not have --width units"
        )
    return text


#: Bytes per weight while training: the weight, its gradient, SGD's
#: momentum and a temporary, in float32.
_BYTES_PER_WEIGHT = 16


def _check_model_size(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses a --depth and --width whose MLP could not fit in memory."""
    if not hasattr(args, "width"):
        return  # the demo: fixed sizes
    w = args.width
    weights = 64 * w + (args.depth - 1) * w * w + 10 * w  # digits have 64 pixels
    need = weights * _BYTES_PER_WEIGHT
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return
    if need > memory // 2:
        parser.error(
            f"--depth {args.depth} --width {w} makes an MLP of {weights} weights, "
            f"about {need / 2**30:.3g} GiB to train, more than half this machine's "
            f"memory ({memory / 2**30:.3g} GiB): choose a smaller --width or --depth"
        )


def _option_specs() -> dict[str, dict]:
    """The options that may come before or after the command, each declared once."""
    return {
        "--out": dict(
            default=".",
            metavar="DIR",
            help="folder for the PNG plots and JSON results (created if needed; "
            "default: the current folder)",
        ),
        "--seed": dict(
            type=_seed,
            default=0,
            help="random seed for the weights, the batch and the data split (default: 0)",
        ),
        "--quiet": dict(action="store_true", default=False, help="no progress lines on stderr"),
        "--epochs": dict(
            type=_positive_int, default=10, help="epochs per training run (default: 10)"
        ),
    }


def _add_options(p: argparse.ArgumentParser, names: Sequence[str], top: bool) -> None:
    # Given before or after the command. Only the top level sets defaults:
    # argparse lets a subcommand's default overwrite a value given earlier.
    specs = _option_specs()
    for name in names:
        spec = specs[name] if top else {**specs[name], "default": argparse.SUPPRESS}
        p.add_argument(name, **spec)


_COMMON = ("--out", "--seed", "--quiet")


def _add_mlp(p: argparse.ArgumentParser, depth: int, activation: str) -> None:
    names = list(demo.candidates())
    p.add_argument(
        "--depth",
        type=_positive_int,
        default=depth,
        help=f"number of hidden Dense layers (default: {depth})",
    )
    p.add_argument(
        "--width",
        type=_positive_int,
        default=64,
        help="units per hidden layer (default: 64)",
    )
    p.add_argument(
        "--activation",
        type=_activation,
        default=activation,
        help=f"activation of the hidden layers, any Keras name (default: {activation})",
    )
    p.add_argument(
        "--initializers",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help="which initializers to run, among: "
        + ", ".join(names)
        + " (default: all). 'default' is Keras's glorot_uniform; 'factory' is "
        "for_activation(activation); 'lsuv' is the factory's choice rescaled on a batch",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "See weight initialization matter: a deep MLP initialized with Keras's "
            "default, the Glorot/LeCun/He initializers of keras_weightinit and the "
            "factory's choice, compared layer by layer (compare) and in training on "
            "scikit-learn's bundled digits (train). Without a command, runs a short "
            "demo of both (about a minute on two CPU cores). The Keras backend is "
            "taken from KERAS_BACKEND."
        ),
        epilog=(
            f"examples:\n  {PROG}                          # the demo, files in .\n"
            f"  {PROG} --out demo_output        # the demo, files in demo_output/\n"
            f"  {PROG} compare --depth 50 --activation tanh\n"
            f"  {PROG} train --activation selu --initializers he_uniform_custom "
            "lecun_normal_custom\n"
            f"  {PROG} train --help"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {_version()} (keras {keras.__version__}, "
        f"backend {keras.backend.backend()})",
    )
    _add_options(parser, (*_COMMON, "--epochs"), top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    compare = sub.add_parser(
        "compare",
        help="per-layer activation std and gradient norm, one column per initializer",
        description=(
            "Builds an MLP of DEPTH hidden Dense(WIDTH, ACTIVATION) layers and a "
            "Dense(10) output once per initializer, runs one batch of digits "
            "forward and backward (cross-entropy), and prints each layer's output "
            "std and kernel gradient norm side by side, with the layers flagged as "
            "vanishing or exploding. Writes compare_<activation>_depth<N>.png and "
            ".json to --out."
        ),
    )
    _add_mlp(compare, 20, "relu")
    compare.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="digits in the batch that is measured (default: 256)",
    )
    _add_options(compare, _COMMON, top=False)

    train = sub.add_parser(
        "train",
        help="train on the digits at several seeds per initializer; median and range",
        description=(
            "Trains an MLP of DEPTH hidden Dense(WIDTH, ACTIVATION) layers and a "
            "Dense(10) output on scikit-learn's bundled 8x8 digits (1347 train, "
            "450 test, no download) with SGD, at SEEDS seeds per initializer "
            "(--seed, --seed + 1, ...; each seed its own data split, the same for "
            "every initializer), and prints the median, range and mean of the "
            "test accuracy per initializer with the runs that diverged (NaN loss, "
            "stopped early, or chance accuracy). Writes "
            "train_<activation>_depth<N>.png (a box per initializer) and .json "
            "to --out."
        ),
    )
    _add_mlp(train, 20, "relu")
    _add_options(train, ("--epochs",), top=False)
    train.add_argument(
        "--seeds",
        type=_positive_int,
        default=demo.DEFAULT_SEEDS,
        help="runs per initializer, at seeds --seed, --seed + 1, ... "
        f"(default: {demo.DEFAULT_SEEDS})",
    )
    train.add_argument(
        "--batch-size", type=_positive_int, default=32, help="minibatch size (default: 32)"
    )
    train.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=0.01,
        help="SGD learning rate (default: 0.01)",
    )
    train.add_argument(
        "--momentum", type=_fraction, default=0.9, help="SGD momentum (default: 0.9)"
    )
    train.add_argument(
        "--verbose", action="store_true", help="a progress line per epoch, not only per run"
    )
    _add_options(train, _COMMON, top=False)
    return parser


def _version() -> str:
    from keras_weightinit import __version__

    return __version__


def _one_thread_for_torch() -> None:
    """PyTorch splits each small matmul over every core, and on a busy
    machine its threads mostly wait for each other: one thread trains these
    MLPs several times faster. TensorFlow and JAX do not need this."""
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)


def _missing_demo_dependencies() -> list[str]:
    import importlib.util

    return [
        package
        for module, package in (("sklearn", "scikit-learn"), ("matplotlib", "matplotlib"))
        if importlib.util.find_spec(module) is None
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `keras-weightinit` and `python -m keras_weightinit`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_model_size(parser, args)
    missing = _missing_demo_dependencies()
    if missing:
        print(
            f"{PROG}: error: this command needs {' and '.join(missing)}: "
            'pip install "keras-weightinit[demo]"',
            file=sys.stderr,
        )
        return 1
    _one_thread_for_torch()
    try:
        COMMANDS[args.command](args, Output(quiet=args.quiet))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # e.g. --out not writable
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
