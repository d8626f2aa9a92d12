"""cache's Corefile syntax."""

from __future__ import annotations

import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.cache import Cache, CacheConfig


def config_of(body: str, keys: str = ".") -> CacheConfig:
    instance = build_instance(
        parse(f"{keys} {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("cache")
    assert isinstance(plugin, Cache)
    return plugin.config


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "cache",
            {
                "success_capacity": 9984,
                "denial_capacity": 9984,
                "success_ttl": 3600,
                "denial_ttl": 1800,
                "success_min_ttl": 5,
                "servfail_ttl": 5,
                "zones": (".",),
            },
        ),
        ("cache 30", {"success_ttl": 30, "denial_ttl": 30}),
        (
            "cache 30 Example.org cluster.local",
            {"success_ttl": 30, "zones": ("example.org.", "cluster.local.")},
        ),
        ("cache example.org", {"zones": ("example.org.",), "success_ttl": 3600}),
        (
            "cache {\n success 5000 60 10\n}",
            {"success_capacity": 5000, "success_ttl": 60, "success_min_ttl": 10},
        ),
        (
            "cache {\n denial 2500 30 0\n}",
            {"denial_capacity": 2500, "denial_ttl": 30, "denial_min_ttl": 0},
        ),
        (
            "cache {\n prefetch 10\n}",
            {"prefetch": 10, "prefetch_duration": 60.0, "prefetch_percentage": 10},
        ),
        (
            "cache {\n prefetch 10 2m 30%\n}",
            {"prefetch": 10, "prefetch_duration": 120.0, "prefetch_percentage": 30},
        ),
        ("cache {\n serve_stale\n}", {"stale_up_to": 3600.0, "verify_stale": False}),
        ("cache {\n serve_stale 10m verify\n}", {"stale_up_to": 600.0, "verify_stale": True}),
        # CoreDNS 1.14: RESPONSE_TTL (RFC 8767's 30 s), FAILURE_RECHECK, VERIFY_TIMEOUT
        (
            "cache {\n serve_stale 1h immediate 30s 30s\n}",
            {"verify_stale": False, "stale_ttl": 30, "stale_recheck": 30.0},
        ),
        (
            "cache {\n serve_stale 1h verify 100ms 30s 1m\n}",
            {"verify_stale": True, "verify_timeout": 0.1, "stale_ttl": 30, "stale_recheck": 60.0},
        ),
        (
            "cache {\n serve_stale 1h verify 0 30s\n}",
            {"verify_timeout": 0.0, "stale_ttl": 30, "stale_recheck": 0.0},
        ),
        ("cache {\n serve_stale 1h VERIFY\n}", {"verify_stale": True}),
        (
            "cache {\n serve_stale\n serve_stale_policy prefer_positive\n}",
            {"prefer_positive": True},
        ),
        ("cache {\n servfail 0\n}", {"servfail_ttl": 0}),
        ("cache {\n servfail 30s\n}", {"servfail_ttl": 30}),
        ("cache {\n disable success\n}", {"disable_success": (".",)}),
        ("cache {\n disable denial example.org\n}", {"disable_denial": ("example.org.",)}),
        ("cache {\n keepttl\n}", {"keepttl": True}),
    ],
    ids=lambda value: value.replace("\n", " ") if isinstance(value, str) else "",
)
def test_valid(body: str, expected: dict[str, object]) -> None:
    config = config_of(body)
    for field, value in expected.items():
        assert getattr(config, field) == value, field


def test_zones_default_to_the_server_block() -> None:
    assert config_of("cache", keys="example.org cluster.local").zones == (
        "example.org.",
        "cluster.local.",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("cache 0", "cache TTL must be"),
        ("cache -5", "cache TTL must be"),
        ("cache {\n success\n}", "expected 1..3 arguments"),
        ("cache {\n success abc\n}", "capacity must be an integer"),
        ("cache {\n success 10 0\n}", "TTL must be"),
        ("cache {\n prefetch 1 1m 5%\n}", "percentage must be between 10 and 90"),
        ("cache {\n prefetch 1 1m 50\n}", "last character of percentage"),
        ("cache {\n serve_stale 1h sometimes\n}", "refresh mode"),
        ("cache {\n serve_stale -1h\n}", "invalid negative duration"),
        ("cache {\n serve_stale 1h immediate 1500ms\n}", "whole number of seconds"),
        ("cache {\n serve_stale 1h immediate 30s 6m\n}", "cannot exceed 5 minutes"),
        ("cache {\n serve_stale 1h immediate 30s 30s 1s\n}", "at most RESPONSE_TTL"),
        ("cache {\n serve_stale 1h verify 1s 30s 30s 1s\n}", "expected 0..5 arguments"),
        ("cache {\n serve_stale 1h verify -1s\n}", "invalid negative timeout"),
        ("cache {\n serve_stale_policy newest\n}", "invalid serve_stale_policy"),
        (
            "cache {\n serve_stale_policy prefer_positive\n serve_stale_policy prefer_positive\n}",
            "only be specified once",
        ),
        ("cache {\n servfail 10m\n}", "over 5 minutes"),
        ("cache {\n disable everything\n}", "unknown cache type"),
        ("cache {\n bogus\n}", "unknown property 'bogus'"),
        ("cache\ncache", "only be used once"),
    ],
    ids=lambda value: value.replace("\n", " "),
)
def test_invalid(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        config_of(body)
