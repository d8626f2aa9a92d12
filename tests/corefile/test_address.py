"""Server keys → ServerAddress, including CoreDNS's reverse-zone expansion of CIDR keys."""

from __future__ import annotations

import pytest

from clusterdns.corefile import CorefileError, Token, parse_server_key


def _zones_of(text: str) -> list[tuple[str, str, int | None]]:
    return [(a.scheme, a.zone, a.port) for a in parse_server_key(Token(text, "Corefile", 7))]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(".", [("dns", ".", None)], id=". → root, no port"),
        pytest.param(".:53", [("dns", ".", 53)], id=".:53"),
        pytest.param("dns://.:53", [("dns", ".", 53)], id="dns://.:53"),
        pytest.param(
            "DNS://Example.ORG", [("dns", "example.org.", None)], id="scheme and zone case"
        ),
        pytest.param("example.org:1053", [("dns", "example.org.", 1053)], id="zone with port"),
        pytest.param("example.org.", [("dns", "example.org.", None)], id="already fully qualified"),
        pytest.param(
            "tls://example.org", [("tls", "example.org.", None)], id="tls keeps its scheme"
        ),
        pytest.param("https://.:443", [("https", ".", 443)], id="https"),
        pytest.param("grpc://.", [("grpc", ".", None)], id="grpc"),
        pytest.param("quic://.:853", [("quic", ".", 853)], id="quic"),
        pytest.param(".:0", [("dns", ".", 0)], id="port 0 is allowed"),
        pytest.param("_tcp.example.org", [("dns", "_tcp.example.org.", None)], id="underscore"),
        pytest.param("10.0.0.0/8", [("dns", "10.in-addr.arpa.", None)], id="CIDR /8"),
        pytest.param("172.16.0.0/16", [("dns", "16.172.in-addr.arpa.", None)], id="CIDR /16"),
        pytest.param("10.0.0.0/24", [("dns", "0.0.10.in-addr.arpa.", None)], id="CIDR /24"),
        pytest.param(
            "10.0.0.0/24:1053", [("dns", "0.0.10.in-addr.arpa.", 1053)], id="CIDR with port"
        ),
        pytest.param(
            "10.1.2.3/24", [("dns", "2.1.10.in-addr.arpa.", None)], id="host bits dropped"
        ),
        pytest.param("10.0.0.7/32", [("dns", "7.0.0.10.in-addr.arpa.", None)], id="CIDR /32"),
        pytest.param("0.0.0.0/0", [("dns", "in-addr.arpa.", None)], id="CIDR /0"),
        pytest.param(
            "10.0.0.0/15",
            [("dns", "0.10.in-addr.arpa.", None), ("dns", "1.10.in-addr.arpa.", None)],
            id="CIDR /15 → two /16 zones",
        ),
        pytest.param(
            "fd00:1234::/64",
            [("dns", "0.0.0.0.0.0.0.0.4.3.2.1.0.0.d.f.ip6.arpa.", None)],
            id="IPv6 /64",
        ),
        pytest.param(
            "fd00::/64:1053",
            [("dns", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", 1053)],
            id="IPv6 CIDR with port after the mask",
        ),
        pytest.param(
            "fd00::/7",
            [("dns", "c.f.ip6.arpa.", None), ("dns", "d.f.ip6.arpa.", None)],
            id="IPv6 /7 → two /8 zones",
        ),
    ],
)
def test_good_keys(key: str, expected: list[tuple[str, str, int | None]]) -> None:
    assert _zones_of(key) == expected


def test_cidr_17_expands_to_128_reverse_zones() -> None:
    zones = [zone for _, zone, _ in _zones_of("10.0.0.0/17")]
    assert zones == [f"{i}.0.10.in-addr.arpa." for i in range(128)]


def test_addresses_keep_their_key_token() -> None:
    key = Token("10.0.0.0/23", "Corefile", 4)
    assert {a.key for a in parse_server_key(key)} == {key}


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        pytest.param(".:abc", "invalid port 'abc'", id="non-numeric port"),
        pytest.param(".:70000", "port 70000 out of range", id="port too large"),
        pytest.param(".:", "expected a port number after ':'", id="empty port"),
        pytest.param(":53", "missing zone", id="port without zone"),
        pytest.param("foo://.", "unknown scheme 'foo://'", id="unknown scheme"),
        pytest.param("://.", "malformed scheme", id="empty scheme"),
        pytest.param("[::1]:53", "zones, not listen addresses", id="bracketed address"),
        pytest.param("a..b", "empty label", id="empty label"),
        pytest.param("a" * 64 + ".org", "longer than 63 octets", id="long label"),
        pytest.param(".".join(["abcdefgh"] * 30), "longer than 255 octets", id="long zone"),
        pytest.param("10.0.0.0/33", "invalid CIDR", id="mask too long"),
        pytest.param("10.0.0/24", "invalid CIDR", id="short IPv4 address"),
        pytest.param("10.0.0.0/x", "invalid CIDR", id="non-numeric mask"),
        pytest.param("a/b.org", "invalid CIDR", id="slash in a name"),
        pytest.param("a:b:53", "invalid character ':'", id="colon left in zone"),
        pytest.param("a\ud800.org", "invalid character", id="lone surrogate"),
    ],
)
def test_bad_keys(key: str, fragment: str) -> None:
    with pytest.raises(CorefileError) as info:
        parse_server_key(Token(key, "Corefile", 7))
    assert (info.value.file, info.value.line) == ("Corefile", 7)
    assert fragment in info.value.message
