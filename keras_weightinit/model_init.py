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
- Normalization layers and PReLU own weights but no kernel: kept.
- Anything else that owns weights: left unchanged and listed in
  `report.skipped`, as are layers whose activation is not a Keras one.

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

from keras_weightinit import _forward
from keras_weightinit import _graph as graph
from keras_weightinit import _layer_table as table
from keras_weightinit._layer_table import Fans, layer_fans
from keras_weightinit._validation import check_bool, check_choice, check_positive_finite
from keras_weightinit.activations import resolve_activation
from keras_weightinit.factory import check_gain, for_activation
from keras_weightinit.initializers import SEED_LIMIT, VarianceScalingCustom
from keras_weightinit.report import NO_KERNEL, InitReport, LayerInit, SkippedLayer

__all__ = ["Fans", "initialize", "layer_fans"]

METHODS = ("auto", "analytic", "lsuv")
BIAS = ("zeros", "keep")


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
    if slot.role in (table.RNN_INPUT, table.EMBEDDING):
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


def _weight_std(init, shape) -> float:
    if isinstance(init, keras.initializers.Orthogonal):
        return init.gain / math.sqrt(max(math.prod(shape[:-1]), shape[-1]))
    return init.stddev(shape)


def _describe(init) -> tuple[str, float]:
    """(mode, scale) of an initializer for the report."""
    if isinstance(init, keras.initializers.Orthogonal):
        return "orthogonal", float(init.gain) ** 2
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
                if slot.role == table.LINEAR:
                    found = graph.Found(None, "linear", "none")
                elif slot.role in (table.RNN_INPUT, table.RECURRENT):
                    found = graph.Found(layer.activation, "", "own")
                else:
                    own = getattr(layer, "activation", None)
                    if own is not None and resolve_activation(own).name != "linear":
                        found = graph.Found(own, "", "own")
                    else:
                        found = graph.following_activation(layer, w)
                name = resolve_activation(found.activation).name
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
                    )
                )
        except ValueError as e:
            skipped.append(SkippedLayer(layer.name, kind, f"left unchanged: {e}"))
            continue
        last = unit[-1]
        last.lsuv_target = last.slot.role in (table.KERNEL, table.LINEAR)
        plans.append(unit)
    return plans, skipped


def _rebuilt(plan: _Plan, seed, factor: float):
    """The initializer to write: `plan.draw` with `seed`, LSUV factor folded in."""
    draw = plan.draw
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


def _zero_bias(slot: table.Slot) -> None:
    bias = slot.bias
    value = np.zeros(tuple(bias.shape), dtype=np.float64)
    cell = slot.holder
    if isinstance(cell, keras.layers.LSTMCell) and cell.unit_forget_bias and value.ndim == 1:
        value[cell.units : 2 * cell.units] = 1.0  # Keras's forget-gate bias
    bias.assign(keras.ops.cast(value, bias.dtype))


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
) -> InitReport:
    """Re-initializes every kernel of a built model; returns a report.

    Analytic (`data=None`): each kernel gets
    `for_activation(<activation after it>, distribution, gain=gain)` with the
    fans of its layer type, so its variance is `scale / fan` with the right
    fan (see the module docstring for each layer type).

    LSUV (`data` given, Mishkin & Matas 2016): after the analytic draw,
    layers are visited in forward order on the batch, and each kernel is
    divided by the std of its layer's output before the activation until
    `|var - 1| <= tol` (at most `max_iter` steps). The factor is folded into
    the `scale` written into the layer's initializer.

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
            `"analytic"` (measure only, if `data` is given) or `"lsuv"`.
        distribution: `"normal"` (untruncated) or `"uniform"`.
        seed: None or an int; see the module docstring.
        gain: Passed to `for_activation`: None (the table),
            `"second_moment"`, `"fixed_point"` or a number.
        bias: `"zeros"` or `"keep"`.
        orthogonal: Draw orthogonal matrices (Saxe et al., 2014; LSUV's own
            starting point) with the variance the analytic rule gives.
        tol: LSUV's tolerance on the output variance, in (0, 1).
        max_iter: LSUV's cap on rescaling steps per layer.

    Returns:
        An `InitReport`.

    Raises:
        TypeError: if `model` is not a Keras model, or a bad argument type.
        ValueError: if the model is not built, an argument is invalid, or
            `data` is too small, holds NaN/inf, or does not fit the model.

    Reference:
        - Mishkin & Matas, 2016, "All you need is a good init".
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
    plans, skipped = _plan(model, distribution, gain, seed, orthogonal)

    units: list[_forward.Unit] = []
    unit_of: dict[int, _forward.Unit] = {}
    if data is not None:
        data = _forward.prepare_data(model, data)
        for unit in plans:
            owner = unit[-1].slot.owner
            target = unit[-1].slot.variable if unit[-1].lsuv_target else None
            u = _forward.Unit(owner, target)
            units.append(u)
            unit_of[id(unit[-1])] = u
        try:
            _forward.run(model, data, units, lsuv=False, tol=tol, max_iter=max_iter)
        except Exception as e:
            raise ValueError(
                f"Argument `data` does not fit the model {model.name!r}: {type(e).__name__}: {e}"
            ) from e
    before = {id(u): u.std for u in units}

    touched = _variables_touched(plans)
    snapshot = [(v, keras.ops.convert_to_numpy(v.value).copy()) for v in touched]
    try:
        for unit in plans:
            for p in unit:
                var = p.slot.variable
                var.assign(keras.ops.cast(p.draw(p.slot.shape, dtype=var.dtype), var.dtype))
                if bias == "zeros" and p.slot.bias is not None:
                    _zero_bias(p.slot)
        if data is not None:
            # In forward order, a layer's input depends only on the layers
            # before it, which are final when it is reached: the stds this
            # pass records are those of the final model.
            _forward.run(model, data, units, lsuv=method == "lsuv", tol=tol, max_iter=max_iter)
    except BaseException:
        for v, value in snapshot:
            v.assign(value)
        raise

    rows: list[LayerInit] = []
    for unit in plans:
        for p in unit:
            slot = p.slot
            u = unit_of.get(id(p))
            factor = u.factor if (u is not None and p.lsuv_target) else 1.0
            written = _rebuilt(p, p.seed, factor)
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
                    note=(u.note if u is not None and p.lsuv_target else "")
                    or _note(p, method)
                    or (
                        "the model did not call this layer on the data"
                        if u is not None and u.std is None
                        else ""
                    ),
                    checked=slot.role not in (table.RNN_INPUT, table.RECURRENT),
                )
            )
        owner = unit[0].slot.owner
        if isinstance(owner, keras.layers.MultiHeadAttention):
            # Its own initializer rebuilds the four projections (each adds its
            # axes): written unseeded, so that a rebuilt layer gets four
            # distinct projections.
            draw = unit[0].draw
            owner._kernel_initializer = type(draw).from_config(
                {**draw.get_config(), "seed": None, "input_axes": None, "output_axes": None}
            )
            if bias == "zeros":
                owner._bias_initializer = keras.initializers.Zeros()
    return InitReport(
        method=method, layers=rows, skipped=skipped, seed=seed, measured=data is not None
    )


def _note(p: _Plan, method: str) -> str:
    if method != "lsuv" or p.lsuv_target:
        return ""
    if p.slot.role in (table.RNN_INPUT, table.RECURRENT):
        return "LSUV does not rescale recurrent layers (their outputs are bounded)"
    if p.slot.role == table.EMBEDDING:
        return "LSUV does not rescale embeddings (a lookup has no input to normalize)"
    return ""
