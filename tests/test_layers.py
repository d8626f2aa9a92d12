"""Dependencies point one way: cli → core → plugins → sources/upstream → wire → dnspython.

Checked on the import statements of every module, relative ones resolved to the module
they name, so a shortcut fails CI instead of quietly growing a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clusterdns"

# package → packages of ours it must never import (at module level or inside functions)
FORBIDDEN = {
    "wire": {"core", "corefile", "plugins", "sources", "upstream", "sync", "cli"},
    "corefile": {"core", "wire", "plugins", "sources", "upstream", "sync", "cli"},
    "sources": {"core", "wire", "plugins", "upstream", "sync", "cli"},
    "upstream": {"core", "corefile", "plugins", "sources", "sync", "cli"},
    "core": {"plugins", "sources", "upstream", "sync", "cli"},
    "sync": {"core", "plugins", "wire", "upstream", "cli"},
}
# Modules of ours a package must never import even where the package itself is allowed:
# plugins get the server's contract (core.plugin, core.fast, core.request...), never the
# block or the server they run in.
FORBIDDEN_MODULES = {
    "plugins": {"clusterdns.core.block", "clusterdns.core.server", "clusterdns.core.dispatch",
                "clusterdns.core.udp", "clusterdns.core.tcp"},
}  # fmt: skip


def module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module of ours ``path`` imports, with relative imports resolved."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("clusterdns."):
                found.add(target)
                # `from clusterdns.core import block` imports the module clusterdns.core.block
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("clusterdns."))
    return found


def packages_of(modules: set[str]) -> set[str]:
    return {m.split(".")[1] for m in modules if m.count(".") >= 1}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str) -> None:
    offenders = []
    for path in sorted((SRC / package).rglob("*.py")):
        bad = packages_of(imported_modules(path)) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("package", sorted(FORBIDDEN_MODULES))
def test_forbidden_modules(package: str) -> None:
    offenders = []
    for path in sorted((SRC / package).rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN_MODULES[package]
        if bad:
            offenders.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_relative_imports_are_resolved() -> None:
    """The checks above must see relative imports (sources/model.py uses them)."""
    assert "clusterdns.sources.convert" in imported_modules(SRC / "sources" / "model.py")
    assert "clusterdns.upstream.address" in imported_modules(SRC / "upstream" / "__init__.py")


def test_plugins_reach_each_other_only_through_the_registry() -> None:
    offenders = []
    for plugin_dir in sorted(p for p in (SRC / "plugins").iterdir() if p.is_dir()):
        for path in plugin_dir.rglob("*.py"):
            for module in imported_modules(path):
                if module.startswith("clusterdns.plugins."):
                    other = module.split(".")[2]
                    if other != plugin_dir.name:
                        offenders.append(f"{path.relative_to(SRC)} imports plugin {other}")
    assert not offenders, "\n".join(offenders)
