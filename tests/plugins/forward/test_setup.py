"""forward's Corefile syntax: what is accepted, and the errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.forward import Forward, Policy


def forward_from(corefile: str) -> Forward:
    instance = build_instance(parse(corefile, filename="Corefile"), process=Process(), dns_port=0)
    plugin = instance.blocks[0].plugin("forward")
    assert isinstance(plugin, Forward)
    return plugin


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("forward . 127.0.0.1", lambda f: [p.to for p in f.proxies] == ["127.0.0.1:53"]),
        (
            "forward . 127.0.0.1:5353 [::1]:53",
            lambda f: [p.to for p in f.proxies] == ["127.0.0.1:5353", "[::1]:53"],
        ),
        ("forward . dns://10.0.0.1", lambda f: f.proxies[0].to == "10.0.0.1:53"),
        (
            "forward . tls://9.9.9.9 {\n tls_servername dns.quad9.net\n}",
            lambda f: f.proxies[0].upstream.address.tls_servername == "dns.quad9.net",
        ),
        ("forward example.org 127.0.0.1", lambda f: f.stanzas[0].origin == "example.org."),
        (
            "forward . 127.0.0.1 {\n policy round_robin\n}",
            lambda f: f.stanzas[0].policy is Policy.ROUND_ROBIN,
        ),
        ("forward . 127.0.0.1", lambda f: f.stanzas[0].policy is Policy.RANDOM),
        (
            "forward . 127.0.0.1",
            lambda f: f.proxies[0].max_fails == 2 and f.proxies[0].health.interval == 0.5,
        ),
        ("forward . 127.0.0.1 {\n max_fails 0\n}", lambda f: f.proxies[0].max_fails == 0),
        (
            "forward . 127.0.0.1 {\n health_check 5s no_rec domain example.org\n}",
            lambda f: (
                (
                    f.proxies[0].health.interval,
                    f.proxies[0].health.recursion_desired,
                    f.proxies[0].health.domain,
                )
                == (5.0, False, "example.org.")
            ),
        ),
        (
            "forward . 127.0.0.1 {\n except Example.ORG foo.com.\n}",
            lambda f: f.stanzas[0].ignored == ("example.org.", "foo.com."),
        ),
        (
            "forward . 127.0.0.1 {\n force_tcp\n prefer_udp\n}",
            lambda f: f.stanzas[0].force_tcp and not f.stanzas[0].prefer_udp,
        ),
        (
            "forward . 127.0.0.1 {\n max_concurrent 100\n}",
            lambda f: f.stanzas[0].max_concurrent == 100,
        ),
        (
            "forward . 127.0.0.1 {\n failover servfail REFUSED\n}",
            lambda f: f.stanzas[0].failover_rcodes == {2, 5},
        ),
        ("forward . 127.0.0.1 {\n next NXDOMAIN\n}", lambda f: f.stanzas[0].next_rcodes == {3}),
        ("forward . 127.0.0.1 {\n expire 30s\n}", lambda f: True),
        ("forward . 127.0.0.1\nforward example.org 127.0.0.2", lambda f: len(f.stanzas) == 2),
        # CoreDNS 1.12-1.14 options
        (
            "forward . 127.0.0.1 {\n max_age 30s\n}",
            lambda f: f.proxies[0].upstream.max_age == 30.0,
        ),
        ("forward . 127.0.0.1 {\n max_age 0s\n}", lambda f: f.proxies[0].upstream.max_age == 0),
        (
            "forward . 127.0.0.1 {\n expire 10s\n max_age 10s\n}",
            lambda f: f.proxies[0].upstream.max_age == 10.0,
        ),
        # CoreDNS's default cap: two connect attempts per upstream
        ("forward . 127.0.0.1 127.0.0.2", lambda f: f.stanzas[0].max_connect_attempts == 4),
        (
            "forward . 127.0.0.1 {\n max_connect_attempts 3\n}",
            lambda f: f.stanzas[0].max_connect_attempts == 3,
        ),
        (
            "forward . 127.0.0.1 {\n max_connect_attempts 0\n}",
            lambda f: f.stanzas[0].max_connect_attempts == 0,
        ),
        (
            "forward . 127.0.0.1 {\n failfast_all_unhealthy_upstreams\n}",
            lambda f: f.stanzas[0].failfast_all_unhealthy,
        ),
        (
            "forward . 127.0.0.1 {\n next_on_nodata\n}",
            lambda f: f.stanzas[0].next_on_nodata,
        ),
        (
            "forward . 127.0.0.1 {\n read_timeout 500ms\n}",
            lambda f: f.stanzas[0].try_timeout == 0.5,
        ),
        (
            "forward . 127.0.0.1 {\n max_idle_conns 4\n}",
            lambda f: f.proxies[0].upstream.max_idle == 4,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_valid(body: str, check: object) -> None:
    plugin = forward_from(f". {{\n{body}\n}}\n")
    assert callable(check) and check(plugin)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("forward .", "expected at least 2 arguments"),
        ("forward . not-an-address", "not an IP address"),
        ("forward . 127.0.0.1 {\n policy fastest\n}", "unknown policy"),
        ("forward . 127.0.0.1 {\n max_fails -1\n}", "max_fails must be"),
        ("forward . 127.0.0.1 {\n failover NOERROR\n}", "NOERROR cannot be used"),
        ("forward . 127.0.0.1 {\n next BOGUS\n}", "not a valid rcode"),
        ("forward . 127.0.0.1 {\n health_check 1s sideways\n}", "unknown health_check option"),
        ("forward . 127.0.0.1 {\n bogus\n}", "unknown property 'bogus'"),
        ("forward . udp://127.0.0.1", "unsupported protocol"),
        ("forward . " + " ".join(f"10.0.0.{i}" for i in range(16)), "more than 15"),
        ("forward . 127.0.0.1 {\n max_age 5s\n}", "max_age (5s) must not be less than expire"),
        ("forward . 127.0.0.1 {\n max_age -1s\n}", "invalid duration"),
        ("forward . 127.0.0.1 {\n max_connect_attempts -1\n}", "max_connect_attempts must be"),
        ("forward . 127.0.0.1 {\n max_connect_attempts\n}", "expected 1 argument"),
        ("forward . 127.0.0.1 {\n failfast_all_unhealthy_upstreams yes\n}", "expected 0 arguments"),
        ("forward . 127.0.0.1 {\n read_timeout 0s\n}", "read_timeout must be positive"),
        ("forward . 127.0.0.1 {\n max_idle_conns -2\n}", "max_idle_conns must be"),
    ],
    ids=lambda value: value.replace("\n", " "),
)
def test_invalid(body: str, message: str) -> None:
    with pytest.raises(CorefileError) as info:
        forward_from(f". {{\n{body}\n}}\n")
    assert message in str(info.value)
    assert "Corefile:" in str(info.value)


def test_resolv_conf_as_upstream(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example.org\nnameserver 10.1.1.1\nnameserver 10.1.1.2\n")
    plugin = forward_from(f". {{\nforward . {resolv}\n}}\n")
    assert [p.to for p in plugin.proxies] == ["10.1.1.1:53", "10.1.1.2:53"]


def test_empty_resolv_conf_is_an_error(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example.org\n")
    with pytest.raises(CorefileError, match="no nameservers"):
        forward_from(f". {{\nforward . {resolv}\n}}\n")
