"""ZONES arguments of record plugins are read as CoreDNS's OriginsFromArgsOrServerBlock
reads them: an invalid one is dropped with a warning naming file:line, none valid is an
error naming the line, none given is the server block's zones."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse

ZONE_FILE = (
    "example.org. 3600 IN SOA ns.example.org. h.example.org. 1 7200 3600 1209600 3600\n"
    "example.org. 3600 IN NS ns.example.org.\n"
    "www.example.org. 3600 IN A 192.0.2.1\n"
)
# plugin, directive with ZONES ({zones}), the zones the plugin then holds
CASES = [
    ("hosts", "hosts {dir}/hosts {zones}"),
    ("file", "file {dir}/db {zones}"),
    ("autopath", "autopath {zones} {dir}/resolv.conf"),
    ("kubernetes", "kubernetes {zones} {{\n manifests {dir}\n }}"),
]


def _zones_of(name: str, plugin: object) -> tuple[str, ...]:
    if name == "autopath":
        return tuple(plugin.config.zones)  # type: ignore[attr-defined]
    if name == "hosts":  # (its zones add the reverse zones for its PTR records)
        return tuple(plugin.options.zones)  # type: ignore[attr-defined]
    return tuple(plugin.zones)  # type: ignore[attr-defined]


def _build(tmp_path: Path, directive: str, zones: str) -> object:
    (tmp_path / "hosts").write_text("192.0.2.1 www.example.org\n")
    (tmp_path / "db").write_text(ZONE_FILE)
    (tmp_path / "resolv.conf").write_text("search example.org\n")
    body = directive.format(dir=tmp_path, zones=zones)
    text = f"example.org {{\n{body}\n}}\n"
    instance = build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)
    name = directive.split()[0]
    return next(p for p in instance.plugins() if p.name == name)


@pytest.mark.parametrize(("name", "directive"), CASES, ids=[c[0] for c in CASES])
def test_invalid_zone_is_dropped_with_a_warning(
    tmp_path: Path, name: str, directive: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    plugin = _build(tmp_path, directive, ".svc Example.ORG")
    assert _zones_of(name, plugin) == ("example.org.",)
    assert any("Corefile:2" in r.getMessage() and ".svc" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("name", "directive"), CASES, ids=[c[0] for c in CASES])
def test_no_valid_zone_names_the_line(tmp_path: Path, name: str, directive: str) -> None:
    with pytest.raises(CorefileError, match=r"Corefile:2.*no valid zone"):
        _build(tmp_path, directive, "a..b")


@pytest.mark.parametrize(("name", "directive"), CASES, ids=[c[0] for c in CASES])
def test_no_zone_is_the_blocks(tmp_path: Path, name: str, directive: str) -> None:
    assert _zones_of(name, _build(tmp_path, directive, "")) == ("example.org.",)
