"""Dependencies point one way: cli → core → plugins → sources/upstream → wire → dnspython.

Checked on the import statements of every module, so a shortcut fails CI instead of
quietly growing a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clusterdns"

# package → packages of ours it must never import (at module level or inside functions)
FORBIDDEN = {
    "wire": {"core", "corefile", "plugins", "sources", "upstream", "cli"},
    "corefile": {"core", "wire", "plugins", "sources", "upstream", "cli"},
    "sources": {"core", "wire", "plugins", "upstream", "cli"},
    "upstream": {"core", "corefile", "plugins", "sources", "cli"},
    "core": {"plugins", "sources", "upstream", "cli"},
    "sync": {"core", "wire", "plugins", "upstream", "cli"},
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("clusterdns.")
        ):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("clusterdns."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str) -> None:
    offenders = []
    for path in sorted((SRC / package).rglob("*.py")):
        bad = imports_of(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_plugins_reach_each_other_only_through_the_registry() -> None:
    offenders = []
    for plugin_dir in sorted(p for p in (SRC / "plugins").iterdir() if p.is_dir()):
        for path in plugin_dir.rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.module.startswith("clusterdns.plugins.")
                ):
                    other = node.module.split(".")[2]
                    if other != plugin_dir.name:
                        offenders.append(f"{path.relative_to(SRC)} imports plugin {other}")
    assert not offenders, "\n".join(offenders)
