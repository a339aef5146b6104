"""What `initialize` did to each layer, as a table and a CI check."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from keras_weightinit._table import number, render
from keras_weightinit._validation import check_bool, check_number

#: The reason given for layers that own weights but no kernel.
NO_KERNEL = "no kernel; its weights are kept"


class SignalOutOfBandError(AssertionError):
    """Raised by `InitReport.check` when a layer's signal left the band."""


@dataclasses.dataclass(frozen=True)
class LayerInit:
    """One kernel `initialize` re-initialized.

    Attributes:
        layer: The layer's name.
        layer_type: The layer's class name.
        weight: Which kernel (`"kernel"`, `"depthwise_kernel"`, ...).
        shape: The kernel's shape.
        fan_in, fan_out: The fans used, from the layer type.
        activation: The activation found after the kernel (canonical name).
        activation_source: Where it was found: `"own"` (the layer's
            `activation`), `"layer <name>"` (an activation layer in the graph),
            `"order <name>"` (the next layer of a subclassed model, which has
            no graph), `"ambiguous ..."`, or `"none"`.
        initializer: The class name of the initializer written to the layer.
        config: Its config, as written (`scale` holds the LSUV factor folded in).
        scale: Variance times fan (`gain²`), after LSUV if any.
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"` (`"orthogonal"` for an
            orthogonal matrix).
        weight_std: The standard deviation of the kernel values.
        std_before: The std of the layer's output (before its activation) on
            the data before `initialize` set this kernel: for LSUV, with the
            analytic draw LSUV starts from, on the signal of the layers before
            it (already rescaled), measured in LSUV's own pass; for the other
            methods, with the weights the model had. `None` without data or
            on rows that do not carry the layer's output.
        std_after: The same after `initialize`.
        lsuv_iterations: Rescaling steps taken by LSUV (`None` if not run).
        lsuv_factor: The product of LSUV's rescaling factors.
        note: Anything worth knowing (why LSUV skipped this kernel, ...).
        checked: Whether `InitReport.check` looks at this row's `std_after`.
            False for recurrent layers, whose output is taken after their
            bounded activations.
        guessed: Whether the activation is a guess: found by the order in
            which a subclassed model or layer holds its sublayers (it has no
            graph), which is usually, not always, the call order.
        residual: What the residual handling did to this kernel, and at
            which branch (`""` for a kernel that ends no residual branch).
        target_std: The output std this kernel aims at: 1, or the scale of
            a residual branch's last kernel; `check` reads `std_after`
            relative to it.
        moments_factor: `method="moments"`: the factor the moment solve
            applied to the analytic draw (folded into `scale`); None otherwise
            or where the analytic scale was kept (see `note`).
        moments_std: `method="moments"`: the pre-activation std the moments
            predict after the factor (no data needed; `std_after` is measured).
    """

    layer: str
    layer_type: str
    weight: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    activation: str
    activation_source: str
    initializer: str
    config: dict[str, Any]
    scale: float
    mode: str
    weight_std: float
    std_before: float | None = None
    std_after: float | None = None
    lsuv_iterations: int | None = None
    lsuv_factor: float | None = None
    note: str = ""
    checked: bool = True
    guessed: bool = False
    residual: str = ""
    target_std: float = 1.0
    moments_factor: float | None = None
    moments_std: float | None = None


class UnstableActivationError(SignalOutOfBandError):
    """Raised by `InitReport.check(require_stable=True)` (see there)."""


#: |chi - 1| up to this is "marginal": the error of a layer's variance
#: changes by at most 2% a layer (x2.7 over 50 layers).
MARGINAL = 0.02


@dataclasses.dataclass(frozen=True)
class ActivationStability:
    """How one activation of the model treats an error in the signal's variance.

    The variance map of a layer is `q -> E[f(sqrt(q) z)²] / E[f(z)²]` (`q`
    the pre-activation variance, `z ~ N(0, 1)`, the weights set for `q = 1`,
    as the moments scheme and LSUV set them). `chi` is its slope
    `d log E[f²] / d log q` at `q = 1`: a relative error `e` in one layer's
    variance becomes `chi·e` in the next.

    Attributes:
        activation: The activation's canonical name.
        chi: The slope.
        verdict: `"contractive"` (`chi < 1 - MARGINAL`: errors shrink, a
            data-free scale is depth-stable), `"marginal"` (errors persist:
            relu, leaky relu, linear) or `"unstable"` (`chi > 1 + MARGINAL`:
            errors grow layer after layer; only data, LSUV, holds the signal).
        layers: How many kernels of the model feed this activation.
        growth: `chi ** layers`, what an error becomes over those layers.
    """

    activation: str
    chi: float
    verdict: str
    layers: int
    growth: float


def verdict(chi: float) -> str:
    """`"contractive"`, `"marginal"` or `"unstable"` for a slope `chi`."""
    if chi < 1 - MARGINAL:
        return "contractive"
    if chi <= 1 + MARGINAL:
        return "marginal"
    return "unstable"


@dataclasses.dataclass(frozen=True)
class SkippedLayer:
    """A layer `initialize` left unchanged, with the reason.

    `container` is True for a layer whose sublayers were initialized (their
    rows are in the report) and only its own weights were kept.
    """

    layer: str
    layer_type: str
    reason: str
    container: bool = False


@dataclasses.dataclass(frozen=True)
class ResidualBranch:
    """One residual branch, and what `initialize` did at its end.

    Attributes:
        site: Where the branch joins the stream (the `Add`'s name, or
            `"<block> (<part>)"` for a keras-hub block).
        layer, layer_type: The layer holding the weight acted on.
        weight: `"gamma"` or the kernel's name.
        action: `"zeroed"`, `"scaled by <f>"`, `"set to <f>"` or `"kept"`.
        reason: Why.
    """

    site: str
    layer: str
    layer_type: str
    weight: str
    action: str
    reason: str


@dataclasses.dataclass(frozen=True)
class NotStored:
    """A layer whose saved config cannot hold the scheme its weights were drawn with."""

    layer: str
    layer_type: str
    reason: str


def plain(value: Any) -> Any:
    """`value` with NumPy scalars turned into Python ones, for JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _section(title: str, lines: list[str]) -> str:
    """A titled block of indented lines, or "" when there are none."""
    return "\n".join([title, *(f"  {line}" for line in lines)]) if lines else ""


class Rows:
    """The vocabulary `InitReport` and `Diagnosis` share.

    A result holds its rows in `layers`. Iterating gives them in forward
    order; `result[0]` is the first row, `result[1:3]` a list of rows,
    `result["dense_1"]` the list of rows of the layer of that name. Each
    result also defines `rows()` (the rows as plain dicts), `to_dict()` (the
    whole result as plain data, for JSON or pandas), `__str__` (a table
    through `keras_weightinit._table`) and `plot()`.
    """

    layers: Any
    #: What the result is called in messages ("report", "diagnosis").
    _noun = "result"

    def _names(self, row) -> tuple[str, ...]:
        """The names `result[name]` finds `row` by; the first is listed in errors."""
        return (row.layer,)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: int | slice | str) -> Any:
        rows = list(self.layers)
        if isinstance(key, slice):
            return rows[key]
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            try:
                return rows[key]
            except IndexError:
                raise IndexError(
                    f"The {self._noun} has {len(rows)} rows. Received: index {key}"
                ) from None
        if isinstance(key, str):
            found = [row for row in rows if key in self._names(row)]
            if found:
                return found
            names = dict.fromkeys(self._names(row)[0] for row in rows)
            raise KeyError(f"No row of the {self._noun} is named {key!r}. Rows: {', '.join(names)}")
        raise TypeError(
            f"A {self._noun} is indexed by position (an int or a slice) or by layer name "
            f"(a str). Received: {key!r} (of type {type(key).__name__})"
        )


@dataclasses.dataclass
class InitReport(Rows):
    """The result of `keras_weightinit.initialize`.

    Iterating gives one `LayerInit` per kernel, in forward order;
    `report[0]` the first row, `report["dense_1"]` the rows of one layer
    (the lookup `Diagnosis` shares, see `Rows`); `str(report)` a table;
    `report.rows()` the rows as dicts, `report.to_dict()` everything;
    `report.plot()` each layer's output std before and after;
    `report.skipped` the layers left unchanged and why.

    Attributes:
        method: `"analytic"`, `"lsuv"` or `"moments"`.
        layers: The `LayerInit` rows.
        skipped: The `SkippedLayer` rows.
        seed: The seed argument `initialize` received.
        measured: Whether output stds were measured on data.
        residual: The `ResidualBranch` rows (empty with `residual="none"`).
        not_stored: The `NotStored` rows: layers whose scheme is lost when
            the layer is rebuilt from its config (its weights are not).
        stability: One `ActivationStability` per activation of the model.
    """

    method: str
    layers: list[LayerInit]
    skipped: list[SkippedLayer]
    seed: int | None
    measured: bool
    residual: list[ResidualBranch] = dataclasses.field(default_factory=list)
    not_stored: list[NotStored] = dataclasses.field(default_factory=list)
    stability: list[ActivationStability] = dataclasses.field(default_factory=list)

    _noun = "report"

    def signals(self) -> dict[str, float]:
        """Layer name -> output std after initialization, for the rows `check` reads."""
        return {r.layer: r.std_after for r in self.layers if r.std_after is not None and r.checked}

    def check(self, low: float = 0.5, high: float = 2.0, *, require_stable: bool = False) -> None:
        """Raises if any layer's output std after initialization is outside [low, high].

        Meant for CI: `initialize(model, batch).check(0.8, 1.25)`. The band
        applies to the std of each layer's output before its activation
        (the `std_after` column), relative to the layer's `target_std` (1,
        except at the end of a residual branch scaled down on purpose);
        non-finite values always fail.

        With `require_stable=True` it also raises where a data-free answer
        cannot hold the signal: if the report is not LSUV's and an activation
        of the model is `"unstable"` (see `stability`), whatever the band
        says on this batch. Without a measurement, only that is checked (a
        data-free report can then pass).

        Args:
            low: The smallest acceptable std.
            high: The largest acceptable std.
            require_stable: Require LSUV for unstable activations.

        Raises:
            ValueError: if the band is not `0 <= low < high`, or the report
                holds no measurement (call `initialize` with `data`) and
                `require_stable` is False.
            UnstableActivationError: naming the unstable activations.
            SignalOutOfBandError: naming every layer outside the band.
        """
        require_stable = check_bool(require_stable, "require_stable")
        check_number(low, "low")
        check_number(high, "high")
        if not (0 <= low < high) or not math.isfinite(high):
            raise ValueError(
                "Arguments `low` and `high` must satisfy 0 <= low < high < inf. "
                f"Received: low={low}, high={high}"
            )
        if require_stable:
            self._check_stable()
        # Rows, not `signals()`: keras-hub blocks repeat their sublayers' names.
        signals = [r for r in self.layers if r.std_after is not None and r.checked]
        if not signals and require_stable:
            return
        if not signals:
            raise ValueError(
                "The report holds no measured signal: pass a batch of inputs as "
                "`data` to `initialize` to measure each layer's output."
            )
        bad = [
            r
            for r in signals
            if not (math.isfinite(r.std_after) and low <= r.std_after / r.target_std <= high)
        ]
        if bad:
            listed = ", ".join(
                f"{r.layer} (std {number(r.std_after)}"
                + (f", target {number(r.target_std)})" if r.target_std != 1.0 else ")")
                for r in bad
            )
            raise SignalOutOfBandError(
                f"{len(bad)} of {len(signals)} layers have an output std outside "
                f"[{low}, {high}]: {listed}"
            )

    def _check_stable(self) -> None:
        """`check(require_stable=True)`: no unstable activation without LSUV."""
        bad = [s for s in self.stability if s.verdict == "unstable"]
        if self.method == "lsuv" or not bad:
            return
        listed = ", ".join(
            f"{s.activation} (chi {s.chi:.3f}, an error x{number(s.growth)} over {s.layers} layers)"
            for s in bad
        )
        raise UnstableActivationError(
            f"No data-free scale holds the signal through {listed}: initialize "
            f"with a batch (LSUV). Received: a report of method={self.method!r}"
        )

    def rows(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for pandas, JSON, ...)."""
        return [plain(dataclasses.asdict(r)) for r in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python data (for JSON, pandas, ...).

        `"layers"` is `rows()`; the other lists hold the `skipped`,
        `residual`, `not_stored` and `stability` rows as dicts.
        """
        return {
            "method": self.method,
            "seed": self.seed,
            "measured": self.measured,
            "layers": self.rows(),
            "skipped": [plain(dataclasses.asdict(s)) for s in self.skipped],
            "residual": [plain(dataclasses.asdict(b)) for b in self.residual],
            "not_stored": [plain(dataclasses.asdict(n)) for n in self.not_stored],
            "stability": [plain(dataclasses.asdict(s)) for s in self.stability],
        }

    # -- the text: a table, then one section per kind of remark ------------------

    def _columns(self) -> list[tuple[str, Callable[[LayerInit], str]]]:
        """(header, cell) for each column of the table; numbers are right-aligned."""
        columns: list[tuple[str, Callable[[LayerInit], str]]] = [
            ("layer", lambda r: r.layer),
            ("type", lambda r: r.layer_type),
            ("weight", lambda r: r.weight),
            ("shape", lambda r: "x".join(map(str, r.shape)) or "()"),
            ("fan_in", lambda r: str(r.fan_in)),
            ("fan_out", lambda r: str(r.fan_out)),
            ("activation", _activation_cell),
            ("initializer", lambda r: r.initializer),
            ("scale", lambda r: number(r.scale)),
            ("w std", lambda r: number(r.weight_std)),
        ]
        if self.measured:
            columns += [
                ("std before", lambda r: number(r.std_before)),
                ("std after", lambda r: number(r.std_after)),
            ]
        if self.method == "lsuv":
            columns.append(
                (
                    "lsuv steps",
                    lambda r: "-" if r.lsuv_iterations is None else str(r.lsuv_iterations),
                )
            )
        return columns

    def _table(self) -> str:
        title = (
            f"Initialization report ({self.method}, seed={self.seed}): "
            f"{len(self.layers)} kernels, "
            f"{sum(not s.container for s in self.skipped)} layers left unchanged"
        )
        columns = self._columns()
        return render(
            [name for name, _ in columns],
            [[cell(r) for _, cell in columns] for r in self.layers],
            right=[i for i, (name, _) in enumerate(columns) if name in _NUMBER_COLUMNS],
            title=title,
        )

    def _notes(self) -> str:
        return _section(
            "Notes:", [f"{r.layer}/{r.weight}: {r.note}" for r in self.layers if r.note]
        )

    def _residual_text(self) -> str:
        return _section(
            "Residual branches:",
            [
                f"{b.site}: {b.layer}/{b.weight or '-'} {b.action}: {b.reason}"
                for b in self.residual
            ],
        )

    def _stability_text(self) -> str:
        return _section(
            "Stability (chi: slope of the variance map at unit variance):",
            [
                f"{s.activation}: chi {s.chi:.4f}, {s.verdict} "
                f"(x{number(s.growth)} over {s.layers} layers)"
                for s in self.stability
            ],
        )

    def _skipped_text(self) -> str:
        """Containers, configs that lose the scheme, layers left unchanged, weight-only layers."""
        others = [s for s in self.skipped if s.reason != NO_KERNEL and not s.container]
        counts: dict[str, int] = {}
        for s in self.skipped:
            if s.reason == NO_KERNEL:
                counts[s.layer_type] = counts.get(s.layer_type, 0) + 1
        kept = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in counts.items())
        sections = [
            _section(
                "Containers (their sublayers are initialized, their own weights kept):",
                [f"{s.layer} ({s.layer_type})" for s in self.skipped if s.container],
            ),
            _section(
                "Not stored in the saved config (a rebuild from config draws otherwise):",
                [f"{s.layer} ({s.layer_type}): {s.reason}" for s in self.not_stored],
            ),
            _section(
                "Left unchanged:", [f"{s.layer} ({s.layer_type}): {s.reason}" for s in others]
            ),
            f"Without a kernel, kept as they are: {kept}" if kept else "",
        ]
        return "\n".join(filter(None, sections))

    def __str__(self) -> str:
        sections = (
            self._table(),
            self._notes(),
            self._residual_text(),
            self._stability_text(),
            self._skipped_text(),
        )
        return "\n".join(filter(None, sections))

    def __repr__(self) -> str:
        return (
            f"<InitReport method={self.method!r} kernels={len(self.layers)} "
            f"skipped={len(self.skipped)}>"
        )

    def plot(self, axes=None, label: str | None = None):
        """Plots each kernel's layer output std before and after, log scale.

        Needs a measured report (`initialize` called with `data`) and
        matplotlib. The dotted line is each row's `target_std` (1, except at
        the end of a residual branch scaled down on purpose).

        Args:
            axes: Optional matplotlib axes to draw into; call `plot` several
                times with the same axes and a `label` to compare. By default
                a new figure is made.
            label: Legend label, prefixed to the two lines.

        Returns:
            The matplotlib `Figure`.

        Raises:
            ValueError: if the report holds no measurement.
        """
        if not self.measured:
            raise ValueError(
                "The report holds no measured signal to plot: pass a batch of inputs "
                "as `data` to `initialize`. Received: a report with measured=False"
            )
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(figsize=(6, 4), constrained_layout=True)
        else:
            fig = axes.figure
        depth = list(range(1, len(self.layers) + 1))
        prefix = "" if label is None else f"{label}: "
        for attr, style in (("std_before", "--"), ("std_after", "-")):
            values = [_positive_or_nan(getattr(r, attr)) for r in self.layers]
            axes.plot(depth, values, style, marker="o", markersize=3, label=prefix + attr)
        axes.step(depth, [r.target_std for r in self.layers], ":", where="mid", color="grey")
        axes.set_yscale("log")
        axes.set_xlabel("kernel, in forward order")
        axes.set_title("layer output std (before its activation)")
        axes.grid(True, which="major", alpha=0.3)
        axes.legend(fontsize="small")
        return fig


#: The columns of `InitReport`'s table that hold numbers (right-aligned).
_NUMBER_COLUMNS = {"fan_in", "fan_out", "scale", "w std", "std before", "std after", "lsuv steps"}


def _activation_cell(r: LayerInit) -> str:
    if r.activation_source in ("own", "none"):
        return r.activation
    return f"{r.activation} ({r.activation_source}{', guessed' if r.guessed else ''})"


def _positive_or_nan(x: float | None) -> float:
    """A value a log axis can draw (NaN leaves a gap)."""
    return x if x is not None and x > 0 else math.nan
