"""Griffe extension: show the docstrings' doctest examples as code blocks.

The package's docstrings write their examples as plain doctest lines
(`>>> ...`, `... ...` and the expected output, up to a blank line), which
`doctest` runs but Markdown would read as prose: brackets in an expected
output would even be taken for cross-references. This wraps each such block
in a `pycon` fence before the docstring is rendered. The docstrings
themselves are not changed.
"""

from __future__ import annotations

import griffe


def fence_doctests(text: str) -> str:
    out: list[str] = []
    block: list[str] = []
    indent = ""
    in_fence = False

    def flush() -> None:
        if block:
            out.append(f"{indent}```pycon")
            out.extend(block)
            out.append(f"{indent}```")
            block.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or stripped.startswith("```"):
            flush()
            out.append(line)
        elif stripped.startswith(">>>"):
            if not block:
                indent = line[: len(line) - len(line.lstrip())]
            block.append(line)
        elif block and stripped:
            block.append(line)  # a continuation or the expected output
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
