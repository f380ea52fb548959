"""The import directions of docs/architecture.md, checked: a new import that breaks them fails here.

Everything may import `core`; `retrieval` imports `core` only; `sandbox` imports nothing of ours;
`workers` imports `core`, `retrieval` and `sandbox`; `api` imports `core` and `retrieval` (so the
API process never loads model or Docker code); only the command line (`assistd`) imports `api`
and `workers`. No two modules import each other, even lazily (inside a function).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("api", "core", "workers", "retrieval", "sandbox", "assistd")
ALLOWED = {
    "core": {"core"},
    "retrieval": {"core", "retrieval"},
    "sandbox": {"sandbox"},
    "workers": {"core", "retrieval", "sandbox", "workers"},
    "api": {"core", "retrieval", "api"},
    "assistd": set(OURS),
}


def modules() -> Iterator[tuple[str, Path]]:
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts or "image" in parts:  # alembic scripts; the sandbox image's own code
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path, *, top_level_only: bool) -> Iterator[str]:
    """Modules of ours `path` imports (at module level only, if asked; TYPE_CHECKING blocks never)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        yield from (n for n in names if n.split(".")[0] in OURS)


def test_import_directions() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, path in modules()
        for target in imports(path, top_level_only=False)
        if target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    known = dict(modules())
    graph = {
        name: {t for t in imports(path, top_level_only=False) if t in known and t != name}
        for name, path in known.items()
    }
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            circles.append(trail[trail.index(node) :] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [])
    assert circles == []
