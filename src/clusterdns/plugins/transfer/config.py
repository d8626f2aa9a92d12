"""The parsed ``transfer`` directives."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ANYONE = "*"


@dataclass(frozen=True)
class TransferRule:
    """One ``transfer [ZONE...] { to ADDRESS... }``: who may transfer these zones."""

    zones: tuple[str, ...]  # lower-case, absolute
    to: tuple[str, ...]  # "*" or "host:port" as CoreDNS normalises them
    source: str | None = None  # accepted; NOTIFY is not sent (see README)

    def allows(self, client_ip: str) -> bool:
        """Is ``client_ip`` one of the ``to`` hosts (the port is not compared, as CoreDNS)?"""
        client = _address(client_ip)
        for entry in self.to:
            if entry == ANYONE:
                return True
            if client is not None and _address(host_of(entry)) == client:
                return True
        return False


def host_of(entry: str) -> str:
    """The host of a normalised ``host:port`` (``[v6]:port``)."""
    host = entry.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a v4 client on a dual-stack socket
    return ip
