"""What `initialize` did to each layer, as a table and a CI check."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

#: The reason given for layers that own weights but no kernel.
NO_KERNEL = "no kernel; its weights are kept"


class SignalOutOfBandError(AssertionError):
    """Raised by `InitReport.check` when a layer's signal left the band."""


@dataclasses.dataclass
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


@dataclasses.dataclass
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


@dataclasses.dataclass
class SkippedLayer:
    """A layer `initialize` left unchanged, with the reason.

    `container` is True for a layer whose sublayers were initialized (their
    rows are in the report) and only its own weights were kept.
    """

    layer: str
    layer_type: str
    reason: str
    container: bool = False


@dataclasses.dataclass
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


@dataclasses.dataclass
class NotStored:
    """A layer whose saved config cannot hold the scheme its weights were drawn with."""

    layer: str
    layer_type: str
    reason: str


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or (1e-3 <= abs(x) < 1e4):
        return f"{x:.4g}"
    return f"{x:.3e}"


@dataclasses.dataclass
class InitReport:
    """The result of `keras_weightinit.initialize`.

    Iterating gives one `LayerInit` per kernel, in forward order;
    `report[0]` the first row, `report["dense_1"]` the rows of one layer;
    `str(report)` a table; `report.skipped` the layers left unchanged and why.

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

    def __iter__(self) -> Iterator[LayerInit]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.layers[key]
        if not isinstance(key, str):
            raise TypeError(
                "A report is indexed by position (an int or a slice) or by layer name "
                f"(a str). Received: {key!r} (of type {type(key).__name__})"
            )
        name = key
        rows = [row for row in self.layers if row.layer == name]
        if not rows:
            raise KeyError(
                f"No layer named {name!r} was initialized. Layers: "
                f"{', '.join(dict.fromkeys(r.layer for r in self.layers))}"
            )
        return rows

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
        if not isinstance(require_stable, bool):
            raise TypeError(
                "Argument `require_stable` must be a bool. "
                f"Received: require_stable={require_stable!r}"
            )
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
        if not (0 <= low < high) or not math.isfinite(high):
            raise ValueError(
                "Arguments `low` and `high` must satisfy 0 <= low < high < inf. "
                f"Received: low={low}, high={high}"
            )
        if require_stable and self.method != "lsuv":
            bad = [s for s in self.stability if s.verdict == "unstable"]
            if bad:
                listed = ", ".join(
                    f"{s.activation} (chi {s.chi:.3f}, an error x{_fmt(s.growth)} over "
                    f"{s.layers} layers)"
                    for s in bad
                )
                raise UnstableActivationError(
                    f"No data-free scale holds the signal through {listed}: initialize "
                    f"with a batch (LSUV). Received: a report of method={self.method!r}"
                )
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
                f"{r.layer} (std {_fmt(r.std_after)}"
                + (f", target {_fmt(r.target_std)})" if r.target_std != 1.0 else ")")
                for r in bad
            )
            raise SignalOutOfBandError(
                f"{len(bad)} of {len(signals)} layers have an output std outside "
                f"[{low}, {high}]: {listed}"
            )

    def rows(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for pandas, JSON, ...)."""
        return [dataclasses.asdict(r) for r in self.layers]

    def __str__(self) -> str:
        header = [
            "layer",
            "type",
            "weight",
            "shape",
            "fan_in",
            "fan_out",
            "activation",
            "initializer",
            "scale",
            "w std",
        ]
        if self.measured:
            header += ["std before", "std after"]
        if self.method == "lsuv":
            header += ["lsuv steps"]
        table = [header]
        for r in self.layers:
            act = r.activation
            if r.activation_source not in ("own", "none"):
                act += f" ({r.activation_source}{', guessed' if r.guessed else ''})"
            row = [
                r.layer,
                r.layer_type,
                r.weight,
                "x".join(map(str, r.shape)) or "()",
                str(r.fan_in),
                str(r.fan_out),
                act,
                r.initializer,
                _fmt(r.scale),
                _fmt(r.weight_std),
            ]
            if self.measured:
                row += [_fmt(r.std_before), _fmt(r.std_after)]
            if self.method == "lsuv":
                row += ["-" if r.lsuv_iterations is None else str(r.lsuv_iterations)]
            table.append(row)
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [
            f"Initialization report ({self.method}, seed={self.seed}): "
            f"{len(self.layers)} kernels, "
            f"{sum(not s.container for s in self.skipped)} layers left unchanged"
        ]
        for k, row in enumerate(table):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [f"{r.layer}/{r.weight}: {r.note}" for r in self.layers if r.note]
        if notes:
            lines.append("Notes:")
            lines += [f"  {n}" for n in notes]
        if self.residual:
            lines.append("Residual branches:")
            lines += [
                f"  {b.site}: {b.layer}/{b.weight or '-'} {b.action}: {b.reason}"
                for b in self.residual
            ]
        if self.stability:
            lines.append("Stability (chi: slope of the variance map at unit variance):")
            lines += [
                f"  {s.activation}: chi {s.chi:.4f}, {s.verdict} "
                f"(x{_fmt(s.growth)} over {s.layers} layers)"
                for s in self.stability
            ]
        kept = [s for s in self.skipped if s.reason == NO_KERNEL]
        containers = [s for s in self.skipped if s.container]
        others = [s for s in self.skipped if s.reason != NO_KERNEL and not s.container]
        if containers:
            lines.append("Containers (their sublayers are initialized, their own weights kept):")
            lines += [f"  {s.layer} ({s.layer_type})" for s in containers]
        if self.not_stored:
            lines.append("Not stored in the saved config (a rebuild from config draws otherwise):")
            lines += [f"  {s.layer} ({s.layer_type}): {s.reason}" for s in self.not_stored]
        if others:
            lines.append("Left unchanged:")
            lines += [f"  {s.layer} ({s.layer_type}): {s.reason}" for s in others]
        if kept:
            counts: dict[str, int] = {}
            for s in kept:
                counts[s.layer_type] = counts.get(s.layer_type, 0) + 1
            listed = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in counts.items())
            lines.append(f"Without a kernel, kept as they are: {listed}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<InitReport method={self.method!r} kernels={len(self.layers)} "
            f"skipped={len(self.skipped)}>"
        )
