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

The backend is Keras's: set `KERAS_BACKEND` to `tensorflow`, `jax` or
`torch`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_weightinit.diagnostics import Diagnosis, diagnose

PROG = "keras-weightinit"


# -- the initializers compared -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One way of initializing the MLP: a name, a column label, a recipe."""

    name: str
    label: str
    describe: str
    # activation -> a kernel initializer for one layer (a fresh one per call)
    kernel: Callable[[str], Any]
    # Data-driven: rescales the built model's kernels with a batch (LSUV).
    data_driven: bool = False


def _factory(activation: str):
    from keras_weightinit.factory import for_activation

    return for_activation(activation)


def candidates() -> dict[str, Candidate]:
    """The initializers `compare` and `train` know, in display order."""
    found = [
        Candidate(
            "default",
            "keras",
            "Keras's default kernel initializer, glorot_uniform",
            lambda act: "glorot_uniform",
        )
    ]
    for family, label in (("glorot", "glorot"), ("lecun", "lecun"), ("he", "he")):
        for dist, short in (("normal", "n"), ("uniform", "u")):
            name = f"{family}_{dist}_custom"
            found.append(Candidate(name, f"{label}_{short}", name, lambda act, n=name: n))
    try:
        from keras_weightinit import factory  # noqa: F401
    except ImportError:  # pragma: no cover - the factory ships with the package
        pass
    else:
        found.append(
            Candidate(
                "factory",
                "factory",
                "for_activation(activation): the family the activation calls for",
                _factory,
            )
        )
    if _lsuv() is not None:
        found.append(
            Candidate(
                "lsuv",
                "lsuv",
                "LSUV: the factory's choice, then rescaled layer by layer on a batch",
                _factory,
                data_driven=True,
            )
        )
    return {c.name: c for c in found}


def _lsuv():
    """The model-level LSUV initializer, if this version of the package has it."""
    try:
        from keras_weightinit import model_init
    except ImportError:
        return None
    return getattr(model_init, "initialize", None)


def _describe_factory(activation: str) -> str:
    init = _factory(activation)
    config = init.get_config()
    name = type(init).__name__
    if "scale" in config:
        return f"{name}(scale={config['scale']:.4g}, mode={config['mode']!r})"
    return name


# -- the model and the data ----------------------------------------------------


def load_digits_split(seed: int = 0):
    """scikit-learn's bundled digits, split at `seed`: see `_training.load_digits_split`."""
    from keras_weightinit import _training

    return _training.load_digits_split(seed)


def build_mlp(
    candidate: Candidate,
    activation: str,
    depth: int,
    width: int,
    n_inputs: int = 64,
    n_classes: int = 10,
    seed: int = 0,
    batch=None,
) -> keras.Model:
    """`depth` hidden Dense(width, activation) layers and a Dense(n_classes).

    The output layer gives logits. `keras.utils.set_random_seed(seed)` is
    called first, so every candidate starts from the same random state. A
    data-driven candidate is then initialized on `batch`.
    """
    from keras_weightinit import _training

    keras.utils.set_random_seed(seed)
    model = _training.build_mlp(
        candidate.kernel,
        activation,
        depth,
        width,
        n_inputs=n_inputs,
        n_classes=n_classes,
        name=f"mlp_{candidate.name}",
    )
    if candidate.data_driven:
        _lsuv()(model, batch, method="lsuv", seed=seed)
    return model


# -- output helpers ------------------------------------------------------------


class Reporter:
    """Prints progress lines to stderr and results to stdout."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.start = time.perf_counter()

    def progress(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:5.1f}s] {message}", file=sys.stderr, flush=True)

    def result(self, text: str = "") -> None:
        print(text, flush=True)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width table: first column left-aligned, the others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(cells):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def _sci(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf"
    return f"{x:.1e}"


def _out_dir(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- compare -------------------------------------------------------------------


def run_compare(args, report: Reporter) -> dict[str, Diagnosis]:
    """Diagnoses the MLP once per initializer; prints tables, writes a PNG."""
    x_train, y_train, _, _ = load_digits_split(args.seed)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(x_train), size=min(args.batch_size, len(x_train)), replace=False)
    x, y = x_train[pick], y_train[pick]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    chosen = [candidates()[name] for name in args.initializers]
    report.progress(
        f"compare: {args.depth} x Dense({args.width}, {args.activation}) + "
        f"Dense(10), batch of {len(x)} digits, {len(chosen)} initializers, "
        f"backend {keras.backend.backend()}"
    )
    results: dict[str, Diagnosis] = {}
    for i, cand in enumerate(chosen, 1):
        model = build_mlp(cand, args.activation, args.depth, args.width, seed=args.seed, batch=x)
        results[cand.name] = diagnose(model, x, y, loss=loss)
        report.progress(f"  {i}/{len(chosen)} {cand.name}: measured")

    labels = [candidates()[n].label for n in results]
    depth_rows = _rows_to_show(args.depth + 1)
    for title, attr in (
        ("output std per layer", "std"),
        ("kernel gradient norm per layer (cross-entropy on the batch)", "grad_norm"),
    ):
        rows = []
        for d in depth_rows:
            name = "logits" if d == args.depth + 1 else f"hidden_{d}"
            rows.append(
                [f"{d:>3} {name}"]
                + [_sci(getattr(r.layers[d - 1], attr)) for r in results.values()]
            )
        rows.append(["flagged layers"] + [str(len(r.flagged)) for r in results.values()])
        report.result(f"\n{title}:")
        report.result(format_table(["layer"] + labels, rows))
    report.result("\ncolumns:")
    for name in results:
        cand = candidates()[name]
        text = cand.describe
        if name == "factory":
            text += f" -> {_describe_factory(args.activation)}"
        report.result(f"  {cand.label:<8} {text}")
    thresholds = next(iter(results.values())).thresholds
    report.result(
        f"flags: vanishing signal if std < {thresholds.signal_low:g}, exploding if "
        f"> {thresholds.signal_high:g}; vanishing gradient if |grad|/|W| < "
        f"{thresholds.grad_low:g} or |grad| < {thresholds.spread_low:g} x the "
        f"largest, exploding if |grad|/|W| > {thresholds.grad_high:g}."
    )

    out = _out_dir(args.out)
    stem = f"compare_{args.activation}_depth{args.depth}"
    png = out / f"{stem}.png"
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for name, result in results.items():
        result.plot(axes=axes, label=candidates()[name].label)
    axes[1].legend(fontsize="small", ncol=2)
    fig.suptitle(
        f"{args.depth} hidden Dense({args.width}, {args.activation}) layers, "
        f"one batch of digits, backend {keras.backend.backend()}"
    )
    record = {"seed": args.seed, "results": {n: r.to_dict() for n, r in results.items()}}
    json_path = _save(fig, png, "compare", args, record)
    report.result(f"\nwrote {png}\nwrote {json_path}")
    return results


def _save(fig, png: Path, command: str, args, record: dict) -> Path:
    """Writes `fig` to `png` and the run's settings and `record` next to it."""
    plt = _pyplot()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    json_path = png.with_suffix(".json")
    settings = {
        "command": command,
        "activation": args.activation,
        "depth": args.depth,
        "width": args.width,
        "backend": keras.backend.backend(),
    }
    json_path.write_text(json.dumps({**settings, **record}, indent=1, allow_nan=True))
    return json_path


def _rows_to_show(n: int, most: int = 24) -> list[int]:
    """Every layer when there are few, else an even sample with both ends."""
    if n <= most:
        return list(range(1, n + 1))
    picks = np.unique(np.round(np.linspace(1, n, most)).astype(int))
    return [int(p) for p in picks]


# -- train ---------------------------------------------------------------------


DEFAULT_SEEDS = 3


def _percent_range(summary: dict[str, Any]) -> str:
    return f"{summary['min']:.1%}-{summary['max']:.1%}"


def _loss_text(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "nan"


def train_sentence(results: list[dict[str, Any]]) -> str:
    """What the runs show, in words computed from them (never written in advance).

    Names the initializers with the highest and the lowest median accuracy,
    says whether their ranges over the seeds are apart (every run of one above
    every run of the other) or overlap, and counts the runs that diverged.
    """
    by_median = sorted(results, key=lambda r: (-r["summary"]["median"], -r["summary"]["mean"]))
    best, worst = by_median[0], by_median[-1]
    n = best["summary"]["n"]
    b, w = best["summary"], worst["summary"]
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if len(results) == 1:
        text = (
            f"{best['initializer']}: median {b['median']:.1%} over {seeds} ({_percent_range(b)})."
        )
    else:
        text = (
            f"Highest median over {seeds}: {best['initializer']} {b['median']:.1%} "
            f"({_percent_range(b)}); lowest: {worst['initializer']} {w['median']:.1%} "
            f"({_percent_range(w)})."
        )
        if n == 1:
            text += " One run each says little: single runs differ by tens of points."
        elif b["min"] > w["max"]:
            text += f" Every run of {best['initializer']} beat every run of {worst['initializer']}."
        else:
            text += (
                " Their ranges overlap: these seeds do not separate them "
                "(more with --seeds, or benchmarks/training.py)."
            )
    diverged = [(r["initializer"], r["summary"]["diverged"]) for r in results]
    count = sum(k for _, k in diverged)
    total = sum(r["summary"]["n"] for r in results)
    if count:
        names = ", ".join(f"{name} {k}/{n}" for name, k in diverged if k)
        text += f" {count} of {total} runs diverged (NaN loss or chance accuracy): {names}."
    else:
        text += f" No run diverged (of {total})."
    return text


def run_train(args, report: Reporter) -> list[dict[str, Any]]:
    """Trains the MLP at `args.seeds` seeds per initializer; prints a table, writes a PNG.

    Seeds `args.seed`, `args.seed + 1`, ...; at each seed every initializer
    sees the same data split and batch order. Returns one entry per
    initializer: its runs and their summary (`_training.summarize`).
    """
    from keras_weightinit import _training

    chosen = [candidates()[name] for name in args.initializers]
    seeds = list(range(args.seed, args.seed + args.seeds))
    report.progress(
        f"train: {args.depth} x Dense({args.width}, {args.activation}) + Dense(10) "
        f"on digits, SGD lr {args.learning_rate:g} momentum {args.momentum:g}, "
        f"{args.epochs} epochs, batch {args.batch_size}, {len(chosen)} initializers "
        f"x {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
        f"backend {keras.backend.backend()}"
    )
    keras.utils.set_random_seed(args.seed)
    trainer = _training.Trainer(
        _training.build_mlp(lambda act: "glorot_uniform", args.activation, args.depth, args.width),
        _training.make_optimizer("sgd", args.learning_rate, args.momentum),
    )
    runs: dict[str, list[_training.Run]] = {c.name: [] for c in chosen}
    entries: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
    done = 0
    for seed in seeds:
        data = load_digits_split(seed)
        for cand in chosen:
            t0 = time.perf_counter()
            model = build_mlp(
                cand, args.activation, args.depth, args.width, seed=seed, batch=data[0][:256]
            )

            def epoch_line(epoch, loss, name=cand.name, seed=seed):
                if args.verbose:
                    report.progress(
                        f"    {name} seed {seed}: epoch {epoch + 1}/{args.epochs} loss {loss:.4g}"
                    )

            run = trainer.run(
                model,
                data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=seed,
                on_epoch=epoch_line,
            )
            seconds = time.perf_counter() - t0
            runs[cand.name].append(run)
            entries[cand.name].append({"seed": seed, **run.to_dict(), "seconds": seconds})
            done += 1
            status = "DIVERGED" if run.diverged else f"loss {run.final_loss:.4g}"
            report.progress(
                f"  {done}/{len(chosen) * len(seeds)} {cand.name} seed {seed}: test "
                f"accuracy {run.test_accuracy:.1%}, {status} ({seconds:.1f}s)"
            )
    results = [
        {
            "initializer": cand.name,
            "label": cand.label,
            "summary": _training.summarize(runs[cand.name]),
            "runs": entries[cand.name],
        }
        for cand in chosen
    ]

    order = sorted(
        range(len(results)),
        key=lambda k: (-results[k]["summary"]["median"], -results[k]["summary"]["mean"]),
    )
    rank = {k: r + 1 for r, k in enumerate(order)}
    table = []
    for k, result in enumerate(results):
        s = result["summary"]
        finals = [r["loss_curve"][-1] if r["loss_curve"] else math.nan for r in result["runs"]]
        table.append(
            [
                result["initializer"],
                f"{s['median']:.1%}",
                _percent_range(s),
                f"{s['mean']:.1%}",
                f"{s['diverged']}/{s['n']}",
                _loss_text(s["first_epoch_loss"]),
                _loss_text(float(np.median(np.where(np.isfinite(finals), finals, np.inf)))),
                str(rank[k]),
            ]
        )
    report.result(
        f"\n{args.depth} x Dense({args.width}, {args.activation}) on digits, "
        f"{args.epochs} epochs, seeds {', '.join(map(str, seeds))} (chance: 10%):"
    )
    report.result(
        format_table(
            [
                "initializer",
                "median",
                "range",
                "mean",
                "diverged",
                "loss ep 1",
                "final loss",
                "rank",
            ],
            table,
        )
    )
    report.result(
        "median, range and mean: test accuracy over the seeds; diverged: NaN loss or "
        f"test accuracy <= {_training.CHANCE_CEILING:.0%}; losses: medians over the seeds."
    )
    if any(r["initializer"] == "factory" for r in results):
        report.result(f"factory -> {_describe_factory(args.activation)}")
    report.result(train_sentence(results))

    out = _out_dir(args.out)
    png = out / f"train_{args.activation}_depth{args.depth}.png"
    fig = _plot_train(results, args)
    record = {
        "epochs": args.epochs,
        "seed": args.seed,
        "seeds": seeds,
        "optimizer": {
            "name": "sgd",
            "learning_rate": args.learning_rate,
            "momentum": args.momentum,
        },
        "results": results,
    }
    json_path = _save(fig, png, "train", args, record)
    report.result(f"wrote {png}\nwrote {json_path}")
    return results


def _plot_train(results: list[dict[str, Any]], args):
    """Loss: median over the seeds with a min-max band; accuracy: a box per initializer."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for result in results:
        curves = [r["loss_curve"] for r in result["runs"]]
        epochs = np.arange(1, args.epochs + 1)
        per_epoch = [
            [c[e] for c in curves if e < len(c) and math.isfinite(c[e])] for e in range(args.epochs)
        ]
        keep = [e for e in range(args.epochs) if per_epoch[e]]
        if not keep:
            continue
        mid = [float(np.median(per_epoch[e])) for e in keep]
        (line,) = ax_loss.plot(epochs[keep], mid, marker="o", markersize=3, label=result["label"])
        if len(curves) > 1:
            ax_loss.fill_between(
                epochs[keep],
                [min(per_epoch[e]) for e in keep],
                [max(per_epoch[e]) for e in keep],
                color=line.get_color(),
                alpha=0.15,
            )
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss: median over seeds, band min-max (NaN left out)")
    ax_loss.legend(fontsize="small", ncol=2)
    accs = [[r["test_accuracy"] for r in result["runs"]] for result in results]
    positions = np.arange(1, len(results) + 1)
    ax_acc.boxplot(accs, positions=positions, widths=0.6)
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for pos, result in zip(positions, results):
        for run in result["runs"]:
            x = pos + rng.uniform(-0.15, 0.15)
            if run["diverged"]:
                ax_acc.plot(x, run["test_accuracy"], "x", color="tab:red")
            else:
                ax_acc.plot(x, run["test_accuracy"], ".", color="tab:blue")
    ax_acc.set_xticks(positions, [r["label"] for r in results], rotation=45)
    ax_acc.axhline(0.1, color="grey", linestyle=":", label="chance")
    ax_acc.set_ylim(0, 1)
    n = results[0]["summary"]["n"]
    ax_acc.set_title(f"test accuracy, {n} seed{'s' if n != 1 else ''} (red x: diverged)")
    ax_acc.legend(fontsize="small")
    fig.suptitle(
        f"{args.depth} hidden Dense({args.width}, {args.activation}) layers on "
        f"digits, SGD {args.learning_rate:g} momentum {args.momentum:g}"
    )
    return fig


# -- demo ----------------------------------------------------------------------


def run_demo(args, report: Reporter) -> None:
    """compare, then train with ReLU, then train with SELU; small sizes."""
    names = list(candidates())
    report.result(
        "Weight initialization, shown three ways on a 20-layer MLP "
        f"(backend {keras.backend.backend()}).\n"
        "1) compare: how each initializer carries the signal forward and the "
        "gradient back."
    )
    common = dict(seed=args.seed, out=args.out, depth=20, width=64, verbose=False)
    run_compare(
        argparse.Namespace(**common, activation="relu", batch_size=256, initializers=names),
        report,
    )
    report.result(f"\n2) train with ReLU, {DEFAULT_SEEDS} seeds per initializer:")
    relu = [
        n
        for n in names
        if n in {"default", "he_normal_custom", "he_uniform_custom", "factory", "lsuv"}
    ]
    train_common = dict(
        common,
        epochs=args.epochs,
        batch_size=32,
        learning_rate=0.01,
        momentum=0.9,
        seeds=DEFAULT_SEEDS,
    )
    run_train(
        argparse.Namespace(**train_common, activation="relu", initializers=relu),
        report,
    )
    report.result(
        f"\n3) train with SELU (the factory's choice: {_describe_factory('selu')}), "
        f"{DEFAULT_SEEDS} seeds per initializer:"
    )
    selu = [n for n in names if n in {"lecun_normal_custom", "he_uniform_custom", "factory"}]
    run_train(
        argparse.Namespace(**train_common, activation="selu", initializers=selu),
        report,
    )
    report.result(
        f"\nDone in {time.perf_counter() - report.start:.0f}s. Plots are in "
        f"{Path(args.out).resolve()}. See `{PROG} --help` for more."
    )


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


def _add_common(p: argparse.ArgumentParser, top: bool) -> None:
    # Given before or after the command. Only the top level sets defaults:
    # argparse lets a subcommand's default overwrite a value given earlier.
    def default(value):
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--out",
        default=default("."),
        metavar="DIR",
        help="folder for the PNG plots and JSON results (created if needed; "
        "default: the current folder)",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=default(0),
        help="random seed for the weights, the batch and the data split (default: 0)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress lines on stderr",
    )


def _add_mlp(p: argparse.ArgumentParser, depth: int, activation: str) -> None:
    names = list(candidates())
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
        "for_activation(activation)"
        + ("; 'lsuv' is the factory's choice rescaled on a batch" if "lsuv" in names else ""),
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
    _add_common(parser, top=True)
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        help="epochs per training run (default: 10)",
    )
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
    _add_common(compare, top=False)

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
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=argparse.SUPPRESS,
        help="epochs per run (default: 10)",
    )
    train.add_argument(
        "--seeds",
        type=_positive_int,
        default=DEFAULT_SEEDS,
        help=f"runs per initializer, at seeds --seed, --seed + 1, ... (default: {DEFAULT_SEEDS})",
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
    _add_common(train, top=False)
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
    report = Reporter(quiet=args.quiet)
    try:
        if args.command == "compare":
            run_compare(args, report)
        elif args.command == "train":
            run_train(args, report)
        else:
            run_demo(args, report)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # e.g. --out not writable
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
