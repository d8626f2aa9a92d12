"""Server keys: ``[SCHEME://]ZONE[:PORT]`` to ServerAddress, with CoreDNS's CIDR reverse zones."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from clusterdns.corefile.errors import CorefileError
from clusterdns.corefile.model import ServerAddress, Token

SCHEMES = ("dns", "tls", "https", "grpc", "quic")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
# Characters that cannot appear in a zone written as a server key. CoreDNS's check is lenient
# (miekg/dns IsDomainName); these are the ones that only ever come from a typo or a mistake
# such as writing a listen address instead of a zone.
_BAD_ZONE_CHARS = frozenset('/[]{}"():,;@')
_MAX_PORT = 65535


def parse_server_key(token: Token) -> list[ServerAddress]:
    """Normalise one server key; a CIDR key can expand to several reverse zones."""
    text = token.text

    def fail(message: str) -> CorefileError:
        return CorefileError(token.file, token.line, f"server key {text!r}: {message}")

    scheme = "dns"
    rest = text
    m = _SCHEME.match(text)
    if m is not None:
        scheme = m[1].lower()
        if scheme not in SCHEMES:
            known = ", ".join(f"{s}://" for s in SCHEMES)
            raise fail(f"unknown scheme '{m[1]}://' (expected one of {known})")
        rest = text[m.end() :]
    elif "://" in text:
        raise fail("malformed scheme before '://'")
    if "[" in rest or "]" in rest:
        raise fail(
            "server keys are zones, not listen addresses (use the bind plugin to choose "
            "which addresses to listen on)"
        )
    host, port = _split_port(rest, fail)
    if not host:
        raise fail("missing zone (use '.' for the root zone)")
    zones = _reverse_zones(host, fail) if "/" in host else [_normalize_zone(host, fail)]
    return [ServerAddress(scheme=scheme, zone=zone, port=port, key=token) for zone in zones]


def _split_port(rest: str, fail: Callable[[str], CorefileError]) -> tuple[str, int | None]:
    # As CoreDNS: the port is whatever follows the last colon. A colon before the '/' of a
    # CIDR belongs to an IPv6 address ("fd00::/64"), and the port comes after the mask
    # ("fd00::/64:1053").
    colon = rest.rfind(":")
    if colon == -1 or colon < rest.rfind("/"):
        return rest, None
    digits = rest[colon + 1 :]
    if not digits:
        raise fail("expected a port number after ':'")
    if not (digits.isascii() and digits.isdigit()):
        raise fail(f"invalid port {digits!r}: expected a number from 0 to {_MAX_PORT}")
    if len(digits) > 5 or int(digits) > _MAX_PORT:
        raise fail(f"port {digits} out of range 0-{_MAX_PORT}")
    return rest[:colon], int(digits)


def _normalize_zone(host: str, fail: Callable[[str], CorefileError]) -> str:
    if host == ".":
        return "."
    for char in host:
        if char in _BAD_ZONE_CHARS or ord(char) <= 32 or ord(char) == 127 or _surrogate(char):
            hint = " ('{' and '}' must be separated by spaces)" if char in "{}" else ""
            raise fail(f"invalid character {char!r} in zone {host!r}{hint}")
    if not host.isascii():
        # CoreDNS would take the UTF-8 bytes as labels, which no resolver asks for: queries
        # for internationalised names arrive in their IDNA form.
        try:
            hint = f" ({host.rstrip('.').encode('idna').decode('ascii')}.)"
        except UnicodeError:
            hint = ""
        raise fail(f"zone {host!r} is not ASCII: write it in its IDNA 'xn--' form{hint}")
    zone = host.lower()
    if not zone.endswith("."):
        zone += "."
    labels = zone[:-1].split(".")
    wire_length = 1
    for label in labels:
        size = len(label)
        if size == 0:
            raise fail(f"empty label in zone {host!r}")
        if size > 63:
            raise fail(f"label {label!r} is longer than 63 octets")
        wire_length += size + 1
    if wire_length > 255:
        raise fail(f"zone is longer than 255 octets ({wire_length})")
    return zone


def _surrogate(char: str) -> bool:
    # Lone surrogates can reach us from a str built in memory; they cannot be encoded.
    return 0xD800 <= ord(char) <= 0xDFFF


def _reverse_zones(host: str, fail: Callable[[str], CorefileError]) -> list[str]:
    """The reverse zones covering a CIDR, split on label boundaries as CoreDNS's cidr.Split does.

    A prefix that is not a multiple of 8 bits (IPv4) or 4 bits (IPv6) is rounded up to the
    next boundary and the network split into all subnets of that size: 10.0.0.0/17 becomes
    the 128 zones 0.0.10.in-addr.arpa. ... 127.0.10.in-addr.arpa.
    """
    address, _, prefix = host.partition("/")
    if not (prefix.isascii() and prefix.isdigit()) or len(prefix) > 3 or "%" in address:
        raise fail(f"invalid CIDR {host!r}")
    try:
        network = ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError as exc:
        raise fail(f"invalid CIDR {host!r}: {exc}") from None
    digit = 8 if network.version == 4 else 4
    boundary = -(-network.prefixlen // digit) * digit
    subnets = [network] if boundary == network.prefixlen else network.subnets(new_prefix=boundary)
    drop = (network.max_prefixlen - boundary) // digit
    zones = []
    for subnet in subnets:
        labels = subnet.network_address.reverse_pointer.split(".")
        zones.append(".".join(labels[drop:]) + ".")
    return zones
