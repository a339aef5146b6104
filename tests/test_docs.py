"""The documentation holds: README's promises, the docs site, its tables, the examples.

Tables in the docs that restate the code (the activation table, the module
floors) are read here and checked against the code, so that neither can
change without the other.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import keras_weightinit
from keras_weightinit import activations as A
from tests.helpers import run_python
from tests.test_activations import EXPECTED_FAMILY, keras_activation_names

# Reads files and the package's names, and builds the site: the same on every
# backend, so run_all_backends runs it on the first one only.
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _section(text: str, heading: str) -> str:
    """The body of the markdown section `heading` (up to the next heading of its level)."""
    level = heading.split(" ", 1)[0]
    body = text.split(heading + "\n", 1)[1]
    return re.split(rf"\n{level} ", body, maxsplit=1)[0]


def _table_rows(section: str) -> list[list[str]]:
    """The cells of each body row of the first markdown table in `section`."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _fenced_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _relative_links(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


# -- README ----------------------------------------------------------------------------


def test_readme_fits_one_screen_of_essentials():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 10 * 1024, "README.md must stay under 10 KB"
    first_screen = "\n".join(text.splitlines()[:55])
    for must in (
        "pip install keras-weightinit",
        "keras-weightinit[tensorflow]",
        '"he_normal_custom"',
        "kwi.for_activation(",
        "kwi.initialize(",
        "kwi.diagnose(",
        "before loading",
        "docs/",
        "notebooks/",
        "keras-weightinit --out demo_output",
    ):
        assert must in first_screen, f"README's first 55 lines lack {must!r}"


def test_readme_links_point_at_files_of_the_repository():
    text = README.read_text(encoding="utf-8")
    links = _relative_links(text)
    assert len(links) >= 10, links
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing


def test_quick_start_holds_the_two_commands_ci_runs():
    # The same extraction as .ci/run: the non-empty lines of the fenced
    # blocks of the "## Quick start" section.
    section = _section(README.read_text(encoding="utf-8"), "## Quick start")
    commands = [
        line
        for block in re.findall(r"^```\w*\n(.*?)^```", section, flags=re.S | re.M)
        for line in block.splitlines()
        if line.strip()
    ]
    assert len(commands) == 2, commands
    install, tests = commands
    assert install.startswith("python3 -m venv .venv && ")
    assert '".[tensorflow-cpu,jax,test,docs]"' in install
    assert '--no-deps "keras-hub==' in install
    assert install.endswith(".venv/bin/keras-weightinit --out demo_output")
    assert tests == ".venv/bin/python tests/run_all_backends.py"
    assert "tensorflow-text" in section, "say why keras-hub is installed with --no-deps"


@pytest.mark.parametrize("page", [README, DOCS / "index.md"], ids=lambda p: p.name)
def test_first_example_runs(page):
    (example,) = _fenced_blocks(page.read_text(encoding="utf-8"), "python")[:1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(page), "exec"), {"__name__": "__example__"})
    printed = out.getvalue()
    # The example prints the diagnosis of a 15-kernel model: its table ends
    # with the summary line of diagnose's report.
    assert "input std" in printed and "dense" in printed, printed


# -- the activation table ---------------------------------------------------------------

ACTIVATION_TABLE = "## The default: every Keras activation, mapped"


def _activation_table() -> dict[str, str]:
    """Plain activation names in docs/activations.md's table -> the family given."""
    text = (DOCS / "activations.md").read_text(encoding="utf-8")
    table = {}
    for cells in _table_rows(_section(text, ACTIVATION_TABLE)):
        family = cells[1].split(",")[0].strip().lower()
        for name in re.findall(r"`([^`]+)`", cells[0]):
            for spelling in name.split("/"):  # `silu`/`swish` is written as one cell
                if re.fullmatch(r"[a-z_0-9]+|None", spelling):
                    table[spelling] = family
    return table


def test_activation_table_lists_every_keras_activation():
    table = _activation_table()
    missing = sorted((keras_activation_names() | set(EXPECTED_FAMILY)) - set(table))
    assert not missing, f"docs/activations.md's table lacks {missing}"


def test_activation_table_gives_the_family_the_code_chooses():
    table = _activation_table()
    assert table["None"] == "glorot" and table["selu"] == "lecun"
    checked = 0
    for name, family in table.items():
        if name in A.REFUSED:  # `threshold` needs its arguments: the row says so
            continue
        activation = None if name == "None" else name
        assert keras_weightinit.resolve_activation(activation).family == family, name
        assert EXPECTED_FAMILY.get(name, family) == family, name
        checked += 1
    assert checked >= 30, checked


def _activation_table_generator():
    """docs/hooks/activation_table.py, which writes the table from the code."""
    path = DOCS / "hooks" / "activation_table.py"
    spec = importlib.util.spec_from_file_location("activation_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_activation_table_is_generated_from_the_code():
    generator = _activation_table_generator()
    page = (DOCS / "activations.md").read_text(encoding="utf-8")
    assert generator.written(page) == generator.render(), (
        "docs/activations.md's activation table differs from keras_weightinit.activations: "
        "run `python docs/hooks/activation_table.py`"
    )
    # Every reason of the code, and every name, is on the page.
    table = _section(page, ACTIVATION_TABLE)
    for name, why in A.NOTES.items():
        assert f"`{name}`" in table and why in table, name


# -- the API reference and the architecture page ----------------------------------------


def test_api_reference_documents_every_public_name():
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: keras_weightinit\.(\w+)$", text, flags=re.M))
    missing = sorted(set(keras_weightinit.__all__) - documented)
    assert not missing, f"add '::: keras_weightinit.NAME' to docs/api.md for {missing}"
    # A public module (such as `demo`) may have a section of its own.
    modules = {p.stem for p in (ROOT / "keras_weightinit").glob("[!_]*.py")}
    unknown = sorted(documented - set(keras_weightinit.__all__) - modules)
    assert not unknown, unknown


def _package_imports(path: Path) -> set[str]:
    """The modules of the package that `path` imports, anywhere in it."""
    package = ROOT / "keras_weightinit"
    modules = {p.stem for p in package.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "keras_weightinit":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # `from keras_weightinit import x`: a module, or a name of __init__
                found |= {a.name if a.name in modules else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "keras_weightinit":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(path.stem)
    return found


def test_architecture_floors_match_the_imports():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    rows = _table_rows(_section(text, "## The modules, floor by floor"))
    floors, listed = {}, {}
    for floor, module, _purpose, imports in rows:
        name = module.strip("`").removesuffix(".py")
        floors[name] = int(floor)
        listed[name] = set(re.findall(r"`(\w+)`", imports))
    files = {p.stem: p for p in (ROOT / "keras_weightinit").glob("*.py")}
    files["keras_weightinit_cli"] = ROOT / "keras_weightinit_cli.py"
    unlisted = sorted(set(files) - set(floors))
    assert not unlisted, f"add {unlisted} to the floors table of docs/architecture.md"
    assert not set(floors) - set(files), sorted(set(floors) - set(files))
    for name, path in files.items():
        actual = _package_imports(path)
        assert actual == listed[name], (
            f"docs/architecture.md says {name} imports {sorted(listed[name])}; "
            f"the code imports {sorted(actual)}"
        )
        above = [m for m in actual if floors[m] >= floors[name]]
        assert not above, f"{name} (floor {floors[name]}) imports {above} from its floor or above"


# -- the site builds, and a broken one does not ----------------------------------------


def _mkdocs(root: Path, site: Path) -> subprocess.CompletedProcess:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed (pip install '.[docs]')")
    return run_python(
        args=["-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    result = _mkdocs(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    for page in ("api", "architecture", "benchmarks", "notebooks/03_model_init_and_lsuv"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="keras_weightinit.initialize"' in api  # rendered from the docstring
    notebook = tmp_path / "site" / "notebooks" / "01_why_initialization_matters" / "index.html"
    assert "<img" in notebook.read_text(encoding="utf-8"), "the plots are rendered"


BROKEN = {
    "link": ("[a page that is not there](no-such-page.md)", "no-such-page.md"),
    "anchor": ("[a section that is not there](initializers.md#no-such-section)", "no-such-section"),
    "reference": ("::: keras_weightinit.no_such_name", "keras_weightinit.no_such_name"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_docs_build_fails_on_a_broken_link_or_reference(kind, tmp_path):
    # A copy of what the build reads, with one broken line added to a page.
    for part in ("docs", "notebooks", "keras_weightinit"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    line, message = BROKEN[kind]
    api = tmp_path / "docs" / "api.md"
    api.write_text(api.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = _mkdocs(tmp_path, tmp_path / "site")
    assert result.returncode != 0, f"a broken {kind} did not fail the build"
    assert message in result.stderr, result.stderr[-4000:]


# -- examples/ ------------------------------------------------------------------------


@pytest.mark.slow
def test_quickstart_example_trains_saves_and_reloads(tmp_path):
    pytest.importorskip("sklearn")
    result = run_python(
        args=[str(ROOT / "examples" / "quickstart.py"), "--out", str(tmp_path)],
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    accuracy = float(re.search(r"test accuracy after 5 epochs: ([\d.]+)", result.stdout)[1])
    assert accuracy > 0.5, result.stdout  # chance on ten digits is 0.1
    assert "predictions identical" in result.stdout
