"""The fine-tune package's modules depend on each other one way only: no import cycle,
lazy imports included (a cycle forces one side to import inside functions to load at all)."""

from __future__ import annotations

from test_imports import PACKAGE, imports, module_name

FINETUNING = "llmops_nb.finetuning"


def _graph() -> dict[str, set[str]]:
    """Module -> the sibling modules it imports (at the top, lazily or for typing)."""
    paths = sorted((PACKAGE / "finetuning").glob("*.py"))
    names = {module_name(p) for p in paths if p.name != "__init__.py"}
    return {
        module_name(p): {n for n in names if n in imports(p)} - {module_name(p)}
        for p in paths
        if p.name != "__init__.py"
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_finetuning_modules_import_each_other_one_way_only() -> None:
    graph = _graph()
    assert f"{FINETUNING}.job" in graph[f"{FINETUNING}.launcher"]  # the parser sees them
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
