"""Fan-in and fan-out of a kernel, from its shape and optional axes.

This is the one place that turns a shape into fans. It follows Keras's kernel
layout, where the last axis holds the outputs and the one before it the inputs:

- rank 0: `fan_in = fan_out = 1`;
- rank 1 `(n,)`: `fan_in = fan_out = n`;
- Dense `(in, out)`: `fan_in = in`, `fan_out = out`;
- ConvND `(*k, in, out)`: with the receptive field `∏k`,
  `fan_in = in·∏k`, `fan_out = out·∏k`.

With explicit `input_axes` and `output_axes` (what `EinsumDense` and
`MultiHeadAttention` pass), `fan_in` is the product of the dimensions on the
input axes and `fan_out` the product of those on the output axes, exactly as
Keras reads them. An axis may be on both lists (the spatial axes of a
convolution are: `(3, 3, 64, 128)` is `input_axes=[0, 1, 2]`,
`output_axes=[0, 1, 3]`), and an axis on neither counts for neither (the
channel axis of a depthwise kernel `(3, 3, 64, 1)`, whose fans are
`input_axes=[0, 1]`, `output_axes=[0, 1, 3]`).

Layer types whose kernel layout is not `(*k, in, out)` (transposed and
depthwise convolutions) need their fans from the layer, not the shape; see
`keras_weightinit.layer_fans`, which returns them as `Fans`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from keras_weightinit._validation import check_axes_pair, check_shape, normalize_axes


@dataclasses.dataclass(frozen=True)
class Fans:
    """The fans of one kernel, with the axes that give them.

    `fan_in` and `fan_out` are what the model-level initializer uses. They
    equal `compute_fans(shape, input_axes, output_axes)` except for the
    stacked gate kernels of recurrent layers, whose `fan_out` is one gate's
    (`units`), not the stack's, and grouped convolutions, whose `fan_out` is
    one group's.
    """

    fan_in: int
    fan_out: int
    input_axes: list[int]
    output_axes: list[int]


def compute_fans(
    shape: Sequence[int],
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Returns `(fan_in, fan_out)` for a kernel shape.

    Examples:

    >>> compute_fans((784, 256))
    (784, 256)
    >>> compute_fans((3, 3, 64, 128))  # Conv2D: 3*3*64, 3*3*128
    (576, 1152)
    >>> compute_fans((512, 8, 64), input_axes=[0], output_axes=[1, 2])
    (512, 512)
    >>> compute_fans((3, 3, 64, 1), input_axes=[0, 1], output_axes=[0, 1, 3])
    (9, 9)

    Args:
        shape: The kernel shape, a sequence of non-negative integers.
        input_axes: Optional axes that hold the inputs. Must be given together
            with `output_axes`.
        output_axes: Optional axes that hold the outputs.

    Returns:
        A tuple of Python ints `(fan_in, fan_out)`.
    """
    shape = check_shape(shape)
    input_axes, output_axes = check_axes_pair(input_axes, output_axes)
    rank = len(shape)
    if input_axes is not None:
        ins = normalize_axes(input_axes, rank, "input_axes")
        outs = normalize_axes(output_axes, rank, "output_axes")
        return math.prod(shape[i] for i in ins), math.prod(shape[i] for i in outs)
    if rank == 0:
        return 1, 1
    if rank == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field
