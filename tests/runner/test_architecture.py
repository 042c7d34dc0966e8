"""experiments/ as rooms: its imports (ast, top level and inside functions) form no circle, point one way between
rooms, never name another module's private name, and the paths' glue modules import only the facade."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("errors", "analysis", "runner", "sweeps", "reports", "claims")
ALLOWED = {  # room -> the rooms it may import (besides itself)
    "errors": set(),
    "analysis": {"errors"},
    "runner": {"errors", "analysis"},
    "sweeps": {"errors", "analysis", "runner"},
    "reports": {"errors", "analysis"},
    "claims": {"errors", "analysis", "runner", "sweeps", "reports"},
}


def modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        if {"benchmarks", "configs", "notebooks"} & set(f.relative_to(root).parts):
            continue
        parts = (package, *f.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import in the file (``name`` None for ``import x``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.module, a.name) for a in node.names]
    return out


def graph(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Edges between the modules (a ``from package import submodule`` points at the submodule) and every private
    name imported from another module."""
    edges, private = {m: set() for m in mods}, []
    for mod, path in mods.items():
        for target, name in imports(path):
            cand = f"{target}.{name}" if name and f"{target}.{name}" in mods else target
            while cand not in mods and "." in cand:
                cand = cand.rsplit(".", 1)[0]
            if cand in mods and cand != mod:
                edges[mod].add(cand)
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(f"{mod} imports {target}.{name}")
    return edges, private


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                on.discard(w)
                comp.append(w)
            on.discard(v)
            if comp:
                found.append(sorted([v, *comp]))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def room(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


MODS = modules(REPO / "experiments", "experiments")
EDGES, PRIVATE = graph(MODS)


def test_no_circle_and_no_private_import():
    assert circles(EDGES) == []
    assert PRIVATE == []


def test_rooms_point_one_way():
    wrong = [f"{a} -> {b}" for a, targets in EDGES.items() for b in targets
             if room(a) and room(b) and room(a) != room(b) and room(b) not in ALLOWED[room(a)]]
    assert wrong == []
    facade = [f"{a} -> experiments" for a, targets in EDGES.items() if room(a) and "experiments" in targets]
    assert facade == []  # a room never imports the facade, which imports the rooms


def test_imports_sit_at_the_top_of_a_file_unless_they_keep_jax_or_an_optional_package_out():
    inside = []
    for mod, path in MODS.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{mod}.{fn.name}" for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))]
    # the one exception: the function shipped by value to Ray and SLURM workers, which must not import JAX
    assert set(inside) == {"experiments.sweeps.launchers._make_execute", "experiments.sweeps.launchers.execute"}


@pytest.mark.parametrize("glue", ["spiking/registry.py", "spiking/post.py", "hybrid/registry.py",
                                  "quantum_opt/registry.py"])
def test_glue_modules_import_only_the_facade(glue):
    deep = [m for m, _ in imports(REPO / glue) if m.startswith("experiments.")]
    assert deep == []


def test_the_checker_finds_a_circle_and_a_wrong_direction(tmp_path):
    pkg = tmp_path / "experiments"
    for sub in ("analysis", "runner"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "analysis" / "a.py").write_text("from experiments.runner.b import f\n")
    (pkg / "runner" / "b.py").write_text("from experiments.analysis.a import _g\n")
    mods = modules(pkg, "experiments")
    edges, private = graph(mods)
    assert circles(edges) == [["experiments.analysis.a", "experiments.runner.b"]]
    assert private and "experiments.analysis.a._g" in private[0]
    assert room("experiments.analysis.a") == "analysis" and "runner" not in ALLOWED["analysis"]
