"""Initialize a whole built model: right fans for every layer, or LSUV from data.

`initialize(model)` re-draws every kernel of a built Keras model (Sequential,
functional or subclassed) with the initializer its activation calls for and
the fans its layer *type* implies, writes that initializer into the layer so
that saving, reloading and `clone_model` keep the scheme, and returns an
`InitReport`. With a batch of inputs it runs LSUV on top.

Decisions, layer by layer (fans: see `keras_weightinit.layer_fans`):

- Dense, EinsumDense, ConvND, ConvNDTranspose, DepthwiseConvND: the
  factory's initializer for the activation that follows the kernel (the
  layer's own `activation`, else the next activation layer in the graph),
  with explicit `input_axes`/`output_axes` so that the fans stay right.
- SeparableConvND: the depthwise kernel feeds the pointwise one directly,
  so it is initialized as linear (Glorot, which is `1/∏k` for a depth
  multiplier of 1); the pointwise kernel gets the activation's initializer.
- LSTM, GRU, SimpleRNN: the input kernel gets the family of the layer's
  `activation` (tanh: Glorot's scale 1) read in `fan_in` mode, because the
  gates are stacked along the output axis and only the fan-in of each gate
  is exact. The recurrent kernel is re-drawn orthogonal (gain 1, Keras's
  own default, Saxe et al. 2014: an orthogonal map keeps the hidden state's
  norm through time). An LSTM's forget-gate bias stays 1 when
  `unit_forget_bias` is on.
- Embedding: a row of the table *is* the layer's output (a one-hot input
  has fan_in 1), so it gets the scale of the activation that follows it in
  `fan_in` mode with `fan_in = 1`: `N(0, 1)` when nothing follows, as in
  PyTorch's `nn.Embedding`.
- MultiHeadAttention: one initializer serves its four projections, so all
  four are initialized as linear maps (Glorot) with the fans of each
  projection's einsum equation. The layer's own `kernel_initializer` is
  written unseeded, so that a rebuilt layer gets four distinct projections.
- ReversibleEmbedding with `tie_weights=True` (keras-hub's token
  embeddings): the table is also the output projection, `logits = x @
  tableᵀ`. The projection's scale wins, `var = 1/dim` (`fan_in` mode with
  `fan_in = dim`): the logits then have std 1 on a normalized `x`, where
  the lookup's `N(0, 1)` would give them std `sqrt(dim)` (16 at dim 256).
  The lookup side loses nothing that matters: the blocks after it
  normalize their input (pre-LN) or the embeddings are normalized first
  (BERT). An untied one's `reverse_embeddings` is a linear map.
- Grouped convolutions: fan_out is `∏k·out/groups` (see
  `keras_weightinit._kinds`), folded into the written scale.
- Normalization layers and PReLU own weights but no kernel: kept.
- Anything else that owns weights: left unchanged and listed in
  `report.skipped`, as are layers whose activation is not a Keras one
  (with `gain=` given, any callable activation is accepted, as
  `for_activation` accepts it). A container whose sublayers are
  initialized is listed with `container=True`: only its own weights are kept.

Residual branches (`residual=`, see `keras_weightinit._residual` for how
they are found): each `x + f(x)` adds the branch's variance to the
stream's, so variance-preserving branches make the stream grow with depth
(measured with N(0, 1) inputs and `residual="none"`: ResNet50's stream
reaches std 193, a 24-block residual MLP grows ×4,400, an 8-block pre-LN
transformer ×4.1). The default, `"auto"`:

- a branch that ends in a normalization gets its scale `gamma` zeroed, so
  each block starts as its shortcut (Goyal et al. 2017, §5.1; timm's
  `zero_init_last`, torchvision's `zero_init_residual`); the branch's
  kernels keep their variance-preserving draw, so gradients reach them;
- a branch that ends in a kernel gets that kernel's std times `1/sqrt(N)`,
  N the number of such branches in the model (GPT-2's `1/sqrt(2L)` for L
  blocks of two branches; Fixup, Zhang et al. 2019): the stream's
  variance then stays within `(1 + 1/N)^N < e` without normalization, and
  `1 + 1` after a pre-normalization;
- a branch whose sum is normalized right after (post-norm: BERT) is kept.

`"scale"` applies the `1/sqrt(N)` to the gamma too, `"zero"` zeroes the
last kernel too (Fixup's zero last layer), `"none"` keeps every branch as
the analytic rule draws it. LSUV composes: it never touches a gamma, skips
zeroed kernels, and aims a scaled kernel's output at its own std
(`LayerInit.target_std`), which `report.check` reads the band against.

Seeds: with `seed=<int>` every kernel gets its own stream, derived from the
seed and the kernel's position in the model, so the same seed re-initializes
a model bit for bit, and the derived seed is written into the layer's
initializer (a clone built from the config draws the same values). With
`seed=None` the streams come from Python's `random` (so
`keras.utils.set_random_seed` makes them reproducible) and the initializers
are written unseeded.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import random as python_random
from typing import Any

import keras
import numpy as np

from keras_weightinit import _draw, _forward, _moments, _residual
from keras_weightinit import _graph as graph
from keras_weightinit import _keras_internals as internals
from keras_weightinit import _kinds as table
from keras_weightinit._kinds import layer_fans  # re-exported (as is `Fans`): older imports
from keras_weightinit._validation import check_bool, check_choice, check_positive_finite
from keras_weightinit.activations import resolve_activation
from keras_weightinit.factory import check_gain, for_activation
from keras_weightinit.fans import Fans, compute_fans
from keras_weightinit.initializers import SEED_LIMIT, VarianceScalingCustom
from keras_weightinit.report import (
    NO_KERNEL,
    InitReport,
    LayerInit,
    NotStored,
    ResidualBranch,
    SkippedLayer,
)

__all__ = ["Fans", "initialize", "layer_fans"]

METHODS = ("auto", "analytic", "lsuv", "moments")
BIAS = ("zeros", "keep")
RESIDUAL = ("auto", "scale", "zero", "none")
# Rows `report.check` does not read: recurrent outputs are taken after their
# bounded activations; a lookup's output is its rows, drawn at the intended
# std, whose sample std on a batch is off by chance when few rows are used
# (BERT's two segment rows), which no rescaling of an input can correct.
_UNCHECKED = (table.RNN_INPUT, table.RECURRENT, table.EMBEDDING, table.TIED)


@dataclasses.dataclass
class _Plan:
    slot: table.Slot
    activation: str
    source: str
    draw: Any  # the initializer that draws the values (always int-seeded)
    seed: int | None  # the seed written into the layer's initializer
    weight_std: float
    mode: str
    scale: float
    lsuv_target: bool = False
    stream: int = 0  # the seed the values are drawn with
    guessed: bool = False
    residual: str = ""  # what the residual handling did to this kernel, and why
    target_std: float = 1.0  # the output std LSUV aims at


def _derive_seed(base: int, index: int) -> int:
    state = np.random.SeedSequence(base, spawn_key=(index,))
    return int(state.generate_state(1, dtype=np.uint32)[0] >> 1)


def _orthogonal_gain(draw_std: float, shape: tuple[int, ...]) -> float:
    # Keras's Orthogonal flattens the kernel to (prod(shape[:-1]), shape[-1]);
    # an orthogonal matrix of that shape has entries of variance
    # 1 / max(rows, cols), so this gain gives them `draw_std`.
    rows, cols = math.prod(shape[:-1]), shape[-1]
    return draw_std * math.sqrt(max(rows, cols))


def _make_initializer(base, slot: table.Slot, seed: int, orthogonal: bool):
    """The initializer for one kernel: `base` with the slot's axes and `seed`."""
    fans = slot.fans
    if slot.role == table.RECURRENT:
        return keras.initializers.Orthogonal(gain=1.0, seed=seed)
    if slot.role in (table.RNN_INPUT, table.EMBEDDING, table.TIED):
        init = VarianceScalingCustom(
            scale=base.scale,
            mode="fan_in",
            distribution=base.distribution,
            seed=seed,
            input_axes=fans.input_axes,
            output_axes=fans.output_axes,
        )
    else:
        config = {
            **base.get_config(),
            "seed": seed,
            "input_axes": fans.input_axes,
            "output_axes": fans.output_axes,
        }
        init = type(base).from_config(config)
        init = _fold_fans(init, slot, seed)
    if (
        orthogonal
        and slot.role in (table.KERNEL, table.LINEAR)
        and len(slot.shape) >= 2
        # One initializer serves the four projections of an attention layer.
        and not isinstance(slot.owner, keras.layers.MultiHeadAttention)
    ):
        return keras.initializers.Orthogonal(
            gain=_orthogonal_gain(init.stddev(slot.shape), slot.shape), seed=seed
        )
    return init


def _fold_fans(init, slot: table.Slot, seed: int):
    """`init` with the slot's true fans, where its axes cannot give them.

    A grouped convolution's fan-out is `∏k·out/groups`, which no choice of
    axes expresses: the ratio of the two variances is folded into `scale`.
    """
    fans = slot.fans
    axes = compute_fans(slot.shape, fans.input_axes, fans.output_axes)
    if axes == (fans.fan_in, fans.fan_out) or init.mode == "fan_in":
        return init
    mode_fan = {
        "fan_out": lambda i, o: o,
        "fan_avg": lambda i, o: (i + o) / 2.0,
    }[init.mode]
    ratio = mode_fan(*axes) / mode_fan(fans.fan_in, fans.fan_out)
    return VarianceScalingCustom(
        scale=init.scale * ratio,
        mode=init.mode,
        distribution=init.distribution,
        seed=seed,
        input_axes=fans.input_axes,
        output_axes=fans.output_axes,
    )


def _weight_std(init, shape) -> float:
    if isinstance(init, keras.initializers.Zeros):
        return 0.0
    if isinstance(init, keras.initializers.Orthogonal):
        return init.gain / math.sqrt(max(math.prod(shape[:-1]), shape[-1]))
    return init.stddev(shape)


def _describe(init) -> tuple[str, float]:
    """(mode, scale) of an initializer for the report."""
    if isinstance(init, keras.initializers.Orthogonal):
        return "orthogonal", float(init.gain) ** 2
    if isinstance(init, keras.initializers.Zeros):
        return "zeros", 0.0
    return init.mode, float(init.scale)


def _check_args(method, distribution, bias, tol, max_iter, seed, data, gain, orthogonal):
    check_choice(method, "method", METHODS)
    check_choice(distribution, "distribution", ("normal", "uniform"))
    check_choice(bias, "bias", BIAS)
    check_gain(gain)  # else a bad gain only shows up in `report.skipped`
    check_bool(orthogonal, "orthogonal")
    tol = check_positive_finite(tol, "tol")
    if tol >= 1:
        raise ValueError(f"Argument `tol` must be below 1. Received: tol={tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(
            f"Argument `max_iter` must be a positive integer. Received: max_iter={max_iter!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(
            f"Argument `seed` must be an int or None. Received: seed={seed!r} "
            f"(of type {type(seed).__name__})"
        )
    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise ValueError(
            "Argument `seed` must be an int from 0 to 2**64 - 1, as an initializer's "
            f"(two seeds folded into that range would collide). Received: seed={seed}"
        )
    if method == "auto":
        method = "analytic" if data is None else "lsuv"
    if method == "lsuv" and data is None:
        raise ValueError(
            "LSUV needs a batch of inputs: pass `data`. Received: method='lsuv', data=None"
        )
    return method, tol, int(max_iter)


def _plan(model, distribution, gain, seed, orthogonal):
    w = graph.walk(model)
    plans: list[list[_Plan]] = []
    skipped: list[SkippedLayer] = []
    base_seed = python_random.randint(1, 2**62) if seed is None else int(seed) & (2**64 - 1)
    index = 0
    for layer in w.layers:
        kind = type(layer).__name__
        if not graph.is_unit(layer):
            # A container walked into: its sublayers have their own rows.
            names = ", ".join(v.name for v in table.own_variables(layer))
            skipped.append(
                SkippedLayer(
                    layer.name,
                    kind,
                    f"its sublayers are initialized (their rows above); its own weights "
                    f"({names}) are kept",
                    container=True,
                )
            )
            continue
        try:
            slots = table.kernel_slots(layer)
        except table.NotUnderstood as e:
            skipped.append(SkippedLayer(layer.name, kind, str(e)))
            continue
        if not slots:
            if table.own_variables(layer):
                skipped.append(SkippedLayer(layer.name, kind, NO_KERNEL))
            continue
        unit: list[_Plan] = []
        try:
            for slot in slots:
                found = graph.activation_of(slot, w)
                name = _activation_name(found.activation, gain)
                kwargs = {"distribution": distribution}
                if gain is not None:
                    kwargs["gain"] = gain
                base = for_activation(found.activation, **kwargs)
                stream = _derive_seed(base_seed, index)
                index += 1
                draw = _make_initializer(base, slot, stream, orthogonal)
                mode, scale = _describe(draw)
                unit.append(
                    _Plan(
                        slot=slot,
                        activation=name,
                        source=found.source,
                        draw=draw,
                        seed=None if seed is None else stream,
                        weight_std=_weight_std(draw, slot.shape),
                        mode=mode,
                        scale=scale,
                        stream=stream,
                        guessed=found.source.startswith("order"),
                    )
                )
        except ValueError as e:
            skipped.append(SkippedLayer(layer.name, kind, f"left unchanged: {e}"))
            continue
        last = unit[-1]
        last.lsuv_target = last.slot.role in (table.KERNEL, table.LINEAR)
        plans.append(unit)
    return plans, skipped


def _activation_name(activation, gain) -> str:
    """The canonical name of an activation; with `gain`, a plain callable's own name."""
    try:
        return resolve_activation(activation).name
    except ValueError as e:
        custom = callable(activation) and not isinstance(activation, (str, keras.layers.Layer))
        if not custom:
            raise
        if gain is None:
            raise ValueError(
                f"{e} To initialize it, pass `gain='second_moment'`, "
                "`gain='fixed_point'` or a number to `initialize`."
            ) from None
        return getattr(activation, "__name__", type(activation).__name__)


def _residual_plan(model, plans, mode: str):
    """Zeroes or scales the end of every residual branch; the report's rows.

    Returns the `ResidualBranch` rows and the `(layer, value)` of every
    normalization whose `gamma` is set to `value`. Kernels are changed in
    their plans, so that they are drawn (and written) with the change.
    """
    if mode == "none":
        return [], []
    branches = _residual.find(model)
    by_key = {(id(p.slot.owner), p.slot.weight): p for unit in plans for p in unit}
    acting = [
        b
        for b in branches
        if b.kind == _residual.KERNEL or (b.kind == _residual.GAMMA and mode == "scale")
    ]
    n = len(acting)
    factor = 1.0 / math.sqrt(n) if n else 1.0
    bound = f"1/sqrt({n}): {n} branches add to the stream, whose variance then stays within e"
    rows: list[ResidualBranch] = []
    gammas: list[tuple[Any, float]] = []
    for b in branches:
        action, why = "kept", b.reason
        if b.kind == _residual.GAMMA:
            value = 0.0 if mode in ("auto", "zero") else factor
            gammas.append((b.layer, value))
            if value == 0.0:
                action = "zeroed"
                why = f"{b.reason}: the block starts as its shortcut (Goyal et al. 2017)"
            else:
                action, why = f"set to {factor:.4g}", f"{b.reason}; {bound}"
        elif b.kind == _residual.KERNEL:
            p = by_key.get((id(b.layer), b.weight))
            if p is None:
                why = f"{b.reason}; its kernel is not initialized (see the layers left unchanged)"
            elif mode == "zero":
                p.draw = keras.initializers.Zeros()
                p.lsuv_target = False
                action, why = "zeroed", f"{b.reason}: the block starts as its shortcut (Fixup)"
            else:
                p.draw = _rebuilt(p, p.stream, factor)
                p.target_std = factor
                action, why = f"scaled by {factor:.4g}", f"{b.reason}; std times {bound}"
            if p is not None:
                p.weight_std = _weight_std(p.draw, p.slot.shape)
                p.mode, p.scale = _describe(p.draw)
                p.residual = f"{action} ({b.site})"
        layer = b.layer
        rows.append(
            ResidualBranch(
                site=b.site,
                layer="-" if layer is None else layer.name,
                layer_type="-" if layer is None else type(layer).__name__,
                weight=b.weight,
                action=action,
                reason=why,
            )
        )
    return rows, gammas


def _set_gamma(layer, value: float) -> None:
    gamma = layer.gamma
    gamma.assign(keras.ops.cast(np.full(tuple(gamma.shape), value), gamma.dtype))
    if value == 0.0:
        layer.gamma_initializer = keras.initializers.Zeros()
    else:
        layer.gamma_initializer = keras.initializers.Constant(value)


def _not_stored(model, plans) -> list[NotStored]:
    """Layers whose scheme their saved config cannot hold, and why."""
    out: list[NotStored] = []
    for unit in plans:
        owner = unit[0].slot.owner
        for p in unit:
            if p.slot.init_attr is None:
                out.append(
                    NotStored(
                        owner.name,
                        type(owner).__name__,
                        f"`{p.slot.weight}` has no initializer of its own (one serves "
                        "both tables): a layer rebuilt from its config draws it with "
                        "`embeddings_initializer`",
                    )
                )
        if isinstance(owner, keras.layers.MultiHeadAttention) and unit[-1].residual:
            out.append(
                NotStored(
                    owner.name,
                    type(owner).__name__,
                    "one `kernel_initializer` serves the four projections: a layer rebuilt "
                    "from its config draws the output projection without its residual scale",
                )
            )
    for layer in graph.walk(model).containers:
        composite = (
            internals.has_sublayers(layer)
            and graph.graph_of(layer) is None
            and not graph.is_unit(layer)
            and "kernel_initializer" in _config(layer)
        )
        if composite:
            out.append(
                NotStored(
                    layer.name,
                    type(layer).__name__,
                    "one `kernel_initializer` serves all its sublayers: a layer rebuilt from "
                    "its config (`clone_model`, `from_config`, loading a .keras file) gives "
                    "its sublayers that initializer; the saved weights are restored exactly",
                )
            )
    return out


def _config(layer) -> dict:
    try:
        return layer.get_config()
    except Exception:  # a layer whose config cannot be built has none to store
        return {}


def _rebuilt(plan: _Plan, seed, factor: float):
    """The initializer to write: `plan.draw` with `seed`, LSUV factor folded in."""
    draw = plan.draw
    if isinstance(draw, keras.initializers.Zeros):
        return draw
    if isinstance(draw, keras.initializers.Orthogonal):
        return keras.initializers.Orthogonal(gain=draw.gain * factor, seed=seed)
    config = draw.get_config()
    if factor != 1.0:
        return VarianceScalingCustom(
            scale=draw.scale * factor**2,
            mode=draw.mode,
            distribution=draw.distribution,
            seed=seed,
            input_axes=draw.input_axes,
            output_axes=draw.output_axes,
        )
    return type(draw).from_config({**config, "seed": seed})


def _zero_bias(slot: table.Slot) -> np.ndarray:
    """The bias `bias="zeros"` writes: zeros, but Keras's forget-gate ones in an LSTM."""
    value = np.zeros(tuple(slot.bias.shape), dtype=np.float64)
    cell = slot.holder
    if isinstance(cell, keras.layers.LSTMCell) and cell.unit_forget_bias and value.ndim == 1:
        value[cell.units : 2 * cell.units] = 1.0
    return value


def _draw_all(plans, zero_bias: bool) -> None:
    """Draws every kernel (and zeroes the biases) with the values each initializer's call gives.

    The draws an initializer can describe ahead (`request`) are made in one
    go (`_draw.assign`: one compiled call on TensorFlow); the others
    (orthogonal, a `SeedGenerator` seed) by calling it.
    """
    draws, values = [], []
    for unit in plans:
        for p in unit:
            var = p.slot.variable
            request = getattr(p.draw, "request", None)
            r = request(p.slot.shape, var.dtype) if request is not None else None
            if r is None:
                var.assign(keras.ops.cast(p.draw(p.slot.shape, dtype=var.dtype), var.dtype))
            else:
                draws.append((var, r))
            if zero_bias and p.slot.bias is not None:
                values.append((p.slot.bias, _zero_bias(p.slot)))
    _draw.assign(draws, values)


def _variables_touched(plans) -> list:
    out, seen = [], set()
    for unit in plans:
        for p in unit:
            for v in (p.slot.variable, p.slot.bias):
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
    return out


def initialize(
    model,
    data=None,
    *,
    method: str = "auto",
    distribution: str = "normal",
    seed: int | None = None,
    gain: str | float | None = None,
    bias: str = "zeros",
    orthogonal: bool = False,
    tol: float = 0.1,
    max_iter: int = 10,
    residual: str = "auto",
) -> InitReport:
    """Re-initializes every kernel of a built model; returns a report.

    Analytic (`data=None`): each kernel gets
    `for_activation(<activation after it>, distribution, gain=gain)` with the
    fans of its layer type, so its variance is `scale / fan` with the right
    fan (see the module docstring for each layer type).

    LSUV (`data` given, Mishkin & Matas 2016): after the analytic draw,
    layers are visited in forward order on the batch, in one forward pass,
    and each kernel is divided by the std of its layer's output before the
    activation. With the bias at zero that output is linear in the kernel,
    so one step lands on std 1 exactly; with `bias="keep"` (or a layer
    whose output is not linear in its kernel) the step is repeated until
    `|var - 1| <= tol` (at most `max_iter` steps). The factor is folded into
    the `scale` written into the layer's initializer. The report's "std
    before" is, for LSUV, the std with the analytic draw LSUV starts from,
    on the signal of the layers before it (already rescaled), measured in
    the same pass; with the other methods it is the std with the weights
    the model had.

    Moments (`method="moments"`, data-free): after the analytic draw, the
    mean and variance of every element of the signal are carried through
    the model's graph from the input's (standard normal; with `data`, the
    batch's), and each kernel is scaled once so that its pre-activations
    have unit std, assuming Gaussian pre-activations (see
    `keras_weightinit._moments` for every assumption and the layers it
    follows). Kernels after a layer it cannot follow keep the analytic
    scale, with a note. It is opt-in: `"auto"` without data stays
    `"analytic"`, whose variances equal the table's formula exactly. It
    holds depth-stable activations (relu, leaky relu, elu, selu, tanh,
    linear) at std 1 through a given network's finite-width drift; for
    unstable ones (gelu, silu, mish: see `report.stability`) only data can.

    Biases are set to zero (`bias="keep"` leaves them). Nothing else changes:
    not the output shapes, not the dtypes, not the non-kernel weights
    (normalization statistics, embeddings' masks, ...). A bad batch raises
    before any weight is touched, and any failure afterwards restores every
    weight.

    Examples:

    >>> model = keras.Sequential([
    ...     keras.Input((64,)),
    ...     keras.layers.Dense(32, activation="relu"),
    ...     keras.layers.Dense(16),
    ...     keras.layers.LeakyReLU(),
    ...     keras.layers.Dense(10),
    ... ])
    >>> report = initialize(model, seed=0)
    >>> [(r.activation, r.initializer, r.fan_in) for r in report]
    [('relu', 'HeNormalCustom', 64), ('leaky_relu', 'VarianceScalingCustom', 32), \
('linear', 'GlorotNormalCustom', 16)]
    >>> model.layers[0].kernel_initializer
    HeNormalCustom(seed=..., input_axes=[0], output_axes=[1])

    Args:
        model: A built `keras.Model`.
        data: Optional batch of inputs (an array, or a list/dict of arrays
            for several inputs) of at least 16 examples. With it, the report
            holds each layer's output std before and after.
        method: `"auto"` (LSUV if `data` is given, else analytic),
            `"analytic"` (measure only, if `data` is given), `"lsuv"` or
            `"moments"` (data-free; `data`, if given, sets the input's
            moments and is measured).
        distribution: `"normal"` (untruncated) or `"uniform"`.
        seed: None or an int; see the module docstring.
        gain: Passed to `for_activation`: None (the table),
            `"second_moment"`, `"fixed_point"` or a number.
        bias: `"zeros"` or `"keep"`.
        orthogonal: Draw orthogonal matrices (Saxe et al., 2014; LSUV's own
            starting point) with the variance the analytic rule gives.
        tol: LSUV's tolerance on the output variance, in (0, 1).
        max_iter: LSUV's cap on rescaling steps per layer.
        residual: What to do at the end of each residual branch: `"auto"`
            (zero a last normalization's gamma, else scale the last kernel
            by `1/sqrt(N)`), `"scale"`, `"zero"` or `"none"`; see the
            module docstring. `report.residual` lists every branch.

    Returns:
        An `InitReport`.

    Raises:
        TypeError: if `model` is not a Keras model, or a bad argument type.
        ValueError: if the model is not built, an argument is invalid, or
            `data` is too small, holds NaN/inf, or does not fit the model.

    Reference:
        - Mishkin & Matas, 2016, "All you need is a good init".
        - Goyal et al., 2017, "Accurate, Large Minibatch SGD" (zero gamma).
        - Zhang et al., 2019, "Fixup Initialization".
        - Radford et al., 2019, "Language Models are Unsupervised Multitask
          Learners" (GPT-2's `1/sqrt(2L)`).
        - Saxe et al., 2014, "Exact solutions to the nonlinear dynamics of
          learning in deep linear neural networks".
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras model. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    if not model.built:
        raise ValueError(
            "The model must be built (call it on a batch, or give it an Input) "
            f"before it is initialized. Received: model={model.name!r} (built=False)"
        )
    if not model.weights:
        raise ValueError(
            "The model has no weights, so there is nothing to initialize (its "
            "layers are all weightless, or its sublayers are not tracked as "
            f"attributes). Received: model={model.name!r} (built=True, 0 weights)"
        )
    method, tol, max_iter = _check_args(
        method, distribution, bias, tol, max_iter, seed, data, gain, orthogonal
    )
    check_choice(residual, "residual", RESIDUAL)
    plans, skipped = _plan(model, distribution, gain, seed, orthogonal)
    branches, gammas = _residual_plan(model, plans, residual)

    units: list[_forward.Unit] = []
    unit_of: dict[int, _forward.Unit] = {}
    arrays = None
    if data is not None:
        data = arrays = _forward.prepare_data(model, data)
        for unit in plans:
            owner = unit[-1].slot.owner
            target = unit[-1].slot.variable if unit[-1].lsuv_target else None
            u = _forward.Unit(owner, target, target_std=unit[-1].target_std)
            units.append(u)
            unit_of[id(unit[-1])] = u
        data = _forward.as_backend(data)
        if method != "lsuv":  # LSUV measures "before" in its own pass
            try:
                _forward.run(model, data, units, lsuv=False, tol=tol, max_iter=max_iter)
            except Exception as e:
                raise _does_not_fit(model, e) from e
    before = {id(u): u.std for u in units}

    touched = _variables_touched(plans) + [layer.gamma for layer, _ in gammas]
    snapshot = _forward.snapshot(touched)
    try:
        _draw_all(plans, bias == "zeros")
        for layer, value in gammas:
            _set_gamma(layer, value)
        # In forward order, a layer's input depends only on the layers
        # before it, which are final when it is reached: the stds this
        # pass records are those of the final model.
        if data is not None and method != "moments":
            try:
                _forward.run(
                    model,
                    data,
                    units,
                    lsuv=method == "lsuv",
                    tol=tol,
                    max_iter=max_iter,
                    zero_bias=bias == "zeros",
                )
            except Exception as e:
                if method != "lsuv":
                    raise
                raise _does_not_fit(model, e) from e
            if method == "lsuv":
                before = {id(u): u.drawn_std for u in units}
        solved = _moments_phase(model, plans, arrays, method)
        if solved and data is not None:
            _forward.run(model, data, units, lsuv=False, tol=tol, max_iter=max_iter)
    except BaseException:
        _forward.restore(snapshot)
        raise

    rows: list[LayerInit] = []
    for unit in plans:
        for p in unit:
            slot = p.slot
            u = unit_of.get(id(p))
            factor = u.factor if (u is not None and p.lsuv_target) else 1.0
            m = solved.get(id(slot.owner)) if solved else None
            if m is not None and p.lsuv_target:
                factor = m.factor
            written = _rebuilt(p, p.seed, factor)
            if slot.init_attr is not None:
                setattr(slot.holder, slot.init_attr, written)
            if bias == "zeros" and slot.bias is not None and slot.bias_attr:
                setattr(slot.holder, slot.bias_attr, keras.initializers.Zeros())
            mode, scale = _describe(written)
            rows.append(
                LayerInit(
                    layer=slot.owner.name,
                    layer_type=type(slot.owner).__name__,
                    weight=slot.weight,
                    shape=slot.shape,
                    fan_in=slot.fans.fan_in,
                    fan_out=slot.fans.fan_out,
                    activation=p.activation,
                    activation_source=p.source,
                    initializer=type(written).__name__,
                    config=written.get_config(),
                    scale=scale,
                    mode=mode,
                    weight_std=p.weight_std * factor,
                    std_before=before.get(id(u)) if u is not None else None,
                    std_after=u.std if u is not None else None,
                    lsuv_iterations=u.iterations
                    if (u is not None and method == "lsuv" and p.lsuv_target and u.std is not None)
                    else None,
                    lsuv_factor=factor
                    if (u is not None and method == "lsuv" and p.lsuv_target)
                    else None,
                    note=(m.note if m is not None and p.lsuv_target else "")
                    or (u.note if u is not None and p.lsuv_target else "")
                    or _note(p, method)
                    or (
                        "the model did not call this layer on the data"
                        if u is not None and u.std is None
                        else ""
                    ),
                    checked=slot.role not in _UNCHECKED,
                    guessed=p.guessed,
                    residual=p.residual,
                    target_std=p.target_std,
                    moments_factor=m.factor if (m is not None and p.lsuv_target) else None,
                    moments_std=m.std if (m is not None and p.lsuv_target) else None,
                )
            )
        owner = unit[0].slot.owner
        if isinstance(owner, keras.layers.MultiHeadAttention):
            # Its own initializer rebuilds the four projections (each adds its
            # axes): written unseeded, so that a rebuilt layer gets four
            # distinct projections.
            draw = unit[0].draw
            internals.set_attention_initializers(
                owner,
                kernel=type(draw).from_config(
                    {**draw.get_config(), "seed": None, "input_axes": None, "output_axes": None}
                ),
                bias=keras.initializers.Zeros() if bias == "zeros" else None,
            )
    return InitReport(
        method=method,
        layers=rows,
        skipped=skipped,
        seed=seed,
        measured=data is not None,
        residual=branches,
        not_stored=_not_stored(model, plans),
        stability=_moments.stability_of(rows),
    )


def _does_not_fit(model, e: Exception) -> ValueError:
    return ValueError(
        f"Argument `data` does not fit the model {model.name!r}: {type(e).__name__}: {e}"
    )


def _moments_phase(model, plans, data, method) -> dict:
    """`method="moments"`: solve each kernel's scale by moment propagation.

    Residual schemes compose through `targets` (id(layer) -> the std a
    branch's last kernel should give, 1 elsewhere) and through the weights
    themselves (a zeroed γ is read as it is): apply them to the drawn
    weights before this phase, and give the scaled kernels their target.
    """
    if method != "moments":
        return {}
    kernels = {id(unit[-1].slot.owner): [(p.slot, p.lsuv_target) for p in unit] for unit in plans}
    targets = {id(unit[-1].slot.owner): _moments_target(unit[-1]) for unit in plans}
    return _moments.solve(model, kernels, targets, data)


def _moments_target(plan: _Plan) -> float:
    """The pre-activation std the moments solve aims for at one kernel (1 by default)."""
    return float(getattr(plan, "target_std", 1.0))


def _note(p: _Plan, method: str) -> str:
    if p.slot.role == table.TIED:
        return (
            "tied: the table is also the output projection (logits = x @ tableT); its "
            "scale is the projection's, var 1/dim, so that the logits have std 1 (a "
            "lookup's N(0, 1) would give them std sqrt(dim)); the rows have std 1/sqrt(dim)"
        )
    if method != "lsuv" or p.lsuv_target:
        return ""
    if p.slot.role in (table.RNN_INPUT, table.RECURRENT):
        return "LSUV does not rescale recurrent layers (their outputs are bounded)"
    if p.slot.role == table.EMBEDDING:
        return (
            "LSUV does not rescale embeddings, and check() does not read them: a "
            "lookup has no input to normalize, and its rows are drawn at the std "
            "in this row's `weight_std`"
        )
    if p.residual:
        return "LSUV leaves a zeroed residual branch at zero"
    return ""
