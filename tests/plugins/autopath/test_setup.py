"""Parsing ``autopath``: arguments, the resolv.conf file, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.autopath.searchpath import join, read_search
from clusterdns.plugins.autopath.setup import parse_config


def directive(text: str):  # type: ignore[no-untyped-def]
    corefile = parse(f".:53 {{\n    {text}\n}}\n", filename="Corefile")
    return corefile.blocks[0].directives[0]


@pytest.fixture
def resolv(tmp_path: Path) -> Path:
    path = tmp_path / "my-resolv.conf"
    path.write_text(
        "# comment\nnameserver 10.0.0.10\nsearch Default.svc.cluster.local svc.cluster.local.\n"
        "options ndots:5\n"
    )
    return path


def test_resolv_conf(resolv: Path) -> None:
    config = parse_config(directive(f"autopath {resolv}"), (".",), None)
    assert config.search == ("default.svc.cluster.local.", "svc.cluster.local.")
    assert config.zones == (".",) and config.plugin is None


def test_zones_before_the_file(resolv: Path) -> None:
    config = parse_config(directive(f"autopath Cluster.Local example.org {resolv}"), (".",), None)
    assert config.zones == ("cluster.local.", "example.org.")


def test_relative_path_beside_the_corefile(resolv: Path) -> None:
    config = parse_config(
        directive("autopath my-resolv.conf"), (".",), str(resolv.parent / "Corefile")
    )
    assert config.search is not None and len(config.search) == 2


def test_kubernetes() -> None:
    config = parse_config(directive("autopath @kubernetes"), ("cluster.local.",), None)
    assert config.plugin == "kubernetes" and config.search is None
    assert not config.coredns_compatible
    config = parse_config(
        directive("autopath @kubernetes {\n coredns_compatible\n }"), (".",), None
    )
    assert config.coredns_compatible


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("autopath", "no resolv-conf specified"),
        ("autopath @etcd", "etcd does not implement the AutoPather interface"),
        ("autopath /nonexistent/resolv.conf", "failed to parse"),
        ("autopath @kubernetes {\n bogus\n }", "unknown property 'bogus'"),
        ("autopath @kubernetes {\n coredns_compatible yes\n }", "coredns_compatible"),
    ],
    ids=["no args", "not an autopather", "missing file", "unknown property", "extra arg"],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message) as caught:
        parse_config(directive(text), (".",), None)
    assert "Corefile:" in str(caught.value)


def test_file_without_search_list(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.10\n")
    with pytest.raises(CorefileError, match="no search list"):
        parse_config(directive(f"autopath {path}"), (".",), None)


def test_coredns_compatible_only_for_kubernetes(resolv: Path) -> None:
    with pytest.raises(CorefileError, match="only applies to @kubernetes"):
        parse_config(directive(f"autopath {resolv} {{\n coredns_compatible\n }}"), (".",), None)


def test_read_search_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("search a.example b.example\ndomain c.example\n")
    assert read_search(path) == ["c.example."]
    path.write_text("domain c.example\nsearch a.example b.example ; comment\n")
    assert read_search(path) == ["a.example.", "b.example."]


def test_join_under_the_root() -> None:
    assert join("svc", ".") == "svc."
    assert join("svc", "cluster.local.") == "svc.cluster.local."
    assert join("", "cluster.local.") == "cluster.local."
