"""The demo behind the `keras-weightinit` command, usable from Python.

A deep MLP on scikit-learn's bundled 8x8 digits (no download), built once
per initializer. Two experiments, each returning a plain result object that
prints as the command's tables (`str`), plots (`plot()`), serializes
(`to_dict()`) and writes the command's PNG and JSON (`save(out)`):

- `compare(...) -> Comparison`: each layer's output std and kernel gradient
  norm on one batch (`keras_weightinit.diagnose`), one column per
  initializer.
- `train(...) -> Training`: test accuracy after a few epochs of SGD, at
  several seeds per initializer: the median, range and mean, the runs that
  diverged, and a sentence computed from them.

In a notebook::

    from keras_weightinit import demo

    comparison = demo.compare("tanh", depth=30, initializers=["default", "factory"])
    print(comparison)
    comparison.plot()
    training = demo.train("selu", seeds=3, epochs=5)
    print(training.sentence)

The initializers are named by `candidates()`:

>>> list(candidates())[:3]
['default', 'glorot_normal_custom', 'glorot_uniform_custom']
>>> describe_factory("selu")
'LecunNormalCustom'

Needs scikit-learn (the digits) and matplotlib (the plots):
`pip install "keras-weightinit[demo]"`. The backend is Keras's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from keras_weightinit import _training
from keras_weightinit._table import number, render
from keras_weightinit.diagnostics import Diagnosis, diagnose
from keras_weightinit.factory import for_activation
from keras_weightinit.model_init import initialize

#: Runs per initializer in `train` (seeds `seed`, `seed + 1`, ...).
DEFAULT_SEEDS = 3

#: Takes the progress lines of `compare` and `train`, e.g. `print`.
Progress = Callable[[str], None]


def _silent(message: str) -> None:
    """The `progress` of a caller who gives none."""


# -- the initializers compared -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One way of initializing the MLP: a name, a column label, a recipe."""

    name: str
    label: str
    describe: str
    # activation -> a kernel initializer for one layer (a fresh one per call)
    kernel: Callable[[str | None], Any]
    # Data-driven: rescales the built model's kernels with a batch (LSUV).
    data_driven: bool = False


def candidates() -> dict[str, Candidate]:
    """The initializers `compare` and `train` know, by name, in display order."""
    found = [
        Candidate(
            "default",
            "keras",
            "Keras's default kernel initializer, glorot_uniform",
            lambda act: "glorot_uniform",
        )
    ]
    for family in ("glorot", "lecun", "he"):
        for dist in ("normal", "uniform"):
            name = f"{family}_{dist}_custom"
            found.append(Candidate(name, f"{family}_{dist[0]}", name, lambda act, n=name: n))
    found += [
        Candidate(
            "factory",
            "factory",
            "for_activation(activation): the family the activation calls for",
            for_activation,
        ),
        Candidate(
            "lsuv",
            "lsuv",
            "LSUV: the factory's choice, then rescaled layer by layer on a batch",
            for_activation,
            data_driven=True,
        ),
    ]
    return {c.name: c for c in found}


def describe_factory(activation: str) -> str:
    """What `for_activation(activation)` gives, in a few words."""
    init = for_activation(activation)
    config = init.get_config()
    name = type(init).__name__
    if "scale" in config:
        return f"{name}(scale={config['scale']:.4g}, mode={config['mode']!r})"
    return name


def _chosen(initializers: Iterable[str] | None) -> list[Candidate]:
    known = candidates()
    if initializers is None:
        names = list(known)
    else:  # one name, or several
        names = [initializers] if isinstance(initializers, str) else list(initializers)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"Argument `initializers` must be a non-empty list of names among "
            f"{', '.join(known)}. Received: initializers={initializers!r}"
        )
    return [known[n] for n in names]


# -- the model ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MLP:
    """`depth` hidden `Dense(width, activation)` layers and `Dense(10)` logits."""

    activation: str = "relu"
    depth: int = 20
    width: int = 64

    def build(self, candidate: Candidate, *, seed: int = 0, batch=None) -> keras.Model:
        """The MLP initialized by `candidate`, from `keras.utils.set_random_seed(seed)`.

        Every candidate starts from the same random state; a data-driven one
        is then initialized on `batch`.
        """
        keras.utils.set_random_seed(seed)
        model = _training.build_mlp(
            candidate.kernel, self.activation, self.depth, self.width, name=f"mlp_{candidate.name}"
        )
        if candidate.data_driven:
            initialize(model, batch, method="lsuv", seed=seed)
        return model

    def __str__(self) -> str:
        return f"{self.depth} x Dense({self.width}, {self.activation})"

    @property
    def layers(self) -> str:
        """The hidden layers, in words (the plots' titles)."""
        return f"{self.depth} hidden Dense({self.width}, {self.activation}) layers"

    def settings(self, command: str) -> dict[str, Any]:
        """The first keys of the command's JSON file."""
        return {
            "command": command,
            "activation": self.activation,
            "depth": self.depth,
            "width": self.width,
            "backend": keras.backend.backend(),
        }


def for_each(
    chosen: Sequence[Candidate],
    seeds: Sequence[int],
    step: Callable[[Candidate, int], tuple[Any, str]],
    progress: Progress,
) -> dict[str, list[Any]]:
    """`step(candidate, seed)` at every seed for every candidate: the loop of both experiments.

    `step` returns a result and the end of its progress line. The results
    come back by candidate name, one per seed, in order.
    """
    results: dict[str, list[Any]] = {c.name: [] for c in chosen}
    total = len(chosen) * len(seeds)
    for seed in seeds:
        for candidate in chosen:
            result, note = step(candidate, seed)
            results[candidate.name].append(result)
            done = sum(map(len, results.values()))
            progress(f"  {done}/{total} {candidate.name}{note}")
    return results


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Result:
    """What `Comparison` and `Training` share: the files the command writes."""

    command: ClassVar[str]
    mlp: MLP

    def plot(self):
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, out: str | Path) -> tuple[Path, Path]:
        """Writes COMMAND_ACTIVATION_depthN.png (`plot()`) and .json (`to_dict()`) to `out`.

        `out` is created if needed.
        """
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        png = folder / f"{self.command}_{self.mlp.activation}_depth{self.mlp.depth}.png"
        fig = self.plot()
        fig.savefig(png, dpi=100)
        _pyplot().close(fig)
        json_path = png.with_suffix(".json")
        json_path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True))
        return png, json_path


# -- compare -------------------------------------------------------------------


def _rows_to_show(n: int, most: int = 24) -> list[int]:
    """Every layer when there are few, else an even sample with both ends."""
    if n <= most:
        return list(range(1, n + 1))
    picks = np.unique(np.round(np.linspace(1, n, most)).astype(int))
    return [int(p) for p in picks]


@dataclasses.dataclass(frozen=True)
class Comparison(_Result):
    """What `compare` measured: a `Diagnosis` per initializer, by name."""

    command: ClassVar[str] = "compare"
    mlp: MLP
    seed: int
    batch_size: int
    results: dict[str, Diagnosis]

    def table(self, attribute: str) -> str:
        """One row per layer (an even sample of a deep MLP), one column per initializer."""
        names = [candidates()[n].label for n in self.results]
        diagnoses = list(self.results.values())
        rows = []
        for d in _rows_to_show(self.mlp.depth + 1):
            layer = "logits" if d == self.mlp.depth + 1 else f"hidden_{d}"
            cells = [number(getattr(r.layers[d - 1], attribute)) for r in diagnoses]
            rows.append([f"{d:>3} {layer}", *cells])
        rows.append(["flagged layers", *(str(len(r.flagged)) for r in diagnoses)])
        return render(["layer", *names], rows, right=range(1, len(names) + 1))

    def legend(self) -> list[str]:
        """The columns, and the rule that flags a layer."""
        lines = ["columns:"]
        for name in self.results:
            candidate = candidates()[name]
            text = candidate.describe
            if name == "factory":
                text += f" -> {describe_factory(self.mlp.activation)}"
            lines.append(f"  {candidate.label:<8} {text}")
        t = next(iter(self.results.values())).thresholds
        lines.append(
            f"flags: vanishing signal if std < {t.signal_low:g}, exploding if "
            f"> {t.signal_high:g}; vanishing gradient if |grad|/|W| < "
            f"{t.grad_low:g} or |grad| < {t.spread_low:g} x the "
            f"largest, exploding if |grad|/|W| > {t.grad_high:g}."
        )
        return lines

    def __str__(self) -> str:
        return "\n".join(
            [
                "output std per layer:",
                self.table("std"),
                "",
                "kernel gradient norm per layer (cross-entropy on the batch):",
                self.table("grad_norm"),
                "",
                *self.legend(),
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The command's JSON: the settings, then each initializer's `Diagnosis.to_dict()`."""
        return {
            **self.mlp.settings(self.command),
            "seed": self.seed,
            "results": {n: r.to_dict() for n, r in self.results.items()},
        }

    def plot(self):
        """Std and gradient norm by depth, a line per initializer (a matplotlib figure)."""
        fig, axes = _pyplot().subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
        for name, result in self.results.items():
            result.plot(axes=axes, label=candidates()[name].label)
        axes[1].legend(fontsize="small", ncol=2)
        fig.suptitle(f"{self.mlp.layers}, one batch of digits, backend {keras.backend.backend()}")
        return fig


def compare(
    activation: str = "relu",
    depth: int = 20,
    width: int = 64,
    *,
    initializers: Iterable[str] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: Progress | None = None,
) -> Comparison:
    """Diagnoses the MLP once per initializer on one batch of digits.

    The batch is `batch_size` training digits drawn at `seed`; the loss is
    cross-entropy on the logits. `initializers` are names of `candidates()`
    (default: all). `progress` gets a line per initializer.
    """
    progress = progress or _silent
    chosen = _chosen(initializers)
    mlp = MLP(activation, depth, width)
    x_train, y_train, _, _ = _training.load_digits_split(seed)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(batch_size, len(x_train)), replace=False)
    x, y = x_train[pick], y_train[pick]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    progress(
        f"compare: {mlp} + Dense(10), batch of {len(x)} digits, {len(chosen)} "
        f"initializers, backend {keras.backend.backend()}"
    )

    def measure(candidate: Candidate, seed: int) -> tuple[Diagnosis, str]:
        model = mlp.build(candidate, seed=seed, batch=x)
        return diagnose(model, x, y, loss=loss), ": measured"

    results = for_each(chosen, [seed], measure, progress)
    return Comparison(mlp, seed, len(x), {name: found[0] for name, found in results.items()})


# -- train ---------------------------------------------------------------------


def percent_range(summary: dict[str, Any]) -> str:
    """A summary's accuracy range, e.g. `80.0%-90.0%`."""
    return f"{summary['min']:.1%}-{summary['max']:.1%}"


def _loss(value: float) -> str:
    # A diverged run's loss (inf or NaN) reads as NaN, as in "NaN loss".
    return number(value if math.isfinite(value) else math.nan)


def train_sentence(results: list[dict[str, Any]]) -> str:
    """What the runs show, in words computed from them (never written in advance).

    Names the initializers with the highest and the lowest median accuracy,
    says whether their ranges over the seeds are apart (every run of one above
    every run of the other) or overlap, and counts the runs that diverged.
    """
    by_median = sorted(results, key=lambda r: (-r["summary"]["median"], -r["summary"]["mean"]))
    best, worst = by_median[0], by_median[-1]
    b, w = best["summary"], worst["summary"]
    n = b["n"]
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if len(results) == 1:
        text = f"{best['initializer']}: median {b['median']:.1%} over {seeds} ({percent_range(b)})."
    else:
        text = (
            f"Highest median over {seeds}: {best['initializer']} {b['median']:.1%} "
            f"({percent_range(b)}); lowest: {worst['initializer']} {w['median']:.1%} "
            f"({percent_range(w)})."
        )
        text += _apart_or_overlap(best, worst, n)
    return text + _divergences(results)


def _apart_or_overlap(best: dict[str, Any], worst: dict[str, Any], n: int) -> str:
    if n == 1:
        return " One run each says little: single runs differ by tens of points."
    if best["summary"]["min"] > worst["summary"]["max"]:
        return f" Every run of {best['initializer']} beat every run of {worst['initializer']}."
    return (
        " Their ranges overlap: these seeds do not separate them "
        "(more with --seeds, or benchmarks/training.py)."
    )


def _divergences(results: list[dict[str, Any]]) -> str:
    count = sum(r["summary"]["diverged"] for r in results)
    total = sum(r["summary"]["n"] for r in results)
    if not count:
        return f" No run diverged (of {total})."
    names = ", ".join(
        f"{r['initializer']} {r['summary']['diverged']}/{r['summary']['n']}"
        for r in results
        if r["summary"]["diverged"]
    )
    return f" {count} of {total} runs diverged (NaN loss or chance accuracy): {names}."


@dataclasses.dataclass(frozen=True)
class Training(_Result):
    """What `train` measured: per initializer, its runs and their summary.

    `results` holds one dict per initializer, in the order asked:
    `initializer`, `label`, `summary` (`_training.summarize`) and `runs`
    (each run's seed, `Run.to_dict()` and seconds).
    """

    command: ClassVar[str] = "train"
    mlp: MLP
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    seeds: list[int]
    results: list[dict[str, Any]]

    @property
    def sentence(self) -> str:
        """What the runs show, in words (`train_sentence`)."""
        return train_sentence(self.results)

    def table(self) -> str:
        """Median, range, mean, divergences and median losses per initializer, ranked."""
        order = sorted(
            range(len(self.results)),
            key=lambda k: (
                -self.results[k]["summary"]["median"],
                -self.results[k]["summary"]["mean"],
            ),
        )
        rank = {k: r + 1 for r, k in enumerate(order)}
        rows = []
        for k, result in enumerate(self.results):
            s = result["summary"]
            finals = [r["loss_curve"][-1] if r["loss_curve"] else math.nan for r in result["runs"]]
            final = float(np.median(np.where(np.isfinite(finals), finals, np.inf)))
            rows.append(
                [
                    result["initializer"],
                    f"{s['median']:.1%}",
                    percent_range(s),
                    f"{s['mean']:.1%}",
                    f"{s['diverged']}/{s['n']}",
                    _loss(s["first_epoch_loss"]),
                    _loss(final),
                    str(rank[k]),
                ]
            )
        header = ["initializer", "median", "range", "mean", "diverged"]
        header += ["loss ep 1", "final loss", "rank"]
        return render(header, rows, right=range(1, len(header)))

    def __str__(self) -> str:
        lines = [
            f"{self.mlp} on digits, {self.epochs} epochs, seeds "
            f"{', '.join(map(str, self.seeds))} (chance: 10%):",
            self.table(),
            "median, range and mean: test accuracy over the seeds; diverged: NaN loss or "
            f"test accuracy <= {_training.CHANCE_CEILING:.0%}; losses: medians over the seeds.",
        ]
        if any(r["initializer"] == "factory" for r in self.results):
            lines.append(f"factory -> {describe_factory(self.mlp.activation)}")
        lines.append(self.sentence)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The command's JSON: the settings, the seeds, the optimizer and `results`."""
        return {
            **self.mlp.settings(self.command),
            "epochs": self.epochs,
            "seed": self.seeds[0],
            "seeds": self.seeds,
            "optimizer": {
                "name": "sgd",
                "learning_rate": self.learning_rate,
                "momentum": self.momentum,
            },
            "results": self.results,
        }

    def plot(self):
        """Loss: median over the seeds with a min-max band; accuracy: a box per initializer."""
        fig, (ax_loss, ax_acc) = _pyplot().subplots(
            1, 2, figsize=(12, 4.5), constrained_layout=True
        )
        _plot_losses(ax_loss, self.results, self.epochs)
        _plot_accuracies(ax_acc, self.results)
        fig.suptitle(
            f"{self.mlp.layers} on digits, SGD {self.learning_rate:g} momentum {self.momentum:g}"
        )
        return fig


def _plot_losses(ax, results: list[dict[str, Any]], epochs: int) -> None:
    for result in results:
        curves = [r["loss_curve"] for r in result["runs"]]
        per_epoch = [
            [c[e] for c in curves if e < len(c) and math.isfinite(c[e])] for e in range(epochs)
        ]
        keep = [e for e in range(epochs) if per_epoch[e]]
        if not keep:
            continue
        x = np.arange(1, epochs + 1)[keep]
        mid = [float(np.median(per_epoch[e])) for e in keep]
        (line,) = ax.plot(x, mid, marker="o", markersize=3, label=result["label"])
        if len(curves) > 1:
            low = [min(per_epoch[e]) for e in keep]
            high = [max(per_epoch[e]) for e in keep]
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title("training loss: median over seeds, band min-max (NaN left out)")
    ax.legend(fontsize="small", ncol=2)


def _plot_accuracies(ax, results: list[dict[str, Any]]) -> None:
    accs = [[r["test_accuracy"] for r in result["runs"]] for result in results]
    positions = np.arange(1, len(results) + 1)
    ax.boxplot(accs, positions=positions, widths=0.6)
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for pos, result in zip(positions, results):
        for run in result["runs"]:
            style = ("x", "tab:red") if run["diverged"] else (".", "tab:blue")
            ax.plot(pos + rng.uniform(-0.15, 0.15), run["test_accuracy"], style[0], color=style[1])
    ax.set_xticks(positions, [r["label"] for r in results], rotation=45)
    ax.axhline(0.1, color="grey", linestyle=":", label="chance")
    ax.set_ylim(0, 1)
    n = results[0]["summary"]["n"]
    ax.set_title(f"test accuracy, {n} seed{'s' if n != 1 else ''} (red x: diverged)")
    ax.legend(fontsize="small")


def train(
    activation: str = "relu",
    depth: int = 20,
    width: int = 64,
    *,
    initializers: Iterable[str] | None = None,
    epochs: int = 10,
    seeds: int = DEFAULT_SEEDS,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    progress: Progress | None = None,
    verbose: bool = False,
) -> Training:
    """Trains the MLP on the digits at `seeds` seeds per initializer (SGD with momentum).

    Seeds `seed`, `seed + 1`, ...: at each seed every initializer sees the
    same data split and batch order. `progress` gets a line per run (and per
    epoch with `verbose`).
    """
    progress = progress or _silent
    chosen = _chosen(initializers)
    mlp = MLP(activation, depth, width)
    at = list(range(seed, seed + seeds))
    progress(
        f"train: {mlp} + Dense(10) on digits, SGD lr {learning_rate:g} momentum "
        f"{momentum:g}, {epochs} epochs, batch {batch_size}, {len(chosen)} initializers "
        f"x {len(at)} seeds ({', '.join(map(str, at))}), backend {keras.backend.backend()}"
    )
    keras.utils.set_random_seed(seed)
    trainer = _training.Trainer(
        _training.build_mlp(lambda act: "glorot_uniform", activation, depth, width),
        _training.make_optimizer("sgd", learning_rate, momentum),
    )
    splits: dict[int, Any] = {}

    def run(candidate: Candidate, seed: int) -> tuple[dict[str, Any], str]:
        if seed not in splits:
            splits[seed] = _training.load_digits_split(seed)
        data = splits[seed]
        t0 = time.perf_counter()
        model = mlp.build(candidate, seed=seed, batch=data[0][:256])

        def epoch_line(epoch: int, loss: float) -> None:
            if verbose:
                progress(
                    f"    {candidate.name} seed {seed}: epoch {epoch + 1}/{epochs} loss {loss:.4g}"
                )

        result = trainer.run(
            model, data, epochs=epochs, batch_size=batch_size, seed=seed, on_epoch=epoch_line
        )
        seconds = time.perf_counter() - t0
        status = "DIVERGED" if result.diverged else f"loss {result.final_loss:.4g}"
        note = f" seed {seed}: test accuracy {result.test_accuracy:.1%}, {status} ({seconds:.1f}s)"
        return {
            "run": result,
            "entry": {"seed": seed, **result.to_dict(), "seconds": seconds},
        }, note

    found = for_each(chosen, at, run, progress)
    results = [
        {
            "initializer": c.name,
            "label": c.label,
            "summary": _training.summarize([f["run"] for f in found[c.name]]),
            "runs": [f["entry"] for f in found[c.name]],
        }
        for c in chosen
    ]
    return Training(mlp, epochs, batch_size, learning_rate, momentum, at, results)
