"""The seams, read from the source: what may import what, and how long a module may be.

Imports are parsed with `ast` (relative ones resolved), including those under
`TYPE_CHECKING` and inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llmops_nb"

# The store knows nothing above it but these.
STORE_MAY_IMPORT = ("llmops_nb.store", "llmops_nb.config", "llmops_nb.errors")
SERVICES = (
    "llmops_nb.prompting",
    "llmops_nb.tracing",
    "llmops_nb.evals",
    "llmops_nb.datasets",
    "llmops_nb.llm",
    "llmops_nb.finetuning",
)
FACES = (
    "llmops_nb.widgets",
    "llmops_nb.views",
    "llmops_nb.display",
    "llmops_nb.server",
    "llmops_nb.magics",
)

MAX_LINES = 650  # "about 600": one module, one job


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module PATH imports, as absolute names (`from . import x` gives pkg.x too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_the_parser_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    """The checks below are only as good as this: a lazy relative import is found."""
    names = imports(PACKAGE / "evals" / "run.py")
    assert "llmops_nb.store.get_store" in names and "llmops_nb.errors.NotFound" in names
    assert within("llmops_nb.widgets.eval_grid", FACES) and not within("llmops_nb.viewsx", FACES)


def test_the_store_imports_nothing_above_it() -> None:
    bad = {
        f"{module_name(p)} imports {name}"
        for p in sources()
        if within(module_name(p), ("llmops_nb.store",))
        for name in imports(p)
        if name.startswith("llmops_nb") and not within(name, STORE_MAY_IMPORT)
        and name != "llmops_nb"
    }  # fmt: skip
    assert not bad, sorted(bad)


def test_services_never_import_a_face() -> None:
    bad = {
        f"{module_name(p)} imports {name}"
        for p in sources()
        if within(module_name(p), SERVICES)
        for name in imports(p)
        if within(name, FACES)
    }
    assert not bad, sorted(bad)


def test_views_import_no_panel() -> None:
    """Views are plain data: widgets render them, not the other way round."""
    bad = {
        f"{module_name(p)} imports {name}"
        for p in sources()
        if within(module_name(p), ("llmops_nb.views",))
        for name in imports(p)
        if within(name, ("llmops_nb.widgets", "llmops_nb.display", "llmops_nb.server"))
    }
    assert not bad, sorted(bad)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_much_over_600_lines(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{relative} has {lines} lines: split it by job"
