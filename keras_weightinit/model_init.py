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
import itertools
import math
import numbers
import random as python_random
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_weightinit import _draw, _forward, _moments, _residual
from keras_weightinit import _graph as graph
from keras_weightinit import _keras_internals as internals
from keras_weightinit import _kinds as table
from keras_weightinit._kinds import layer_fans  # re-exported (as is `Fans`): older imports
from keras_weightinit._validation import (
    check_bool,
    check_choice,
    check_keras_model,
    check_positive_finite,
)
from keras_weightinit.activations import resolve_activation
from keras_weightinit.factory import check_gain, for_activation
from keras_weightinit.fans import Fans, compute_fans
from keras_weightinit.initializers import SEED_LIMIT, derive_seed
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
class KernelPlan:
    """How one kernel is drawn, written back and reported.

    The plan is made before any weight changes; the residual handling then
    edits it (a zeroed or scaled branch end), and the write-back records the
    initializer it wrote.
    """

    slot: table.Slot
    activation: str  # the canonical name of the activation after the kernel
    source: str  # where it was found (`LayerInit.activation_source`)
    initializer: Any  # the initializer that draws the values (always int-seeded)
    seed: int | None  # the seed written into the layer's initializer
    weight_std: float
    mode: str
    scale: float
    lsuv_target: bool = False  # rescaled by LSUV or the moments (a layer's last kernel)
    stream: int = 0  # the seed the values are drawn with
    guessed: bool = False
    residual: str = ""  # what the residual handling did to this kernel, and why
    target_std: float = 1.0  # the output std LSUV aims at
    written: Any = None  # the initializer written into the layer


@dataclasses.dataclass
class LayerPlan:
    """The kernels of one layer, in the layer table's order, and what was measured.

    The last kernel carries the layer's output: its probe measures that
    output on the data, and LSUV and the moments rescale it.
    """

    layer: Any
    kernels: list[KernelPlan]
    probe: _forward.Probe | None = None  # with data: measures the layer's output
    std_before: float | None = None  # the output std `LayerInit.std_before` reports
    moments: _moments.Solved | None = None  # `method="moments"`: what the solve did

    @property
    def last(self) -> KernelPlan:
        return self.kernels[-1]


@dataclasses.dataclass(frozen=True)
class _Options:
    """The arguments of `initialize`, validated."""

    method: str  # "analytic", "lsuv" or "moments" ("auto" resolved)
    distribution: str
    seed: int | None
    gain: Any
    bias: str
    orthogonal: bool
    tol: float
    max_iter: int
    residual: str


@dataclasses.dataclass
class _Batch:
    """The data, prepared once: NumPy arrays (for the moments) and backend tensors."""

    arrays: Any
    tensors: Any
    fitted: bool = False  # whether a pass has run it through the model


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
    _check_model(model)
    opts = _check_args(
        method, distribution, bias, tol, max_iter, seed, data, gain, orthogonal, residual
    )
    plans, skipped = _plan(model, opts)
    branches, gammas = _residual_plan(model, plans, opts.residual)
    batch = _measure_before(model, plans, data, opts)
    _draw_and_rescale(model, plans, gammas, batch, opts)
    _write_back(plans, opts.bias)
    return _report(model, plans, skipped, branches, batch is not None, opts)


# -- validate ------------------------------------------------------------------


def _check_model(model) -> None:
    check_keras_model(model)
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


def _check_args(
    method, distribution, bias, tol, max_iter, seed, data, gain, orthogonal, residual
) -> _Options:
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
    check_choice(residual, "residual", RESIDUAL)
    return _Options(
        method, distribution, seed, gain, bias, orthogonal, tol, int(max_iter), residual
    )


# -- plan ----------------------------------------------------------------------


def _plan(model, opts: _Options) -> tuple[list[LayerPlan], list[SkippedLayer]]:
    """Every kernel's initializer, decided before any weight changes."""
    w = graph.walk(model)
    seeds = _kernel_seeds(opts.seed)
    plans: list[LayerPlan] = []
    skipped: list[SkippedLayer] = []
    for layer in w.layers:
        planned = _plan_layer(layer, w, opts, seeds)
        if isinstance(planned, LayerPlan):
            plans.append(planned)
        elif planned is not None:
            skipped.append(planned)
    return plans, skipped


def _kernel_seeds(seed: int | None) -> Iterator[int]:
    """The seed of each kernel in turn, from the base seed and the kernel's position.

    Unseeded, the base comes from Python's `random` (taken now, before any
    other draw), so that `keras.utils.set_random_seed` makes the run
    reproducible.
    """
    base = python_random.randint(1, 2**62) if seed is None else int(seed) & (2**64 - 1)
    return (derive_seed(base, (index,), 31) for index in itertools.count())


def _plan_layer(layer, w, opts: _Options, seeds: Iterator[int]) -> LayerPlan | SkippedLayer | None:
    """One layer's plan, or the row that says why it is kept (None: nothing to say)."""
    kind = type(layer).__name__
    if not graph.is_leaf(layer):
        # A container walked into: its sublayers have their own rows.
        names = ", ".join(v.name for v in table.own_variables(layer))
        return SkippedLayer(
            layer.name,
            kind,
            f"its sublayers are initialized (their rows above); its own weights ({names}) are kept",
            container=True,
        )
    try:
        slots = table.kernel_slots(layer)
    except table.NotUnderstood as e:
        return SkippedLayer(layer.name, kind, str(e))
    if not slots:
        return SkippedLayer(layer.name, kind, NO_KERNEL) if table.own_variables(layer) else None
    try:
        # The seeds count every kernel planned so far, those of a layer
        # then left unchanged included.
        kernels = [_plan_kernel(slot, w, opts, seeds) for slot in slots]
    except ValueError as e:
        return SkippedLayer(layer.name, kind, f"left unchanged: {e}")
    last = kernels[-1]
    last.lsuv_target = last.slot.role in (table.KERNEL, table.LINEAR)
    return LayerPlan(layer, kernels)


def _plan_kernel(slot: table.Slot, w, opts: _Options, seeds: Iterator[int]) -> KernelPlan:
    found = graph.activation_of(slot, w)
    name = _activation_name(found.activation, opts.gain)
    kwargs = {"distribution": opts.distribution}
    if opts.gain is not None:
        kwargs["gain"] = opts.gain
    base = for_activation(found.activation, **kwargs)
    stream = next(seeds)
    initializer = _make_initializer(base, slot, stream, opts.orthogonal)
    mode, scale = _describe(initializer)
    return KernelPlan(
        slot=slot,
        activation=name,
        source=found.source,
        initializer=initializer,
        seed=None if opts.seed is None else stream,
        weight_std=_weight_std(initializer, slot.shape),
        mode=mode,
        scale=scale,
        stream=stream,
        guessed=found.source.startswith("order"),
    )


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


def _make_initializer(base, slot: table.Slot, seed: int, orthogonal: bool):
    """The initializer for one kernel: `base` with the slot's axes and `seed`."""
    fans = slot.fans
    if slot.role == table.RECURRENT:
        return keras.initializers.Orthogonal(gain=1.0, seed=seed)
    placed = {"seed": seed, "input_axes": fans.input_axes, "output_axes": fans.output_axes}
    if slot.role in (table.RNN_INPUT, table.EMBEDDING, table.TIED):
        # `mode` is named, so even a fan_in preset becomes the general class.
        init = base.replace(mode="fan_in", **placed)
    else:
        init = _fold_fans(base.replace(**placed), slot)
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


def _orthogonal_gain(draw_std: float, shape: tuple[int, ...]) -> float:
    # Keras's Orthogonal flattens the kernel to (prod(shape[:-1]), shape[-1]);
    # an orthogonal matrix of that shape has entries of variance
    # 1 / max(rows, cols), so this gain gives them `draw_std`.
    rows, cols = math.prod(shape[:-1]), shape[-1]
    return draw_std * math.sqrt(max(rows, cols))


def _fold_fans(init, slot: table.Slot):
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
    return init.replace(scale=init.scale * ratio)


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


# -- residual branches ---------------------------------------------------------


def _residual_plan(model, plans: list[LayerPlan], mode: str):
    """Zeroes or scales the end of every residual branch; the report's rows.

    Returns the `ResidualBranch` rows and the `(layer, value)` of every
    normalization whose `gamma` is set to `value`. Kernels are changed in
    their plans, so that they are drawn (and written) with the change.
    """
    if mode == "none":
        return [], []
    branches = _residual.find(model)
    by_key = {(id(k.slot.owner), k.slot.weight): k for plan in plans for k in plan.kernels}
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
            action, why = _gamma_action(b, value, bound)
        elif b.kind == _residual.KERNEL:
            kernel = by_key.get((id(b.layer), b.weight))
            action, why = _end_kernel(kernel, b, mode, factor, bound)
        rows.append(_branch_row(b, action, why))
    return rows, gammas


def _gamma_action(b: _residual.Branch, value: float, bound: str) -> tuple[str, str]:
    """What setting a branch's last gamma to `value` does, and why."""
    if value == 0.0:
        return "zeroed", f"{b.reason}: the block starts as its shortcut (Goyal et al. 2017)"
    return f"set to {value:.4g}", f"{b.reason}; {bound}"


def _end_kernel(kernel: KernelPlan | None, b, mode: str, factor: float, bound: str):
    """Zeroes or scales the plan of a branch's last kernel; (action, why)."""
    if kernel is None:
        return "kept", f"{b.reason}; its kernel is not initialized (see the layers left unchanged)"
    if mode == "zero":
        kernel.initializer = keras.initializers.Zeros()
        kernel.lsuv_target = False
        action, why = "zeroed", f"{b.reason}: the block starts as its shortcut (Fixup)"
    else:
        kernel.initializer = _rebuilt(kernel, kernel.stream, factor)
        kernel.target_std = factor
        action, why = f"scaled by {factor:.4g}", f"{b.reason}; std times {bound}"
    kernel.weight_std = _weight_std(kernel.initializer, kernel.slot.shape)
    kernel.mode, kernel.scale = _describe(kernel.initializer)
    kernel.residual = f"{action} ({b.site})"
    return action, why


def _branch_row(b, action: str, why: str) -> ResidualBranch:
    layer = b.layer
    return ResidualBranch(
        site=b.site,
        layer="-" if layer is None else layer.name,
        layer_type="-" if layer is None else type(layer).__name__,
        weight=b.weight,
        action=action,
        reason=why,
    )


# -- measure, draw, rescale ----------------------------------------------------


def _measure_before(model, plans: list[LayerPlan], data, opts: _Options) -> _Batch | None:
    """Prepares the data and gives every layer a probe; measures "before".

    A bad batch raises here, before any weight is touched. LSUV measures
    "before" in its own pass (the std with the analytic draw it starts
    from); the other methods measure it here, with the weights the model had.
    """
    if data is None:
        return None
    arrays = _forward.prepare_data(model, data)
    for plan in plans:
        last = plan.last
        target = last.slot.variable if last.lsuv_target else None
        plan.probe = _forward.Probe(plan.layer, target, target_std=last.target_std)
    batch = _Batch(arrays, _forward.as_backend(arrays))
    if opts.method != "lsuv":
        _run(model, plans, batch, opts, lsuv=False)
        for plan in plans:
            plan.std_before = plan.probe.std
    return batch


def _draw_and_rescale(model, plans, gammas, batch: _Batch | None, opts: _Options) -> None:
    """Draws every kernel and rescales it; any failure restores every weight."""
    touched = _variables_touched(plans) + [layer.gamma for layer, _ in gammas]
    snapshot = _forward.snapshot(touched)
    try:
        _draw_all(plans, opts.bias == "zeros")
        for layer, value in gammas:
            _set_gamma(layer, value)
        _rescale(model, plans, batch, opts)
    except BaseException:
        _forward.restore(snapshot)
        raise


def _draw_all(plans: list[LayerPlan], zero_bias: bool) -> None:
    """Draws every kernel (and zeroes the biases) with the values each initializer's call gives.

    The draws an initializer can describe ahead (`request`) are made in one
    go (`_draw.assign`: one compiled call on TensorFlow); the others
    (orthogonal, a `SeedGenerator` seed) by calling it.
    """
    draws, values = [], []
    for plan in plans:
        for kernel in plan.kernels:
            slot, var = kernel.slot, kernel.slot.variable
            request = getattr(kernel.initializer, "request", None)
            r = request(slot.shape, var.dtype) if request is not None else None
            if r is None:
                drawn = kernel.initializer(slot.shape, dtype=var.dtype)
                var.assign(keras.ops.cast(drawn, var.dtype))
            else:
                draws.append((var, r))
            if zero_bias and slot.bias is not None:
                values.append((slot.bias, _zero_bias(slot)))
    _draw.assign(draws, values)


def _zero_bias(slot: table.Slot) -> np.ndarray:
    """The bias `bias="zeros"` writes: zeros, but Keras's forget-gate ones in an LSTM."""
    value = np.zeros(tuple(slot.bias.shape), dtype=np.float64)
    cell = slot.holder
    if isinstance(cell, keras.layers.LSTMCell) and cell.unit_forget_bias and value.ndim == 1:
        value[cell.units : 2 * cell.units] = 1.0
    return value


def _set_gamma(layer, value: float) -> None:
    gamma = layer.gamma
    gamma.assign(keras.ops.cast(np.full(tuple(gamma.shape), value), gamma.dtype))
    if value == 0.0:
        layer.gamma_initializer = keras.initializers.Zeros()
    else:
        layer.gamma_initializer = keras.initializers.Constant(value)


def _variables_touched(plans: list[LayerPlan]) -> list:
    out, seen = [], set()
    for plan in plans:
        for kernel in plan.kernels:
            for v in (kernel.slot.variable, kernel.slot.bias):
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
    return out


def _rescale(model, plans: list[LayerPlan], batch: _Batch | None, opts: _Options) -> None:
    """LSUV or the moments solve, and the "after" stds on the data."""
    if batch is not None and opts.method != "moments":
        # In forward order, a layer's input depends only on the layers
        # before it, which are final when it is reached: the stds this
        # pass records are those of the final model.
        _run(model, plans, batch, opts, lsuv=opts.method == "lsuv")
        if opts.method == "lsuv":
            for plan in plans:
                plan.std_before = plan.probe.drawn_std
    if opts.method == "moments" and _solve_moments(model, plans, batch) and batch is not None:
        _run(model, plans, batch, opts, lsuv=False)


def _run(model, plans: list[LayerPlan], batch: _Batch, opts: _Options, lsuv: bool) -> None:
    """One forward pass over every probe (with `lsuv`, rescaling on the way).

    The first pass over the data tells a batch that does not fit the model
    by naming the data; a later pass runs a batch known to fit, so its
    errors are raised as they are.
    """
    probes = [plan.probe for plan in plans]
    try:
        _forward.run(
            model,
            batch.tensors,
            probes,
            lsuv=lsuv,
            tol=opts.tol,
            max_iter=opts.max_iter,
            zero_bias=opts.bias == "zeros",
        )
    except Exception as e:
        if batch.fitted:
            raise
        raise _does_not_fit(model, e) from e
    batch.fitted = True


def _does_not_fit(model, e: Exception) -> ValueError:
    return ValueError(
        f"Argument `data` does not fit the model {model.name!r}: {type(e).__name__}: {e}"
    )


def _solve_moments(model, plans: list[LayerPlan], batch: _Batch | None) -> dict:
    """`method="moments"`: solve each kernel's scale by moment propagation.

    Residual schemes compose through `targets` (id(layer) -> the std a
    branch's last kernel should give, 1 elsewhere) and through the weights
    themselves (a zeroed γ is read as it is): they are applied to the drawn
    weights before this phase, and the scaled kernels have their target.
    """
    kernels = {id(p.layer): [(k.slot, k.lsuv_target) for k in p.kernels] for p in plans}
    targets = {id(p.layer): float(p.last.target_std) for p in plans}
    solved = _moments.solve(model, kernels, targets, None if batch is None else batch.arrays)
    for plan in plans:
        plan.moments = solved.get(id(plan.layer))
    return solved


# -- write back ----------------------------------------------------------------


def _write_back(plans: list[LayerPlan], bias: str) -> None:
    """Writes each kernel's initializer, rescaling folded in, into its layer."""
    for plan in plans:
        for kernel in plan.kernels:
            slot = kernel.slot
            kernel.written = _rebuilt(kernel, kernel.seed, _factor(kernel, plan))
            if slot.init_attr is not None:
                setattr(slot.holder, slot.init_attr, kernel.written)
            if bias == "zeros" and slot.bias is not None and slot.bias_attr:
                setattr(slot.holder, slot.bias_attr, keras.initializers.Zeros())
        if isinstance(plan.layer, keras.layers.MultiHeadAttention):
            _write_attention_initializers(plan, bias)


def _write_attention_initializers(plan: LayerPlan, bias: str) -> None:
    """A MultiHeadAttention's own initializers, which rebuild its projections.

    One `kernel_initializer` serves the four projections (each adds its
    axes): it is written unseeded, so that a rebuilt layer gets four
    distinct projections.
    """
    first = plan.kernels[0].initializer
    internals.set_attention_initializers(
        plan.layer,
        kernel=first.replace(seed=None, input_axes=None, output_axes=None),
        bias=keras.initializers.Zeros() if bias == "zeros" else None,
    )


def _rebuilt(kernel: KernelPlan, seed, factor: float):
    """The initializer to write: the kernel's with `seed`, the rescaling factor folded in."""
    init = kernel.initializer
    if isinstance(init, keras.initializers.Zeros):
        return init
    if isinstance(init, keras.initializers.Orthogonal):
        return keras.initializers.Orthogonal(gain=init.gain * factor, seed=seed)
    if factor != 1.0:
        return init.replace(scale=init.scale * factor**2, seed=seed)
    return init.replace(seed=seed)


# -- report --------------------------------------------------------------------


def _report(model, plans, skipped, branches, measured: bool, opts: _Options) -> InitReport:
    rows = [_row(kernel, plan, opts.method) for plan in plans for kernel in plan.kernels]
    return InitReport(
        method=opts.method,
        layers=rows,
        skipped=skipped,
        seed=opts.seed,
        measured=measured,
        residual=branches,
        not_stored=_not_stored(model, plans),
        stability=_moments.stability_of(rows),
    )


def _rescaled_by(kernel: KernelPlan, plan: LayerPlan):
    """(the LSUV probe, the moments solution) that rescaled a kernel; None where none did."""
    if not kernel.lsuv_target:
        return None, None
    return plan.probe, plan.moments


def _factor(kernel: KernelPlan, plan: LayerPlan) -> float:
    """The factor LSUV or the moments applied to the drawn kernel (1: none)."""
    probe, solved = _rescaled_by(kernel, plan)
    if solved is not None:
        return solved.factor
    return 1.0 if probe is None else probe.factor


def _row(kernel: KernelPlan, plan: LayerPlan, method: str) -> LayerInit:
    """The report's row for one kernel, as it was drawn, rescaled and written."""
    slot, written = kernel.slot, kernel.written
    mode, scale = _describe(written)
    _, solved = _rescaled_by(kernel, plan)
    return LayerInit(
        layer=slot.owner.name,
        layer_type=type(slot.owner).__name__,
        weight=slot.weight,
        shape=slot.shape,
        fan_in=slot.fans.fan_in,
        fan_out=slot.fans.fan_out,
        activation=kernel.activation,
        activation_source=kernel.source,
        initializer=type(written).__name__,
        config=written.get_config(),
        scale=scale,
        mode=mode,
        weight_std=kernel.weight_std * _factor(kernel, plan),
        **_measured(kernel, plan, method),
        note=_row_note(kernel, plan, method),
        checked=slot.role not in _UNCHECKED,
        guessed=kernel.guessed,
        residual=kernel.residual,
        target_std=kernel.target_std,
        moments_factor=None if solved is None else solved.factor,
        moments_std=None if solved is None else solved.std,
    )


def _measured(kernel: KernelPlan, plan: LayerPlan, method: str) -> dict[str, Any]:
    """A row's fields read from the data: the stds, LSUV's steps and factor."""
    probe = plan.probe if kernel is plan.last else None  # only the last carries the output
    if probe is None:
        return {"std_before": None, "std_after": None, "lsuv_iterations": None, "lsuv_factor": None}
    lsuv = method == "lsuv" and kernel.lsuv_target
    return {
        "std_before": plan.std_before,
        "std_after": probe.std,
        "lsuv_iterations": probe.iterations if lsuv and probe.std is not None else None,
        "lsuv_factor": probe.factor if lsuv else None,
    }


def _row_note(kernel: KernelPlan, plan: LayerPlan, method: str) -> str:
    """The first thing worth knowing about a kernel: a rescaling's note, or why it was not."""
    probe, solved = _rescaled_by(kernel, plan)
    carrier = plan.probe if kernel is plan.last else None
    notes = (
        "" if solved is None else solved.note,
        "" if probe is None else probe.note,
        _note(kernel, method),
        "the model did not call this layer on the data"
        if carrier is not None and carrier.std is None
        else "",
    )
    return next((n for n in notes if n), "")


def _note(kernel: KernelPlan, method: str) -> str:
    if kernel.slot.role == table.TIED:
        return (
            "tied: the table is also the output projection (logits = x @ tableT); its "
            "scale is the projection's, var 1/dim, so that the logits have std 1 (a "
            "lookup's N(0, 1) would give them std sqrt(dim)); the rows have std 1/sqrt(dim)"
        )
    if method != "lsuv" or kernel.lsuv_target:
        return ""
    if kernel.slot.role in (table.RNN_INPUT, table.RECURRENT):
        return "LSUV does not rescale recurrent layers (their outputs are bounded)"
    if kernel.slot.role == table.EMBEDDING:
        return (
            "LSUV does not rescale embeddings, and check() does not read them: a "
            "lookup has no input to normalize, and its rows are drawn at the std "
            "in this row's `weight_std`"
        )
    if kernel.residual:
        return "LSUV leaves a zeroed residual branch at zero"
    return ""


def _not_stored(model, plans: list[LayerPlan]) -> list[NotStored]:
    """Layers whose scheme their saved config cannot hold, and why."""
    out: list[NotStored] = []
    for plan in plans:
        owner = plan.layer
        for kernel in plan.kernels:
            if kernel.slot.init_attr is None:
                out.append(
                    NotStored(
                        owner.name,
                        type(owner).__name__,
                        f"`{kernel.slot.weight}` has no initializer of its own (one serves "
                        "both tables): a layer rebuilt from its config draws it with "
                        "`embeddings_initializer`",
                    )
                )
        if isinstance(owner, keras.layers.MultiHeadAttention) and plan.last.residual:
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
            and not graph.is_leaf(layer)
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
