"""The layout tells the architecture (docs/architecture.md), and stays that way.

The layer contracts are import-linter's, read from pyproject.toml; cycles and private names are found
on the import graph import-linter itself builds (grimp) and on the source's syntax trees.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
OURS = ("labeling", "analysis", "db", "pages")


def _sources() -> list[Path]:
    return [p for pkg in ("labeling", "pages", "analysis", "db") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_import_contracts_in_pyproject_hold():
    # In its own process, as `make lint` runs it: import-linter configures logging with dictConfig,
    # which would disable every logger already created in this one (Earmark's among them).
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other_even_through_others():
    graph = grimp.build_graph(*OURS, exclude_type_checking_imports=True, cache_dir=None)
    modules = {m for m in graph.modules if m.split(".")[0] in OURS}
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    # A module's own package may share a private module (``formats/_common.py``); a name with a
    # leading underscore is its module's alone.
    offenders = {str(p.relative_to(ROOT)): names for p in _sources() if (names := _private_imports(p))}
    assert offenders == {}


def test_every_page_is_a_file_named_by_its_address_in_its_sections_folder():
    declared = re.findall(r'st\.Page\("(pages/[^"]+\.py)"', (ROOT / "app.py").read_text())
    assert len(declared) >= 13
    for path in declared:
        assert (ROOT / path).is_file(), path
        assert len(Path(path).parts) == 3, f"{path}: pages live in a section's folder"
    stems = [p.stem for p in (ROOT / "pages").glob("*/*.py") if p.stem != "__init__"]
    assert len(stems) == len(set(stems)), "two page files share an address"
