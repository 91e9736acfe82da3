"""The package's shape, checked (docs/design.md, "Floors"): no import circle, nothing imports a higher floor, no
module over 700 lines, no function over 120.

The floors are read from the table in docs/design.md, so the document and the test cannot disagree. Every import
counts, those inside functions too: an import moved into a function to dodge a circle is still a circle.
:data:`PENDING` names known exceptions (none is left: data/ and ops/, the last ones, were restructured); each is
checked to still exist, so an entry goes away as soon as its cause does.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gemix_monai"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 120

#: Known exceptions, each with its reason; a new violation anywhere else fails.
PENDING = {
    "cycles": {},
    "modules": {},
    "functions": {},
}


def _floors() -> dict[str, int]:
    """``{package or module (relative to gemix_monai): floor}`` from the table under "## Floors" in docs/design.md."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Floors", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            for name in re.findall(r"`([a-z_.]+)/?`", m.group(2)):
                floors[name] = int(m.group(1))
    assert floors, "docs/design.md has no floor table under '## Floors'"
    return floors


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name relative to gemix_monai ("" for the package itself): (file, is a package __init__)}``."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, modules) -> set[str]:
    """Every gemix_monai module ``name`` imports, at any depth of the file, resolved to a module of ``modules``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["gemix_monai", *name.split(".")] if name else ["gemix_monai"]
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" for a in node.names] + [module]
        else:
            continue
        for target in targets:
            if target != "gemix_monai" and not target.startswith("gemix_monai."):
                continue
            rel = target[len("gemix_monai.") :] if target != "gemix_monai" else ""
            while rel and rel not in modules:
                rel = rel.rpartition(".")[0]
            # a package's own submodules are its contents, not its dependencies
            if rel != name and not (is_pkg and (not name or rel.startswith(name + "."))):
                found.add(rel)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, is_pkg, modules) for name, (path, is_pkg) in modules.items()}


def _floor_of(name: str, floors: dict[str, int]) -> int:
    parts = name.split(".") if name else [""]
    for k in range(len(parts), 0, -1):
        key = ".".join(parts[:k])
        if key in floors:
            return floors[key]
    if name == "":
        return floors[""] if "" in floors else 0
    raise AssertionError(f"gemix_monai.{name} has no floor in docs/design.md's table (add its package there)")


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_floor_in_the_design_document():
    floors = _floors()
    for name in _modules():
        _floor_of(name, floors)


def test_no_import_circle():
    cycles = _cycles(_graph())
    new = [sorted(c) for c in cycles if c not in PENDING["cycles"]]
    assert not new, f"import circles (imports inside functions count too): {new}"


def test_nothing_imports_a_higher_floor():
    floors = _floors()
    upward = [
        f"gemix_monai.{a} (floor {_floor_of(a, floors)}) imports gemix_monai.{b} (floor {_floor_of(b, floors)})"
        for a, targets in sorted(_graph().items())
        for b in sorted(targets)
        if _floor_of(b, floors) > _floor_of(a, floors)
    ]
    assert not upward, "imports that go up a floor (docs/design.md):\n" + "\n".join(upward)


def _sizes():
    modules, functions = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        modules[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[f"{rel}:{node.name}"] = max(
                    functions.get(f"{rel}:{node.name}", 0), node.end_lineno - node.lineno + 1
                )
    return modules, functions


def test_no_module_over_700_lines_and_no_function_over_120():
    modules, functions = _sizes()
    big = {m: n for m, n in modules.items() if n > MAX_MODULE_LINES and m not in PENDING["modules"]}
    long = {f: n for f, n in functions.items() if n > MAX_FUNCTION_LINES and f not in PENDING["functions"]}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("kind", ["cycles", "modules", "functions"])
def test_every_pending_exception_still_exists(kind):
    """An exception whose cause is gone is removed from :data:`PENDING` (it must not hide a later regression)."""
    modules, functions = _sizes()
    present = {
        "cycles": set(_cycles(_graph())),
        "modules": {m for m, n in modules.items() if n > MAX_MODULE_LINES},
        "functions": {f for f, n in functions.items() if n > MAX_FUNCTION_LINES},
    }[kind]
    stale = sorted(map(str, set(PENDING[kind]) - present))
    assert not stale, f"PENDING[{kind!r}] lists {stale}, which no longer apply: remove them"
