"""MkDocs hook: render notebooks/*.ipynb, with their committed outputs, as pages.

Each notebook becomes `notebooks/<name>.md` in the site: markdown cells as
they are, code cells as Python blocks, printed output as text blocks and
plots as PNG files beside the page. The `.ipynb` itself is published too, so
a page can link to the file for download. Nothing is executed here: the test
suite runs the notebooks (tests/test_notebooks.py), and they are committed
with their outputs.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _fence(body: str, lang: str) -> str:
    # A fence longer than any run of backticks in the body cannot be closed early.
    ticks = "`" * max(3, max((len(r) for r in body.split("\n") if set(r) == {"`"}), default=0) + 1)
    return f"{ticks}{lang}\n{body.rstrip()}\n{ticks}\n"


def render(path: Path) -> tuple[str, dict[str, bytes]]:
    """Returns the page's markdown and its images (file name -> PNG bytes)."""
    book = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    images: dict[str, bytes] = {}
    for index, cell in enumerate(book["cells"]):
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            parts.append(source + "\n")
            if index == 0:  # the title and the opening prose
                parts.append(f"[Download the notebook]({path.name}){{: download }}\n")
            continue
        if cell["cell_type"] != "code":
            continue
        parts.append(_fence(source, "python"))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output["output_type"] == "stream":
                parts.append(_fence(_text(output["text"]), "text"))
            elif "image/png" in data:
                name = f"{path.stem}_{index}_{len(images)}.png"
                images[name] = base64.b64decode(_text(data["image/png"]))
                parts.append(f"![output of cell {index}]({name})\n")
            elif "text/plain" in data:
                parts.append(_fence(_text(data["text/plain"]), "text"))
            elif output["output_type"] == "error":
                parts.append(_fence("\n".join(output.get("traceback", [])), "text"))
    return "\n".join(parts), images


def on_files(files, config):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        page, images = render(path)
        files.append(File.generated(config, f"notebooks/{path.stem}.md", content=page))
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
        for name, png in images.items():
            files.append(File.generated(config, f"notebooks/{name}", content=png))
    return files
