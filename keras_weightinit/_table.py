"""The one text-table formatter and the one number formatter.

Every table the package prints (`InitReport`, `Diagnosis`, the CLI's
comparisons) goes through `render`, which lays the cells out with `rich`
(the library Keras's own `model.summary()` uses) and returns plain text, so
that `str(report)` is the same in a terminal, a log file and a notebook.
Numbers go through `number`, so that one value reads the same everywhere.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

# Wide enough that rich never folds a cell: a report row is one line, and
# `rstrip` below removes the padding this width would otherwise leave.
_WIDTH = 10_000

# No frame; a rule of "-" under the header, one per column, so the text is
# plain ASCII in any log (rich's box lines: top, head, head rule, mid, row,
# foot rule, foot, bottom; four characters each).
_RULE = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def number(x: float | None, *, signed: bool = False) -> str:
    """`x` in four significant digits: fixed point in [1e-3, 1e4), else exponent.

    None is "-" (not measured); nan and inf are spelled out.
    """
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return ("+inf" if signed else "inf") if x > 0 else "-inf"
    sign = "+" if signed else ""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:{sign}.4g}"
    return f"{x:{sign}.3e}"


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[int] = (),
    title: str | None = None,
) -> str:
    """`rows` under `header` as plain text: a rule under the header, columns
    two spaces apart, the columns whose indices are in `right` right-aligned.
    """
    table = Table(
        box=_RULE,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style=None,
    )
    for i, name in enumerate(header):
        table.add_column(str(name), justify="right" if i in set(right) else "left", no_wrap=True)
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"A row has {len(row)} cells for {len(header)} columns. Received: row={row!r}"
            )
        table.add_row(*(str(c) for c in row))
    out = io.StringIO()
    # force_jupyter=False: in a notebook rich would otherwise display the
    # table itself and write nothing to `out` (str(report) would be empty).
    Console(
        file=out,
        width=_WIDTH,
        color_system=None,
        highlight=False,
        emoji=False,
        force_jupyter=False,
        force_terminal=False,
    ).print(table, markup=False)
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]
    # The title on a line of its own: rich would fold one wider than the table.
    return "\n".join(([title] if title else []) + lines)
