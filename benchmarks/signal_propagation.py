"""Does the signal survive 50 layers? Keras's default vs analytic vs moments vs LSUV.

For each activation, a deep MLP (default: 50 Dense layers of width 256, a
batch of 512 standard-normal inputs) is initialized five ways (six with
AnyInit), side by side in one run:

- ``keras``: Keras's default, ``glorot_uniform`` (what a user gets without
  thinking about initialization);
- ``analytic``: ``keras_weightinit.initialize(model)``, the factory's
  initializer for each layer's activation with the layer's true fans;
- ``orthogonal``: the same variances, drawn as scaled orthogonal matrices
  (``initialize(model, orthogonal=True)``);
- ``moments``: ``keras_weightinit.initialize(model, method="moments")``,
  data-free: each kernel scaled by moment propagation through the drawn
  kernels, from standard-normal input moments;
- ``lsuv``: ``keras_weightinit.initialize(model, fit_batch)``, LSUV on a
  batch, measured here on a *different* batch of the same size;
- ``anyinit``: ``anyinit.initialize(model, "analytic")`` (AnyInit's
  data-free mode), if the optional ``anyinit`` package imports.

Each network counts as "within" if every layer's pre-activation std is in
[0.5, 2]; the script prints that count per scheme (27 networks: 9
activations x seeds 0-2).

The script measures, with its own forward pass (``x @ W + b``, then the
layer's activation), the standard deviation of every layer's
pre-activation, and prints it at the last layer together with its minimum
and maximum over the layers. LSUV is measured twice: on the batch it was
fitted on (what LSUV sets) and on a held-out batch. It then checks:

- after LSUV, every layer's pre-activation std is within [0.9, 1.1] on the
  LSUV batch, on every seed;
- analytic init keeps relu, leaky_relu, selu and linear within a factor of
  2: the std at the last layer over the std at the first (the first layer's
  pre-activation std is set by the raw input and is sqrt(2) for He, since
  the input is not rectified), as the median over ``--spread-seeds``
  networks (default 20); so does the moments mode;
- the moments mode keeps at least 15 of 27 networks within [0.5, 2] (the
  same share of however many networks are run).

Why a median over networks for the analytic target: a variance rule sets
the *expected* squared signal, but each layer of a finite-width network
multiplies it by a random factor, so the layer-50 std of one network is a
random variable. For ReLU its log has a standard deviation of about
sqrt(5 L / n) / 2 = 0.49 at L = 50, n = 256 (Hanin & Rolnick, 2018, "How to
start training"), so about one network in four lands outside a factor of 2
with exactly the right fans; orthogonal kernels narrow it. The script
prints that spread (median, [min, max], share of networks within the
factor) next to the target. LSUV is what fixes the scale of one given
network.

A second part does the same for convolution stacks whose kernels Keras's
shape-only fan rule reads wrongly, comparing Keras's ``he_normal`` (the He
rule with Keras's fans) with ``initialize``:

- ``Conv2DTranspose``: a decoder-like stack 256 -> 128 -> ... -> 8 channels
  (3x3, stride 1, ReLU). Keras takes the output channels as fan_in, so each
  layer doubles the variance;
- ``DepthwiseConv2D``: six MobileNet-like blocks on 64 channels, a
  depthwise 3x3 then a pointwise 1x1 convolution, ReLU after each. Keras
  counts all 128 channels in the depthwise fan_in where each output sees 9
  inputs, so each block divides the variance by 128.

Run: ``KERAS_BACKEND=tensorflow python benchmarks/signal_propagation.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import runpy
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_weightinit as kwi  # noqa: E402

ACTIVATIONS = ["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "tanh", "linear"]
ANALYTIC_TARGETS = ("relu", "leaky_relu", "selu", "linear")
LSUV_BAND = (0.9, 1.1)
FACTOR = 2.0
WITHIN = (0.5, 2.0)  # a network is "within" if every layer's std is in this band
MOMENTS_SHARE = 15 / 27  # networks within WITHIN the moments mode must keep


def _anyinit():
    try:
        import anyinit
    except ImportError:
        return None
    return anyinit


def mlp_schemes() -> tuple[str, ...]:
    base = ("keras", "analytic", "orthogonal", "moments", "lsuv")
    return base + ("anyinit",) if _anyinit() is not None else base


def _std(x) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64).std())


def preactivation_stds(layers, x) -> list[float]:
    """Pre-activation std of each layer, by a forward pass written out here."""
    stds = []
    h = keras.ops.convert_to_tensor(x)
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            pre = keras.ops.matmul(h, layer.kernel) + layer.bias
            stds.append(_std(pre))
            h = layer.activation(pre)
        else:  # a convolution with an activation: measure before it
            act = layer.activation
            layer.activation = keras.activations.linear
            try:
                pre = layer(h)
            finally:
                layer.activation = act
            stds.append(_std(pre))
            h = act(pre)
    return stds


def mlp(activation: str, depth: int, width: int) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input((width,))]
        + [keras.layers.Dense(width, activation=activation) for _ in range(depth)]
    )


def example_rms(layers, x) -> np.ndarray:
    """Per-example RMS of the last layer's pre-activation."""
    h = keras.ops.convert_to_tensor(x)
    for layer in layers:
        pre = keras.ops.matmul(h, layer.kernel) + layer.bias
        h = layer.activation(pre)
    p = np.asarray(keras.ops.convert_to_numpy(pre), dtype=np.float64)
    return np.sqrt((p * p).reshape(len(p), -1).mean(axis=1))


def summary(stds: list[float]) -> dict:
    return {
        "std_first": stds[0],
        "std_last": stds[-1],
        "std_min": min(stds),
        "std_max": max(stds),
        "stds": stds,
    }


def run_mlp(args, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    fit = rng.standard_normal((args.batch, args.width)).astype("float32")
    held_out = rng.standard_normal((args.batch, args.width)).astype("float32")
    rows = []
    for activation in args.activations:
        for scheme in mlp_schemes():
            keras.utils.set_random_seed(seed)
            model = mlp(activation, args.depth, args.width)
            t0 = time.perf_counter()
            if scheme == "analytic":
                kwi.initialize(model, seed=seed)
            elif scheme == "orthogonal":
                kwi.initialize(model, seed=seed, orthogonal=True)
            elif scheme == "moments":
                kwi.initialize(model, seed=seed, method="moments")
            elif scheme == "anyinit":
                _anyinit().initialize(model, "analytic", seed=seed)
            elif scheme == "lsuv":
                kwi.initialize(model, fit, seed=seed)
            seconds = time.perf_counter() - t0
            row = {"seed": seed, "activation": activation, "scheme": scheme, "seconds": seconds}
            # Keras and analytic do not see data: any batch is a held-out one.
            row.update(summary(preactivation_stds(model.layers, fit)))
            row["within"] = within(row["std_min"], *WITHIN) and within(row["std_max"], *WITHIN)
            if scheme == "lsuv":
                held = summary(preactivation_stds(model.layers, held_out))
                row["held_out"] = held
                row["held_out_median_example_rms"] = float(
                    np.median(example_rms(model.layers, held_out))
                )
            rows.append(row)
    return rows


SPREAD_SCHEMES = ("analytic", "orthogonal", "moments")


def run_spread(args) -> list[dict]:
    """Layer-last / layer-1 std ratio of many networks: analytic, orthogonal, moments."""
    rows = []
    for seed in range(args.spread_seeds):
        x = np.random.default_rng(seed).standard_normal((args.batch, args.width))
        x = x.astype("float32")
        for activation in ANALYTIC_TARGETS:
            for scheme in SPREAD_SCHEMES:
                keras.utils.set_random_seed(seed)
                model = mlp(activation, args.depth, args.width)
                if scheme == "moments":
                    kwi.initialize(model, seed=seed, method="moments")
                else:
                    kwi.initialize(model, seed=seed, orthogonal=scheme == "orthogonal")
                stds = preactivation_stds(model.layers, x)
                rows.append(
                    {
                        "seed": seed,
                        "activation": activation,
                        "scheme": scheme,
                        "ratio": stds[-1] / stds[0],
                    }
                )
    return rows


def spread_summary(spread_rows: list[dict], activation: str, scheme: str) -> dict | None:
    """Median, range, log sd and share within the factor of one (activation, scheme)."""
    ratios = [
        r["ratio"] for r in spread_rows if r["activation"] == activation and r["scheme"] == scheme
    ]
    if not ratios:
        return None
    logs = np.log(ratios)
    return {
        "median": float(np.median(ratios)),
        "min": float(np.min(ratios)),
        "max": float(np.max(ratios)),
        "sd_log": float(np.std(logs)),
        "within": float(np.mean(np.abs(logs) <= np.log(FACTOR))),
        "n": len(ratios),
    }


def conv_stacks(seed: int, batch: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    stacks = {
        "Conv2DTranspose 256->8": (
            (16, 16, 256),
            lambda init: [
                keras.layers.Conv2DTranspose(
                    c, 3, padding="same", activation="relu", kernel_initializer=init
                )
                for c in (128, 64, 32, 16, 8)
            ],
        ),
        # MobileNet-like blocks: a depthwise 3x3 then a pointwise 1x1, ReLU
        # after each. (A depthwise-only ReLU stack loses channels whatever
        # the init: a channel whose 9 weights sum below 0 stays dead, since
        # nothing mixes channels back in.) "valid" padding: every depthwise
        # output sees exactly 3x3 inputs, no border.
        "DepthwiseConv2D + 1x1 Conv2D x6, 128 ch": (
            (16, 16, 128),
            lambda init: [
                layer
                for _ in range(6)
                for layer in (
                    keras.layers.DepthwiseConv2D(
                        3, padding="valid", activation="relu", depthwise_initializer=init
                    ),
                    keras.layers.Conv2D(128, 1, activation="relu", kernel_initializer=init),
                )
            ],
        ),
    }
    for name, (shape, make) in stacks.items():
        fit = rng.standard_normal((batch, *shape)).astype("float32")
        held_out = rng.standard_normal((batch, *shape)).astype("float32")
        for scheme in ("keras glorot_uniform", "keras he_normal", "analytic", "lsuv"):
            keras.utils.set_random_seed(seed)
            init = "he_normal" if scheme == "keras he_normal" else "glorot_uniform"
            layers = make(init)
            model = keras.Sequential([keras.Input(shape), *layers])
            if scheme == "analytic":
                kwi.initialize(model, seed=seed)
            elif scheme == "lsuv":
                kwi.initialize(model, fit, seed=seed)
            row = {"seed": seed, "stack": name, "scheme": scheme}
            row.update(summary(preactivation_stds(model.layers, fit)))
            if scheme == "lsuv":
                row["held_out"] = summary(preactivation_stds(model.layers, held_out))
            rows.append(row)
    return rows


def fmt(x: float) -> str:
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.1e}"


def cell(r: dict) -> str:
    return f"{fmt(r['std_last'])} [{fmt(r['std_min'])}, {fmt(r['std_max'])}]"


def within(x: float, lo: float, hi: float) -> bool:
    return bool(np.isfinite(x)) and lo <= x <= hi


def targets(mlp_rows, conv_rows, spread_rows, args) -> list[tuple[str, bool, str]]:
    """(target, met, worst or judged value) for each target."""
    out = []
    for activation in args.activations:
        lsuv = [r for r in mlp_rows if r["activation"] == activation and r["scheme"] == "lsuv"]
        lo, hi = min(r["std_min"] for r in lsuv), max(r["std_max"] for r in lsuv)
        out.append(
            (
                f"lsuv {activation}: every layer's std in {list(LSUV_BAND)} on the LSUV batch",
                LSUV_BAND[0] <= lo and hi <= LSUV_BAND[1],
                f"[{fmt(lo)}, {fmt(hi)}]",
            )
        )
    for scheme in ("analytic", "moments"):
        for activation in ANALYTIC_TARGETS:
            q = spread_summary(spread_rows, activation, scheme)
            if q is None:
                continue
            out.append(
                (
                    f"{scheme} {activation}: median over {q['n']} networks of the std at "
                    f"layer {args.depth} / layer 1 within x{FACTOR:g}",
                    within(q["median"], 1 / FACTOR, FACTOR),
                    fmt(q["median"]),
                )
            )
    moments = [r for r in mlp_rows if r["scheme"] == "moments"]
    if moments:
        good = sum(r["within"] for r in moments)
        need = math.ceil(MOMENTS_SHARE * len(moments) - 1e-9)
        out.append(
            (
                f"moments: at least {need} of {len(moments)} networks with every layer's std "
                f"in {list(WITHIN)}",
                good >= need,
                f"{good}/{len(moments)}",
            )
        )
    for stack in dict.fromkeys(r["stack"] for r in conv_rows):
        rows = [r for r in conv_rows if r["stack"] == stack and r["scheme"] == "analytic"]
        ratios = [q / r["std_first"] for r in rows for q in (r["std_min"], r["std_max"])]
        worst = max(ratios, key=lambda q: abs(np.log(q)))
        out.append(
            (
                f"analytic {stack}: every layer's std within x{FACTOR:g} of layer 1",
                all(within(q, 1 / FACTOR, FACTOR) for q in ratios),
                fmt(worst),
            )
        )
    return out


def render_tables(mlp_rows, conv_rows, spread_rows, args) -> tuple[str, bool]:
    seed = args.seeds[0]
    schemes = list(dict.fromkeys(r["scheme"] for r in mlp_rows))
    lines = [
        f"MLP: {args.depth} x Dense({args.width}), batch {args.batch}, N(0, 1) inputs, "
        f"seed {seed}. Pre-activation std at layer {args.depth} [min, max over the "
        "layers]; lsuv on the batch it was fitted on, then on a held-out batch "
        "(with the median over examples of each example's RMS at the last layer).",
        "",
        "| activation | keras glorot_uniform | analytic | analytic, orthogonal | moments "
        "| lsuv | lsuv, held-out batch | held-out median example |"
        + (" anyinit analytic |" if "anyinit" in schemes else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
        + (" --- |" if "anyinit" in schemes else ""),
    ]
    for activation in args.activations:
        by = {
            r["scheme"]: r for r in mlp_rows if r["activation"] == activation and r["seed"] == seed
        }
        lsuv = by["lsuv"]
        lines.append(
            f"| {activation} | {cell(by['keras'])} | {cell(by['analytic'])} "
            f"| {cell(by['orthogonal'])} | {cell(by['moments'])} | {cell(lsuv)} "
            f"| {cell(lsuv['held_out'])} | {fmt(lsuv['held_out_median_example_rms'])} |"
            + (f" {cell(by['anyinit'])} |" if "anyinit" in by else "")
        )
    n_nets = len(args.activations) * len(args.seeds)
    lines += [
        "",
        f"Networks with every layer's pre-activation std in {list(WITHIN)} ("
        f"{len(args.activations)} activations x {len(args.seeds)} seeds; seconds: median "
        "time of one initialization):",
        "",
        "| scheme | networks within | seconds |",
        "| --- | ---: | ---: |",
    ]
    for scheme in schemes:
        rows = [r for r in mlp_rows if r["scheme"] == scheme]
        lines.append(
            f"| {scheme} | {sum(r['within'] for r in rows)}/{n_nets} "
            f"| {np.median([r['seconds'] for r in rows]):.2f} |"
        )
    if conv_rows:
        lines += [
            "",
            f"Convolution stacks, ReLU, batch {args.conv_batch}, seed {seed}: pre-activation "
            "std at the last layer [min, max over the layers].",
            "",
            "| stack | keras glorot_uniform | keras he_normal | analytic | lsuv "
            "| lsuv, held-out batch |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for stack in dict.fromkeys(r["stack"] for r in conv_rows):
            by = {r["scheme"]: r for r in conv_rows if r["stack"] == stack and r["seed"] == seed}
            cells = [
                cell(by[s]) for s in ("keras glorot_uniform", "keras he_normal", "analytic", "lsuv")
            ]
            cells.append(cell(by["lsuv"]["held_out"]))
            lines.append(f"| {stack} | " + " | ".join(cells) + " |")
    if spread_rows:
        lines += [
            "",
            f"Spread over networks: std at layer {args.depth} / layer 1 for "
            f"{args.spread_seeds} seeds (0-{args.spread_seeds - 1}); sd of its log; share of "
            f"networks within x{FACTOR:g}.",
            "",
            "| activation | "
            + " | ".join(f"{s}: median [min, max] | sd log | within" for s in SPREAD_SCHEMES)
            + " |",
            "| --- |" + " --- | ---: | ---: |" * len(SPREAD_SCHEMES),
        ]
        for activation in ANALYTIC_TARGETS:
            cells = []
            for scheme in SPREAD_SCHEMES:
                q = spread_summary(spread_rows, activation, scheme)
                cells += [
                    f"{fmt(q['median'])} [{fmt(q['min'])}, {fmt(q['max'])}]",
                    f"{q['sd_log']:.2f}",
                    f"{q['within']:.0%}",
                ]
            lines.append(f"| {activation} | " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, args.seeds))
    lines += [
        "",
        f"Targets (LSUV and convolutions: worst over seeds {seeds}; analytic MLP: the "
        "median over networks), value in brackets:",
    ]
    ok = True
    for text, good, worst in targets(mlp_rows, conv_rows, spread_rows, args):
        ok &= good
        lines.append(f"- {'PASS' if good else 'FAIL'} {text} [{worst}]")
    return "\n".join(lines), ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Signal propagation through a deep MLP and two convolution stacks: "
            "Keras's default initialization vs keras_weightinit.initialize "
            "(analytic) vs LSUV, side by side. Exits 1 if a target is missed."
        )
    )
    parser.add_argument("--depth", type=int, default=50, help="Dense layers (default 50)")
    parser.add_argument("--width", type=int, default=256, help="units per layer (default 256)")
    parser.add_argument("--batch", type=int, default=512, help="MLP batch size (default 512)")
    parser.add_argument(
        "--activations",
        nargs="+",
        default=ACTIVATIONS,
        choices=ACTIVATIONS,
        metavar="NAME",
        help=f"activations to run (default: all of {' '.join(ACTIVATIONS)})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        metavar="SEED",
        help="seeds for data and weights; the LSUV and convolution targets must hold "
        "on each, tables show the first (default: 0 1 2)",
    )
    parser.add_argument(
        "--conv-batch", type=int, default=32, help="batch size of the conv stacks (default 32)"
    )
    parser.add_argument(
        "--spread-seeds",
        type=int,
        default=20,
        help="networks (seeds 0..N-1) over which the analytic MLP target is judged "
        "(default 20; 0 skips it)",
    )
    parser.add_argument("--no-conv", action="store_true", help="skip the convolution stacks")
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH")
    args = parser.parse_args(argv)
    if args.spread_seeds < 0:
        parser.error("--spread-seeds must be at least 0")
    for name in ("depth", "width", "batch", "conv_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.batch < 16 or args.conv_batch < 16:
        parser.error("LSUV needs batches of at least 16 examples")

    t0 = time.perf_counter()
    mlp_rows, conv_rows = [], []
    for seed in args.seeds:
        mlp_rows += run_mlp(args, seed)
        if not args.no_conv:
            conv_rows += conv_stacks(seed, args.conv_batch)
    spread_rows = run_spread(args)
    text, ok = render_tables(mlp_rows, conv_rows, spread_rows, args)
    machine = (
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print(text)
    print(f"\n{machine}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"mlp": mlp_rows, "conv": conv_rows, "spread": spread_rows, "machine": machine},
                f,
                indent=1,
            )
    return 0 if ok else 1


# -- Residual networks -------------------------------------------------------
# ``python benchmarks/signal_propagation.py residual``: the std of the
# residual stream with N(0, 1) inputs, for Keras's default, the analytic
# scheme without residual handling (``residual="none"``) and with it (the
# default, ``residual="auto"``): two stacks whose growth is known in closed
# form, and keras.applications models (weights=None, 32x32) in inference
# mode, where a fresh BatchNormalization is the identity.

RESIDUAL_SCHEMES = ("keras", "none", "auto")
# Growth bounds: docs/model-init.md, "Residual networks".
RESIDUAL_TARGETS = {"mlp": 3.0, "transformer": 2.0}
RESIDUAL_APPS = ("ResNet50", "ResNet50V2", "MobileNetV2")


# The residual models the zoo tests use too (tests/zoo.py, read by its path:
# this script runs with benchmarks/ first on sys.path).
_ZOO = runpy.run_path(str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "zoo.py"))
residual_mlp = _ZOO["residual_mlp"]
pre_ln_transformer = _ZOO["pre_ln_transformer"]


def add_stds(model, x) -> tuple[list[float], float]:
    """The std of every ``Add`` output and of the model's output, inference mode."""
    adds = [layer.output for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(model.inputs, adds + [model.output])
    outs = probe([x], training=False)
    return [_std(o) for o in outs[:-1]], _std(outs[-1])


def _residual_model(case: str, seed: int, scheme: str):
    keras.utils.set_random_seed(seed)
    if case == "mlp":
        model, shape = residual_mlp(), (512, 128)
    elif case == "transformer":
        model, shape = pre_ln_transformer(), (64, 16, 64)
    else:
        model = getattr(keras.applications, case)(
            weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
        )
        shape = (16, 32, 32, 3)
    if scheme != "keras":
        kwi.initialize(model, seed=seed, residual=scheme)
    x = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    return model, x


def run_residual(seeds, apps) -> list[dict]:
    rows = []
    for case in ("mlp", "transformer", *apps):
        for seed in seeds:
            for scheme in RESIDUAL_SCHEMES:
                model, x = _residual_model(case, seed, scheme)
                stds, out = add_stds(model, x)
                rows.append(
                    {
                        "case": case,
                        "seed": seed,
                        "scheme": scheme,
                        "max_add_std": max(stds),
                        "growth": stds[-1] / _std(x),
                        "output_std": out,
                    }
                )
    return rows


def render_residual(rows, seeds) -> tuple[str, bool]:
    first = [r for r in rows if r["seed"] == seeds[0]]
    lines = [
        "Residual stream with N(0, 1) inputs (inference mode), seed "
        f"{seeds[0]}: growth = std of the last Add / std of the input for the stacks, "
        "max std over the Add outputs and logits std for the applications.",
        "",
        '| case | Keras default | analytic, residual="none" | analytic, residual="auto" |',
        "| --- | --- | --- | --- |",
    ]
    for case in dict.fromkeys(r["case"] for r in first):
        by = {r["scheme"]: r for r in first if r["case"] == case}
        if case in RESIDUAL_TARGETS:
            cells = [f"x{fmt(by[s]['growth'])}" for s in RESIDUAL_SCHEMES]
        else:
            cells = [
                f"{fmt(by[s]['max_add_std'])} (logits {fmt(by[s]['output_std'])})"
                for s in RESIDUAL_SCHEMES
            ]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", "Targets (on every seed):"]
    ok = True
    for case, bound in RESIDUAL_TARGETS.items():
        worst = max(r["growth"] for r in rows if r["case"] == case and r["scheme"] == "auto")
        good = worst <= bound
        ok &= good
        lines.append(f"- {'PASS' if good else 'FAIL'} {case}: growth <= x{bound} [x{fmt(worst)}]")
    for r in rows:
        if r["case"] in RESIDUAL_TARGETS or r["scheme"] != "auto":
            continue
        good = r["max_add_std"] <= 10 and 0.05 <= r["output_std"] <= 10
        ok &= good
        lines.append(
            f"- {'PASS' if good else 'FAIL'} {r['case']} seed {r['seed']}: every Add std <= 10 "
            f"[{fmt(r['max_add_std'])}], logits std in [0.05, 10] [{fmt(r['output_std'])}]"
        )
    return "\n".join(lines), ok


def residual_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="signal_propagation.py residual",
        description="The residual stream after Keras's default, initialize(residual='none') "
        "and initialize() (residual='auto'). Exits 1 if a target is missed.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED")
    parser.add_argument(
        "--apps",
        nargs="*",
        default=list(RESIDUAL_APPS),
        choices=RESIDUAL_APPS,
        help="keras.applications models to run (default: all; none: only the stacks)",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    text, ok = render_residual(run_residual(args.seeds, args.apps), args.seeds)
    print(text)
    print(
        f"\nkeras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs; {time.perf_counter() - t0:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(residual_main(sys.argv[2:]) if sys.argv[1:2] == ["residual"] else main())
