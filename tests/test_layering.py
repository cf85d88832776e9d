"""Data flows one way, and the source proves it (AST scan of every import, including imports inside functions;
``if TYPE_CHECKING:`` blocks excepted, as they never run). No allow-list.

Ranks (DESIGN.md): base (``usdposer.errors``, ``_deps``, ``_version``, ``results``, ``outputs`` and the schema plugin's data root
``usdposer.schemas``) < core (``usdposer.core``, ``usdposer.types``) < io < render, physics, validate (the same rank;
none imports another) < models < pipelines < commands and the USD plugin modules (``usdposer.schemas.*`` and the
package root ``usdposer``, which is the python module USD imports to load the ``usdposer`` validator plugin). A module
imports only from its own rank or below; ``pxr`` only in ``usdposer/io`` and the plugin; ``commands/`` and the
package root import nothing heavy at module level.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

HEAVY = {"torch", "warp", "newton", "diffusers", "gsplat", "pxr", "ray", "transformers"}
FOLDERS = {"usdposer": "usdposer", "models": "usdposer.models", "pipelines": "usdposer.pipelines",
           "commands": "usdposer.commands", "schemas": "usdposer.schemas"}
RANKS = {"base": 0, "core": 1, "io": 2, "render": 3, "physics": 3, "validate": 3, "models": 4, "pipelines": 5,
         "commands": 6, "schemas": 6}


def package(module: str) -> str | None:
    """The layer of a ``usdposer...`` module name (None for anything else)."""
    parts = module.split(".")
    if parts[0] != "usdposer":
        return None
    if len(parts) == 1:
        return "schemas"  # the package root is the USD validator plugin's module (it imports nothing below otherwise)
    if parts[1] in ("errors", "_deps", "_version", "results", "outputs") or parts[1:] == ["schemas"]:
        return "base"  # the schema plugin's package root is data (its folder and schema names)
    if parts[1] == "types":
        return "core"
    if parts[1] in RANKS:
        return parts[1]
    return f"unplaced:{parts[1]}"  # a top-level module that belongs in a package


def source_files() -> list[tuple[Path, str]]:
    """(file, dotted module name) of every source file of the library."""
    out = []
    for folder, dotted in FOLDERS.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((f, ".".join([dotted, *parts]) if parts else dotted))
    return out


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, line) of every import that can run: function bodies included, ``if TYPE_CHECKING:`` excluded."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, int]] = []

    def visit(node, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, top)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        for child in ast.iter_child_nodes(node):
            visit(child, top)

    visit(tree, True)
    return out


def test_every_module_belongs_to_a_layer():
    unplaced = [f"{f.relative_to(ROOT)}" for f, mod in source_files() if (package(mod) or "").startswith("unplaced")]
    assert not unplaced, f"top-level modules that belong in a package: {unplaced}"


def test_imports_go_down_the_ranks_only():
    bad = []
    for f, mod in source_files():
        src = package(mod)
        for target, line in imports(f):
            dst = package(target)
            if dst is None or dst == src:
                continue
            if dst.startswith("unplaced") or RANKS[dst] > RANKS[src] or (RANKS[dst] == RANKS[src] and dst != src):
                bad.append(f"{f.relative_to(ROOT)}:{line} ({src}) imports {target} ({dst})")
    assert not bad, "imports against the ranks:\n" + "\n".join(bad)


def test_no_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for f, mod in source_files():
        src = package(mod)
        for target, _ in imports(f):
            dst = package(target)
            if dst and dst != src:
                edges.setdefault(src, set()).add(dst)

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        if a == b:
            return True
        seen.add(a)
        return any(reaches(n, b, seen) for n in edges.get(a, ()) if n not in seen)

    cycles = [(a, b) for a, ns in edges.items() for b in ns if reaches(b, a, set())]
    assert not cycles, f"packages that import each other: {cycles}"


def test_pxr_only_in_io_and_the_usd_plugin():
    bad = [f"{f.relative_to(ROOT)}:{line}" for f, mod in source_files() for target, line in imports(f)
           if target.split(".")[0] == "pxr" and package(mod) not in ("io", "schemas")]
    assert not bad, f"pxr outside usdposer.io and the plugin: {bad}"


def test_cli_shell_has_no_heavy_top_level_imports():
    shell = [(f, m) for f, m in source_files() if package(m) in ("commands", "base") or m == "usdposer"]
    bad = [f"{f.relative_to(ROOT)}:{line} {target}" for f, _ in shell for target, line in imports(f, top_level_only=True)
           if target.split(".")[0] in HEAVY]
    assert not bad, bad


def test_the_layering_test_sees_violations(tmp_path):
    """The scanner itself: an import inside a function counts, a TYPE_CHECKING import does not."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pxr\n"
                 "def g():\n    from usdposer.models import x\n")
    assert [m for m, _ in imports(f)] == ["typing", "usdposer.models"]
    assert package("usdposer.models.pose_prior") == "models" and package("usdposer.rigfeatures").startswith("unplaced")
