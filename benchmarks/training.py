"""Does the initializer change how well a deep MLP trains? Many seeds per cell.

Single training runs of a deep MLP differ by tens of points from seed to
seed, so one run per initializer measures luck. This script trains every
initializer on every cell with at least ten fixed seeds and reports, per
cell and initializer:

- the mean test accuracy with its 95% Student-t interval over the seeds;
- the median and the worst run;
- the share of runs that diverged (NaN/inf loss, or test accuracy at
  chance: at most 15%, 3.5 standard errors above a constant predictor);
- the median training loss over the first epoch (how fast the start is).

Initializers (rows): Keras's default (``glorot_uniform``), the six
``*_custom`` on every layer, ``for_activation`` (the factory's choice per
layer, Glorot for the linear logits), ``initialize(model)`` (analytic),
``initialize(model, method="moments")`` (data-free, when this version of the
package has it; the column is reported absent otherwise) and LSUV
(``initialize(model, batch)`` on 256 training digits).

Cells: deep MLPs on scikit-learn's bundled 8x8 digits (no download) with
ReLU, SELU, tanh and GELU hidden layers, and a residual ReLU MLP without
normalization (a functional model of ``x = Add()([x, Dense(Dense_relu(x))])``
blocks, initialized through plain ``initialize(model)`` / LSUV so that the
package's residual handling, whatever it is, is what gets measured). Each
cell runs with two optimizers: SGD 0.01 with momentum 0.9 (the command-line
demo's) and Adam at its default rate.

Method. At one seed every initializer sees the same data split, the same
batch order and the same global random state before its weights are drawn,
so runs are paired by seed; the loop is seed -> cell -> initializer, so
initializers are interleaved. Per cell, each of the package's own choices
(``for_activation``, ``initialize``, the data-free mode, LSUV) is compared
with the best fixed initializer (Keras's default and the six ``*_custom``,
best by mean) through the paired differences over seeds and their 95%
t interval: "worse" or "better" only when the interval excludes zero. The
best fixed initializer is picked on the same runs, which favours it a
little.

Speed: one compiled model per (cell, optimizer) trains every run (each run
copies a freshly initialized model's weights in and resets the optimizer;
see ``keras_weightinit._training``). The JAX backend is the fastest for these
tiny MLPs on a CPU.

``--study output`` measures instead what the logits layer's initializer does
under the package's own choices: the model as ``for_activation`` or LSUV
gives it (``as_is``: Glorot logits for the factory, logits rescaled to unit
variance for LSUV), then its logits kernel re-drawn as LeCun, a small scale
(LeCun x 0.1 in std) or zeros; each variant is compared with ``as_is``,
paired by seed.

Run: ``KERAS_BACKEND=jax python benchmarks/training.py --json training.json``
(``--help`` for sizes, seeds and cells; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CELLS = {
    # name: (activation, residual)
    "relu": ("relu", False),
    "selu": ("selu", False),
    "tanh": ("tanh", False),
    "gelu": ("gelu", False),
    "residual_relu": ("relu", True),
}
OPTIMIZERS = ("sgd", "adam")
FIXED = (
    "keras_default",
    "glorot_normal_custom",
    "glorot_uniform_custom",
    "lecun_normal_custom",
    "lecun_uniform_custom",
    "he_normal_custom",
    "he_uniform_custom",
)
OURS = ("for_activation", "initialize", "moments", "lsuv")
LSUV_BATCH = 256
OUTPUT_VARIANTS = ("as_is", "lecun", "small", "zeros")
OUTPUT_BASES = ("for_activation", "lsuv")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one row initializes a model: kernels at build time, then `post`."""

    name: str
    kernel: Callable[[str | None], Any]
    # (model, lsuv batch, seed) -> None: re-initializes the built model.
    post: Callable[[Any, Any, int], None] | None = None
    # Re-draws the logits kernel afterwards (the output-layer study).
    output: str | None = None


def moments_mode() -> tuple[bool, str]:
    """Whether `initialize` accepts `method="moments"` (the data-free mode)."""
    import keras

    from keras_weightinit import initialize
    from keras_weightinit._training import build_mlp

    model = build_mlp(lambda act: "glorot_uniform", "relu", 2, 8)
    try:
        initialize(model, method="moments", seed=0)
    except ValueError as error:
        if "method" in str(error):
            return False, str(error)
        raise
    keras.backend.clear_session()
    return True, ""


def recipes(with_moments: bool) -> dict[str, Recipe]:
    from keras_weightinit import for_activation, initialize

    rows = [Recipe("keras_default", lambda act: "glorot_uniform")]
    rows += [Recipe(name, lambda act, n=name: n) for name in FIXED[1:]]
    rows.append(Recipe("for_activation", lambda act: for_activation(act)))
    rows.append(
        Recipe(
            "initialize",
            lambda act: "glorot_uniform",
            lambda model, batch, seed: initialize(model, seed=seed),
        )
    )
    if with_moments:
        rows.append(
            Recipe(
                "moments",
                lambda act: "glorot_uniform",
                lambda model, batch, seed: initialize(model, method="moments", seed=seed),
            )
        )
    rows.append(
        Recipe(
            "lsuv",
            lambda act: "glorot_uniform",
            lambda model, batch, seed: initialize(model, batch, seed=seed),
        )
    )
    return {r.name: r for r in rows}


def output_study_recipes(with_moments: bool) -> dict[str, Recipe]:
    """The package's choices, their logits kernel as given or re-drawn three ways."""
    base = recipes(with_moments)
    out = {}
    for name in OUTPUT_BASES:
        for variant in OUTPUT_VARIANTS:
            out[f"{name}+{variant}"] = dataclasses.replace(
                base[name],
                name=f"{name}+{variant}",
                output=None if variant == "as_is" else variant,
            )
    return out


def _redraw_logits(model, variant: str, seed: int) -> None:
    import keras

    from keras_weightinit import LecunNormalCustom, VarianceScalingCustom

    kernel = model.get_layer("logits").kernel
    shape = tuple(kernel.shape)
    init = {
        "lecun": LecunNormalCustom(seed=seed),
        # std 0.1 / sqrt(fan_in): logits start ten times smaller than LeCun's
        "small": VarianceScalingCustom(scale=0.01, mode="fan_in", seed=seed),
        "zeros": keras.initializers.Zeros(),
    }[variant]
    kernel.assign(init(shape, dtype=kernel.dtype))


def start_signal(model, batch) -> dict[str, float]:
    """Std of the logits' input and of the logits on `batch`, before training."""
    import keras

    logits = model.get_layer("logits")
    features = keras.Model(model.input, logits.input)(batch)
    out = logits(features)
    return {
        "features_std": float(keras.ops.convert_to_numpy(keras.ops.std(features))),
        "logits_std": float(keras.ops.convert_to_numpy(keras.ops.std(out))),
    }


def build(recipe: Recipe, cell: str, depth: int, width: int, seed: int, batch):
    import keras

    from keras_weightinit._training import build_mlp

    activation, residual = CELLS[cell]
    keras.utils.set_random_seed(seed)  # every row starts from the same state
    model = build_mlp(recipe.kernel, activation, depth, width, residual=residual)
    if recipe.post is not None:
        recipe.post(model, batch, seed)
    if recipe.output is not None:
        _redraw_logits(model, recipe.output, seed)
    return model


# -- analysis --------------------------------------------------------------------


def verdicts(accs: dict[str, list[float]], fixed, ours) -> dict[str, Any]:
    """Each of `ours` against the best of `fixed` (by mean), paired by seed."""
    from keras_weightinit._training import paired_difference

    best = max((n for n in fixed if n in accs), key=lambda n: sum(accs[n]) / len(accs[n]))
    out = {"best_fixed": best, "against_best_fixed": {}}
    for name in ours:
        if name not in accs:
            continue
        mean, low, high = paired_difference(accs[name], accs[best])
        if high < 0:
            word = "worse"
        elif low > 0:
            word = "better"
        else:
            word = "indistinguishable"
        out["against_best_fixed"][name] = {
            "difference": mean,
            "ci_low": low,
            "ci_high": high,
            "verdict": word,
        }
    return out


def sentence(
    cell_key: str, summaries: dict[str, dict], verdict: dict, lead: str = "best of the baselines"
) -> str:
    """One sentence on a cell, computed from its runs."""
    best = verdict["best_fixed"]
    b = summaries[best]
    parts = [
        f"{cell_key}: {lead} {best} "
        f"({b['mean']:.1%} [{b['ci_low']:.1%}, {b['ci_high']:.1%}], "
        f"{b['diverged']}/{b['n']} diverged)"
    ]
    for name, v in verdict["against_best_fixed"].items():
        parts.append(
            f"{name} {v['verdict']} ({v['difference']:+.1%} "
            f"[{v['ci_low']:+.1%}, {v['ci_high']:+.1%}])"
        )
    d = summaries.get("keras_default")
    if d is not None and best != "keras_default":
        parts.append(f"Keras's default {d['mean']:.1%}, {d['diverged']}/{d['n']} diverged")
    return "; ".join(parts) + "."


def print_tables(record: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=140)
    for key, cell in record["cells"].items():
        s = cell["summary"]
        if not s:
            continue
        table = Table(
            title=escape(f"{key}: {cell['description']}, test accuracy over {cell['seeds']} seeds"),
            title_justify="left",
        )
        for column in (
            "initializer",
            "mean [95% CI]",
            "median",
            "worst",
            "diverged",
            "loss, epoch 1",
            "logits std, start",
        ):
            table.add_column(column, justify="left" if column == "initializer" else "right")
        best = cell.get("verdict", {}).get("best_fixed")
        for name, row in s.items():
            mark = " *" if name == best else ""
            table.add_row(
                name + mark,
                f"{row['mean']:.1%} [{row['ci_low']:.1%}, {row['ci_high']:.1%}]",
                f"{row['median']:.1%}",
                f"{row['min']:.1%}",
                f"{row['diverged_share']:.0%}",
                "nan/inf"
                if not math.isfinite(row["first_epoch_loss"])
                else f"{row['first_epoch_loss']:.3f}",
                f"{row['logits_std']:.3g}" if "logits_std" in row else "",
            )
        console.print(table)
        if cell.get("sentence"):
            console.print(cell["sentence"], highlight=False, markup=False)
        console.print()


def markdown(record: dict) -> str:
    """The record's tables and sentences as Markdown (for the docs)."""
    lines = []
    for key, cell in record["cells"].items():
        lines += [f"**{key}**: {cell['description']}, {cell['seeds']} seeds", ""]
        lines += [
            "| initializer | mean [95% CI] | median | worst | diverged | loss, epoch 1 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in cell["summary"].items():
            first = row["first_epoch_loss"]
            lines.append(
                f"| {name} | {row['mean']:.1%} [{row['ci_low']:.1%}, {row['ci_high']:.1%}] "
                f"| {row['median']:.1%} | {row['min']:.1%} | {row['diverged_share']:.0%} "
                f"| {f'{first:.3f}' if math.isfinite(first) else 'nan/inf'} |"
            )
        lines += ["", cell.get("sentence", ""), ""]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    p.add_argument("--depth", type=int, default=20, help="Dense layers (default 20)")
    p.add_argument("--width", type=int, default=64, help="units per layer (default 64)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch (default 32)")
    p.add_argument(
        "--cells",
        default=",".join(f"{c}-{o}" for c in CELLS for o in OPTIMIZERS),
        help="comma-separated CELL-OPTIMIZER, CELL among "
        + ", ".join(CELLS)
        + ", OPTIMIZER sgd or adam (default: all)",
    )
    p.add_argument(
        "--study",
        choices=("initializers", "output"),
        default="initializers",
        help="initializers: every row (default); output: the logits layer's "
        "initializer under the package's own choices",
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="train on the first N digits of each seed's training split (default: all 1347)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 seeds, depth 4, width 8, 1 epoch on 256 digits",
    )
    p.add_argument("--json", type=Path, help="write the record here")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="train nothing: print the tables of a record written by --json, and Markdown",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.depth, args.width, args.epochs, args.train_size = 2, 4, 8, 1, 256
    for name in ("seeds", "depth", "width", "epochs", "batch_size", "train_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for c in cells:
        cell, _, opt = c.rpartition("-")
        if cell not in CELLS or opt not in OPTIMIZERS:
            p.error(
                f"unknown cell {c!r}: expected CELL-OPTIMIZER with CELL among "
                f"{', '.join(CELLS)} and OPTIMIZER sgd or adam"
            )
    args.cells = cells
    return args


def _render_record(path: Path) -> int:
    """Trains nothing: summarizes a record written by --json again, prints it and its Markdown."""
    record = json.loads(path.read_text())
    from keras_weightinit._training import Run

    epochs = record["settings"]["epochs"]
    for cell in record["cells"].values():  # summarized again by this code
        runs = {
            name: [
                Run(e["test_accuracy"], e["test_loss"], e["loss_curve"], epochs) for e in entries
            ]
            for name, entries in cell["runs"].items()
        }
        _summarize_cell(cell, runs, record["study"])
    print_tables(record)
    print(markdown(record))
    return 0


def _describe_cell(key: str, args) -> str:
    """One cell's network, optimizer and schedule, in words."""
    cell, _, opt = key.rpartition("-")
    activation, residual = CELLS[cell]
    if residual:
        shape = (
            f"residual: Dense({args.width}) stem + {args.depth // 2} x "
            f"[x + Dense({args.width})(Dense({args.width}, {activation})(x))]"
        )
    else:
        shape = f"{args.depth} x Dense({args.width}, {activation})"
    optimizer = "SGD 0.01 momentum 0.9" if opt == "sgd" else "Adam 0.001"
    return f"{shape} + Dense(10), {optimizer}, {args.epochs} epochs, batch {args.batch_size}"


def _new_record(args, rows: dict[str, Recipe], seeds: list[int], has_moments: bool, why: str):
    """The record's settings and an empty cell per --cells, before any training."""
    import keras

    from keras_weightinit._training import CHANCE_CEILING

    return {
        "study": args.study,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "depth": args.depth,
            "width": args.width,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "train_size": args.train_size,
            "lsuv_batch": LSUV_BATCH,
            "chance_ceiling": CHANCE_CEILING,
        },
        "seeds": seeds,
        "initializers": list(rows),
        "moments": {"present": has_moments, "reason": why},
        "cells": {
            key: {
                "description": _describe_cell(key, args),
                "seeds": 0,
                "runs": {name: [] for name in rows},
                "summary": {},
            }
            for key in args.cells
        },
    }


def _trainer(key: str, args):
    """The compiled training step of one cell, shared by all its rows and seeds."""
    import keras

    from keras_weightinit import _training as training

    cell, _, opt = key.rpartition("-")
    keras.utils.set_random_seed(0)
    activation, residual = CELLS[cell]
    template = training.build_mlp(
        lambda act: "glorot_uniform",
        activation,
        args.depth,
        args.width,
        residual=residual,
    )
    return training.Trainer(template, training.make_optimizer(opt))


def _train(args, record: dict, rows: dict[str, Recipe], start: float, progress) -> None:
    """Trains every row of every cell on every seed, filling `record` as it goes.

    The record is summarized, and written to --json, after each seed.
    """
    from keras_weightinit import _training as training

    seeds = record["seeds"]
    trainers = {}
    runs = {key: {name: [] for name in rows} for key in args.cells}
    total = len(args.cells) * len(rows) * len(seeds)
    done = 0
    for seed in seeds:
        data = training.load_digits_split(seed)
        if args.train_size is not None:
            data = (data[0][: args.train_size], data[1][: args.train_size], *data[2:])
        batch = data[0][:LSUV_BATCH]
        for key in args.cells:
            cell = key.rpartition("-")[0]
            if key not in trainers:
                trainers[key] = _trainer(key, args)
            for name, recipe in rows.items():
                t0 = time.perf_counter()
                model = build(recipe, cell, args.depth, args.width, seed, batch)
                start_std = start_signal(model, batch)
                run = trainers[key].run(
                    model, data, epochs=args.epochs, batch_size=args.batch_size, seed=seed
                )
                entry = {
                    "seed": seed,
                    **run.to_dict(),
                    **start_std,
                    "seconds": time.perf_counter() - t0,
                }
                record["cells"][key]["runs"][name].append(entry)
                runs[key][name].append(run)
                done += 1
                progress(
                    f"{done}/{total} seed {seed} {key} {name}: {run.test_accuracy:.1%}"
                    + (" diverged" if run.diverged else "")
                    + f" ({entry['seconds']:.1f}s)"
                )
                del model
        for key in args.cells:
            _summarize_cell(record["cells"][key], runs[key], args.study)
        record["elapsed_seconds"] = time.perf_counter() - start
        if args.json:
            args.json.write_text(json.dumps(record, indent=1, allow_nan=True))


def _print_record(record: dict, json_path: Path | None) -> None:
    """The tables, the line that says what was run, and where the record went."""
    seeds = record["seeds"]
    print_tables(record)
    print(
        f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), backend {record['backend']}, "
        f"keras {record['keras']}, {record['machine']['cpus']} CPUs, "
        f"{record['elapsed_seconds'] / 60:.1f} min"
    )
    if json_path:
        print(f"wrote {json_path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return _render_record(args.render)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)  # see keras_weightinit.cli._one_thread_for_torch

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    has_moments, why = moments_mode()
    if not has_moments:
        print(
            "data-free mode: absent (initialize(model, method='moments') raised: "
            f"{why}); its row is left out.",
            flush=True,
        )
    rows = output_study_recipes(has_moments) if args.study == "output" else recipes(has_moments)
    seeds = list(range(args.seeds))
    record = _new_record(args, rows, seeds, has_moments, why)
    progress(
        f"{len(args.cells)} cells x {len(rows)} initializers x {len(seeds)} seeds, "
        f"backend {keras.backend.backend()}"
    )
    _train(args, record, rows, start, progress)
    _print_record(record, args.json)
    return 0


def _summarize_cell(cell: dict, runs: dict[str, list], study: str) -> None:
    """Fills `cell` with the summaries, the verdicts and the sentence."""
    from keras_weightinit._training import summarize

    cell["seeds"] = len(next(iter(runs.values())))
    cell["summary"] = {name: summarize(r) for name, r in runs.items()}
    for name, entries in cell["runs"].items():
        for key in ("features_std", "logits_std"):
            values = [e[key] for e in entries if key in e]
            if values:
                cell["summary"][name][key] = float(np.median(values))
    accs = {name: [r.test_accuracy for r in rs] for name, rs in runs.items()}
    if study == "output":
        # Each variant against the same scheme with its logits as given.
        cell["verdict"] = {}
        for base in OUTPUT_BASES:
            names = [n for n in runs if n.startswith(base + "+")]
            cell["verdict"][base] = verdicts(accs, (f"{base}+as_is",), names[1:])
        cell["sentence"] = " ".join(
            sentence(base, cell["summary"], v, lead="as given")
            for base, v in cell["verdict"].items()
        )
    else:
        cell["verdict"] = verdicts(accs, FIXED, OURS)
        cell["sentence"] = sentence(cell["description"], cell["summary"], cell["verdict"])


if __name__ == "__main__":
    sys.exit(main())
