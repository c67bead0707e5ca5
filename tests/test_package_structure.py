"""The package's shape: no class or function longer than LIMIT lines, no import circle between its modules.

Both are measured from the source with :mod:`ast`, so they hold for imports inside functions too (a lazy import
hides a circle from Python but not from a reader).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sobirl_lite"
LIMIT = 220  # lines; the developers' guide asks for about 200


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def longest_definitions(top: int = 5) -> list[tuple[int, str]]:
    """The ``top`` longest classes and functions (nested ones counted on their own too), as (lines, where)."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.append((node.end_lineno - first + 1, f"{name}.{node.name} (line {node.lineno})"))
    return sorted(found, reverse=True)[:top]


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            stem = node.module or ""
            base = (f"{base}.{stem}" if stem else base) if node.level else stem
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def import_cycles() -> list[list[str]]:
    """Every import circle between two or more package modules (a package's ``__init__`` re-exporting its
    submodules is not counted: importing ``pkg.sub`` runs ``pkg/__init__`` first by design)."""
    mods = modules()
    graph = {n: {t for t in imported_modules(n, p, set(mods)) if not n.startswith(t + ".")}
             for n, p in mods.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return cycles


def test_no_class_or_function_is_longer_than_the_limit():
    longest = longest_definitions()
    assert longest[0][0] <= LIMIT, f"longer than {LIMIT} lines: {[w for n, w in longest if n > LIMIT]} ({longest})"


def test_the_measure_sees_a_long_function(tmp_path):
    """The length measure counts a function's whole body, so a function past the limit would be caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT + 5))
    tree = ast.parse(f"def f():\n{body}\n")
    node = tree.body[0]
    assert node.end_lineno - node.lineno + 1 > LIMIT


def test_no_import_circle():
    assert import_cycles() == []


def test_the_cycle_finder_sees_a_circle(monkeypatch, tmp_path):
    """Two modules importing each other (one lazily, inside a function) are reported."""
    pkg = tmp_path / "sobirl_lite"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from .b import g\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert import_cycles() == [["sobirl_lite.sub.a", "sobirl_lite.sub.b", "sobirl_lite.sub.a"]]
