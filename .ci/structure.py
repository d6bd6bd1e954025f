"""The shape of the package, checked from its source: `python .ci/structure.py [ROOT]`.

Reads every module under ROOT/summarize with `ast` (nothing is imported or run) and
fails, one line per finding, when:

- the import graph has a cycle; every import counts, those under `if TYPE_CHECKING:`
  and those inside functions too (a cycle for the type checker is still a cycle in the
  design);
- the shared core (`summarize._core`) imports a transport, the CLI or the composition
  above it;
- live mode (`summarize._live`) imports batch mode;
- batch mode (`summarize._batch`, `summarize.batch`) imports live mode anywhere but in
  `summarize._batch.live_repair`, where `collect --repair live` sends through the live
  pool (shared types and planning come from `summarize._core`, never from live);
- live or batch mode imports the Ray package (`summarize.ray`), or the Ray package
  imports batch mode or the CLI: Ray sends through live mode as a transport of its own,
  from many processes, and the CLI sits above it;
- a module is over MAX_MODULE_LINES lines, or a function over MAX_FUNCTION_LINES.

Importing `a.b.c` from outside package `a.b` runs `a/b/__init__.py` first, so it counts
as an import of `a.b` too. ROOT defaults to the repository this script is in.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "summarize"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50
CORE = "summarize._core"
LIVE = ("summarize._live",)
BATCH = ("summarize._batch", "summarize.batch")
LIVE_REPAIR = "summarize._batch.live_repair"
RAY = ("summarize.ray",)
CLI = "summarize._cli"
# What the core sits under: the transports, the CLI and the composition that uses them.
ABOVE_CORE = (
    *LIVE, *BATCH, *RAY, CLI, "summarize._run", "summarize._rows",
    "summarize._estimate", "summarize.testing",
)  # fmt: skip


@dataclass(slots=True)
class Module:
    """One source file: its dotted name, its tree and where it is."""

    name: str
    path: Path
    tree: ast.Module
    lines: int
    is_package: bool
    imports: dict[str, int] = field(default_factory=dict)  # module -> first line


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    """Whether module `name` is one of `prefixes` or inside one of them."""
    wanted = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in wanted)


def load(root: Path) -> dict[str, Module]:
    """Every module of the package under `root`, parsed."""
    modules: dict[str, Module] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text("utf-8")
        tree = ast.parse(text, filename=str(path))
        name = ".".join(parts)
        modules[name] = Module(name, path, tree, len(text.splitlines()), is_package)
    for module in modules.values():
        module.imports = _imports(module, modules)
    return modules


def _imports(module: Module, modules: dict[str, Module]) -> dict[str, int]:
    """The package's modules that `module` imports, each with the first line that does."""
    found: dict[str, int] = {}
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for target in _targets(node, module, modules):
            for name in _with_packages(target, module.name):
                if name in modules and name != module.name:
                    found.setdefault(name, node.lineno)
    return found


def _targets(
    node: ast.Import | ast.ImportFrom, module: Module, modules: dict[str, Module]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    else:
        base = _absolute(node, module)
        # A package the importer is in is being imported already: `from .. import _x`
        # depends on `_x` alone; a name that is not a module depends on the package.
        inside = within(module.name, base)
        for alias in node.names:
            if f"{base}.{alias.name}" in modules:
                yield f"{base}.{alias.name}"
            elif inside:
                yield base
        if not inside:
            yield base


def _absolute(node: ast.ImportFrom, module: Module) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package.pop()
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def _with_packages(target: str, importer: str) -> Iterator[str]:
    """`target` and the packages above it that importing it runs: those `importer` is not in."""
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        if end == len(parts) or not within(importer, name):
            yield name


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Each cycle of the import graph, as one path through its strongly connected part."""
    graph = {name: sorted(m.imports) for name, m in modules.items()}
    found = []
    for part in _strongly_connected(graph):
        if len(part) > 1:
            found.append(_path_through(part, graph))
    return found


def _strongly_connected(graph: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (an import chain may be deeper than the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[set[str]] = []
    for start, edges_of_start in graph.items():
        if start in index:
            continue
        work = [(start, iter(edges_of_start))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = set()
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        part.add(top)
                        if top == node:
                            break
                    parts.append(part)
            elif step not in index:
                index[step] = low[step] = len(index)
                stack.append(step)
                on_stack.add(step)
                work.append((step, iter(graph[step])))
            elif step in on_stack:
                low[node] = min(low[node], index[step])
    return parts


def _path_through(part: set[str], graph: dict[str, list[str]]) -> list[str]:
    """A cycle within `part`, from its first module back to it (breadth first: shortest)."""
    start = min(part)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for step in graph[node]:
                if step == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if step in part and step not in came_from:
                    came_from[step] = node
                    following.append(step)
        frontier = following
    return [start, start]  # pragma: no cover - a strongly connected part has a cycle


def layering(modules: dict[str, Module]) -> Iterator[str]:
    """Imports that go the wrong way between the core and the transports."""
    for module in modules.values():
        for target, line in sorted(module.imports.items()):
            where = f"{module.path}:{line}: {module.name} imports {target}"
            if within(module.name, CORE) and within(target, ABOVE_CORE):
                yield f"{where}: the core sits under the transports and the CLI"
            if within(module.name, LIVE) and within(target, BATCH):
                yield f"{where}: live mode never imports batch mode"
            if within(module.name, BATCH) and within(target, LIVE) and module.name != LIVE_REPAIR:
                yield (f"{where}: batch mode reaches live mode only in {LIVE_REPAIR}; "
                       "shared types and planning are in summarize._core")  # fmt: skip
            if within(module.name, (*LIVE, *BATCH)) and within(target, RAY):
                yield f"{where}: live and batch mode never import the Ray package"
            if within(module.name, RAY) and within(target, (*BATCH, CLI)):
                yield (f"{where}: the Ray package sends through live mode; it imports "
                       "neither batch mode nor the CLI")  # fmt: skip


def sizes(modules: dict[str, Module]) -> Iterator[str]:
    """Modules and functions over their length limits."""
    for module in modules.values():
        if module.lines > MAX_MODULE_LINES:
            yield (f"{module.path}: {module.lines} lines, over {MAX_MODULE_LINES}: split it "
                   "by concept")  # fmt: skip
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield (f"{module.path}:{node.lineno}: {node.name} is {length} lines, "
                           f"over {MAX_FUNCTION_LINES}")  # fmt: skip


def check(root: Path) -> list[str]:
    """Every finding for the package under `root`; empty when its shape is as it should be."""
    modules = load(root)
    if not modules:
        return [f"{root / PACKAGE}: no modules found"]
    findings = [f"import cycle: {' -> '.join(path)}" for path in cycles(modules)]
    findings += layering(modules)
    findings += sizes(modules)
    return findings


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    findings = check(root)
    for finding in findings:
        print(f"structure: {finding}", file=sys.stderr)
    modules = len(load(root))
    if findings:
        print(f"structure: {len(findings)} findings in {modules} modules", file=sys.stderr)
        return 1
    print(f"structure: {modules} modules, no import cycle, layers and sizes as they should be")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
