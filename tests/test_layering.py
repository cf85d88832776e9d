"""Architecture rules, enforced on the source tree (AST scan):
usdposer/ never imports models/ or commands/; models/ never imports commands/; usdposer/core never imports pxr or
usdposer.io; commands/ and usdposer/__init__.py import no heavy module at module level."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

HEAVY = {"torch", "warp", "newton", "diffusers", "gsplat", "pxr"}


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_library_never_imports_models_or_commands():
    for f in files("usdposer"):
        bad = {m for m in imports(f) if m.startswith(("usdposer.models", "usdposer.commands", "models", "commands"))}
        assert not bad, (f, bad)


def test_models_never_import_commands():
    for f in files("models"):
        assert not {m for m in imports(f) if m.startswith(("usdposer.commands", "commands"))}, f


def test_core_is_pure_tensor_code():
    for f in files("usdposer/core"):
        bad = {m for m in imports(f) if m.split(".")[0] == "pxr" or m.startswith("usdposer.io")}
        assert not bad, (f, bad)


def test_cli_shell_has_no_heavy_top_level_imports():
    for f in files("commands") + [ROOT / "usdposer" / "__init__.py", ROOT / "usdposer" / "errors.py"]:
        bad = {m for m in imports(f, top_level_only=True) if m.split(".")[0] in HEAVY}
        assert not bad, (f, bad)
