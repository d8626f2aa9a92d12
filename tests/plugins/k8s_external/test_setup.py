"""Parsing ``k8s_external``: options, defaults, and errors naming file:line."""

from __future__ import annotations

from typing import Any

import pytest

from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.k8s_external.setup import parse_config


@pytest.mark.parametrize(
    ("text", "expected_config"),
    [
        ("k8s_external", {"zones": (".",), "apex": "dns", "ttl": 5, "headless": False}),
        (
            "k8s_external example.org Example.NET {\n apex ns\n ttl 60\n headless\n}",
            {"zones": ("example.org.", "example.net."), "apex": "ns", "ttl": 60, "headless": True},
        ),
        ("k8s_external example.org {\n ttl 0\n}", {"zones": ("example.org.",), "ttl": 0}),
    ],
    ids=["defaults", "every option", "ttl 0"],
)
def test_parse(text: str, expected_config: dict[str, Any]) -> None:
    directive = parse(f". {{\n{text}\n}}\n", filename="Corefile").blocks[0].directives[0]
    config = parse_config(directive, (".",))
    for key, value in expected_config.items():
        assert getattr(config, key) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k8s_external {\n ttl 3601\n}", "Corefile:3: ttl: ttl must be between 0 and 3600"),
        ("k8s_external {\n ttl\n}", "Corefile:3:"),
        ("k8s_external {\n apex\n}", "Corefile:3:"),
        ("k8s_external {\n bogus\n}", "Corefile:3: bogus: unknown property 'bogus'"),
        # A port on a zone is ignored (CoreDNS's OriginsFromArgsOrServerBlock); only
        # arguments none of which is a zone are an error.
        ("k8s_external a..b", "Corefile:2: k8s_external: no valid zone"),
    ],
    ids=["ttl out of range", "ttl without value", "apex without value", "unknown", "no zone"],
)
def test_parse_errors(text: str, message: str) -> None:
    directive = parse(f". {{\n{text}\n}}\n", filename="Corefile").blocks[0].directives[0]
    with pytest.raises(CorefileError) as err:
        parse_config(directive, (".",))
    assert str(err.value).startswith(message), str(err.value)
