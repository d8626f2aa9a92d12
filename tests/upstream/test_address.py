"""UpstreamAddress.parse / __str__ and parse_resolv_conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterdns.upstream import UpstreamAddress, parse_resolv_conf

U = UpstreamAddress

PARSE_CASES = [
    ("1.2.3.4", U("1.2.3.4", 53), "1.2.3.4:53"),
    ("1.2.3.4:5353", U("1.2.3.4", 5353), "1.2.3.4:5353"),
    ("  10.0.0.10:53 ", U("10.0.0.10", 53), "10.0.0.10:53"),
    ("::1", U("::1", 53), "[::1]:53"),
    ("[::1]:53", U("::1", 53), "[::1]:53"),
    ("[2003::1]:1053", U("2003::1", 1053), "[2003::1]:1053"),
    ("[2003:0:0::1]", U("2003::1", 53), "[2003::1]:53"),
    ("fe80::1%eth0", U("fe80::1%eth0", 53), "[fe80::1%eth0]:53"),
    ("dns://1.2.3.4", U("1.2.3.4", 53), "1.2.3.4:53"),
    ("DNS://1.2.3.4:54", U("1.2.3.4", 54), "1.2.3.4:54"),
    ("tls://1.2.3.4", U("1.2.3.4", 853, "tls"), "1.2.3.4:853"),
    ("tls://1.2.3.4:853", U("1.2.3.4", 853, "tls"), "1.2.3.4:853"),
    ("tls://[::1]", U("::1", 853, "tls"), "[::1]:853"),
    ("tls://[::1]:8853", U("::1", 8853, "tls"), "[::1]:8853"),
    (
        "tls://9.9.9.9%dns.quad9.net",
        U("9.9.9.9", 853, "tls", "dns.quad9.net"),
        "9.9.9.9:853",
    ),
    (
        "tls://9.9.9.9%dns.quad9.net:10853",
        U("9.9.9.9", 10853, "tls", "dns.quad9.net"),
        "9.9.9.9:10853",
    ),
    (
        "tls://[2620:fe::fe]%dns.quad9.net:853",
        U("2620:fe::fe", 853, "tls", "dns.quad9.net"),
        "[2620:fe::fe]:853",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected", "label"), PARSE_CASES, ids=[f"{c[0]!r} → {c[2]}" for c in PARSE_CASES]
)
def test_parse(text: str, expected: UpstreamAddress, label: str) -> None:
    address = UpstreamAddress.parse(text)
    assert address == expected
    assert str(address) == label


def test_default_tls_servername_applies_to_tls_only() -> None:
    assert UpstreamAddress.parse("tls://1.1.1.1", default_tls_servername="cloudflare-dns.com") == U(
        "1.1.1.1", 853, "tls", "cloudflare-dns.com"
    )
    assert UpstreamAddress.parse("1.1.1.1", default_tls_servername="cloudflare-dns.com") == U(
        "1.1.1.1", 53
    )


BAD_CASES = [
    ("", "empty"),
    ("   ", "empty"),
    ("example.com", "not an IP address"),
    ("example.com:53", "not an IP address"),
    ("1.2.3", "not an IP address"),
    ("1.2.3.4:", "PORT"),
    ("1.2.3.4:abc", "PORT"),
    ("1.2.3.4:0", "out of range"),
    ("1.2.3.4:65536", "out of range"),
    ("1.2.3.4:٥٣", "PORT"),  # non-ASCII digits
    ("[::1", "missing ']'"),
    ("[1.2.3.4]:53", "only for IPv6"),
    ("[::1]53", "PORT"),
    (":53", "missing address"),
    ("https://1.2.3.4", "unsupported protocol"),
    ("grpc://1.2.3.4", "unsupported protocol"),
    ("1.2.3.4%dns.example", "needs tls://"),
    ("tls://1.2.3.4%", "empty TLS server name"),
    ("/etc/resolv.conf", "not an IP address"),
]


@pytest.mark.parametrize(
    ("text", "message"), BAD_CASES, ids=[f"{c[0]!r} → error" for c in BAD_CASES]
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UpstreamAddress.parse(text)


def test_per_endpoint_servername_clashes_with_tls_servername() -> None:
    with pytest.raises(ValueError, match="clashes"):
        UpstreamAddress.parse("tls://9.9.9.9%dns.quad9.net", default_tls_servername="other")


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="out of range"):
        UpstreamAddress("1.2.3.4", 0)
    with pytest.raises(ValueError, match="tls transport"):
        UpstreamAddress("1.2.3.4", 53, "dns", "name")


# -- resolv.conf --------------------------------------------------------------------------


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


RESOLV_CASES = [
    ("nameserver 10.0.0.1\n", ["10.0.0.1"]),
    (
        "# generated\nsearch default.svc.cluster.local svc.cluster.local\n"
        "nameserver 10.0.0.1\n; comment\nnameserver   2001:db8::1  \noptions ndots:5\n",
        ["10.0.0.1", "2001:db8::1"],
    ),
    ("nameserver 10.0.0.1 # trailing\nnameserver\n", ["10.0.0.1"]),
    ("search example.com\n", []),
    ("", []),
]


@pytest.mark.parametrize(
    ("text", "expected"), RESOLV_CASES, ids=["one", "mixed", "trailing-junk", "none", "empty"]
)
def test_parse_resolv_conf(tmp_path: Path, text: str, expected: list[str]) -> None:
    missing = str(tmp_path / "no-such-file")
    assert parse_resolv_conf(_write(tmp_path / "r", text), systemd_resolved_path=missing) == (
        expected
    )


def test_systemd_resolved_stub_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub = _write(tmp_path / "stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    real = _write(tmp_path / "real", "nameserver 192.168.1.1\nnameserver 192.168.1.2\n")
    with caplog.at_level("INFO", logger="clusterdns.upstream"):
        assert parse_resolv_conf(stub, systemd_resolved_path=real) == [
            "192.168.1.1",
            "192.168.1.2",
        ]
    assert "systemd-resolved" in caplog.text and real in caplog.text


def test_systemd_resolved_stub_kept_without_alternate(tmp_path: Path) -> None:
    stub = _write(tmp_path / "stub", "nameserver 127.0.0.53\n")
    missing = str(tmp_path / "missing")
    assert parse_resolv_conf(stub, systemd_resolved_path=missing) == ["127.0.0.53"]


def test_stub_among_other_servers_is_kept(tmp_path: Path) -> None:
    mixed = _write(tmp_path / "mixed", "nameserver 127.0.0.53\nnameserver 10.0.0.1\n")
    real = _write(tmp_path / "real", "nameserver 192.168.1.1\n")
    assert parse_resolv_conf(mixed, systemd_resolved_path=real) == ["127.0.0.53", "10.0.0.1"]


def test_missing_resolv_conf_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        parse_resolv_conf(str(tmp_path / "nope"))
