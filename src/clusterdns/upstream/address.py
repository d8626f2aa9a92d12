"""Upstream addresses as written after `forward FROM`, and nameservers from resolv.conf."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Transport = Literal["dns", "tls"]

DEFAULT_PORTS: dict[Transport, int] = {"dns": 53, "tls": 853}

# systemd-resolved's stub listener: forwarding to it from a pod or the node is a loop, so
# read the file that lists the real upstreams instead (what kubelet and kubeadm do too).
SYSTEMD_RESOLVED_STUB = "127.0.0.53"
SYSTEMD_RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """One upstream endpoint: an IP address, a port and how to talk to it."""

    host: str
    port: int
    transport: Transport = "dns"
    tls_servername: str | None = None

    def __post_init__(self) -> None:
        if self.transport not in DEFAULT_PORTS:
            raise ValueError(f"unsupported transport {self.transport!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range 1-65535")
        if self.tls_servername is not None and self.transport != "tls":
            raise ValueError("a TLS server name needs the tls transport")

    @classmethod
    def parse(cls, text: str, *, default_tls_servername: str | None = None) -> UpstreamAddress:
        """Parse `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:53`, `dns://1.2.3.4`,
        `tls://1.2.3.4:853`, `tls://[::1]`, and CoreDNS's per-endpoint server name
        `tls://9.9.9.9%dns.quad9.net:10853`. Default ports are 53 (dns) and 853 (tls).

        `default_tls_servername` (the `tls_servername` option) applies to tls endpoints; like
        CoreDNS, giving it together with a per-endpoint `%name` is an error.
        """
        rest = text.strip()
        if not rest:
            raise ValueError("empty upstream address")
        transport: Transport = "dns"
        scheme, sep, after = rest.partition("://")
        if sep:
            scheme = scheme.lower()
            if scheme == "dns":
                transport = "dns"
            elif scheme == "tls":
                transport = "tls"
            else:
                raise ValueError(
                    f"upstream {text!r}: unsupported protocol {scheme + '://'!r} "
                    "(expected dns:// or tls://)"
                )
            rest = after
        host, tail = _split_host(text, rest)
        servername: str | None = None
        if tail.startswith("%"):
            if transport != "tls":
                raise ValueError(f"upstream {text!r}: a %servername suffix needs tls://")
            servername, colon, port_text = tail[1:].partition(":")
            if not servername:
                raise ValueError(f"upstream {text!r}: empty TLS server name after '%'")
            if default_tls_servername is not None:
                raise ValueError(
                    f"upstream {text!r}: per-endpoint TLS server name clashes with tls_servername"
                )
            tail = colon + port_text
        port = DEFAULT_PORTS[transport]
        if tail:
            digits = tail[1:]
            if not tail.startswith(":") or not (digits.isascii() and digits.isdigit()):
                raise ValueError(f"upstream {text!r}: expected ':PORT' after the address")
            port = int(digits)
            if not 0 < port < 65536:
                raise ValueError(f"upstream {text!r}: port {port} out of range 1-65535")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"upstream {text!r}: {host!r} is not an IP address") from None
        if transport == "tls" and servername is None:
            servername = default_tls_servername
        return cls(str(ip), port, transport, servername)

    def __str__(self) -> str:
        """`host:port` as CoreDNS prints it (`[::1]:53` for IPv6): the `to` metric label."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def _split_host(text: str, rest: str) -> tuple[str, str]:
    """Split `rest` into the host and what follows it (`%name`, `:port`, both, or nothing)."""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise ValueError(f"upstream {text!r}: missing ']'")
        host = rest[1:close]
        if ":" not in host:
            raise ValueError(f"upstream {text!r}: brackets are only for IPv6 addresses")
        return host, rest[close + 1 :]
    if rest.count(":") > 1:  # a bare IPv6 address (possibly with a %zone) and no port
        return rest, ""
    cut = min((i for i in (rest.find("%"), rest.find(":")) if i >= 0), default=len(rest))
    if cut == 0:
        raise ValueError(f"upstream {text!r}: missing address")
    return rest[:cut], rest[cut:]


def _read_nameservers(path: str) -> list[str]:
    servers: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                servers.append(fields[1])
    return servers


def parse_resolv_conf(
    path: str, *, systemd_resolved_path: str = SYSTEMD_RESOLVED_CONF
) -> list[str]:
    """The `nameserver` addresses of a resolv.conf file, in order.

    If the file lists only systemd-resolved's stub (127.0.0.53) and `systemd_resolved_path`
    exists, the nameservers come from that file instead. Raises OSError if `path` is unreadable.
    """
    servers = _read_nameservers(path)
    if (
        servers
        and all(s == SYSTEMD_RESOLVED_STUB for s in servers)
        and os.path.exists(systemd_resolved_path)
    ):
        log.info(
            "upstream: %s only lists the systemd-resolved stub %s, using %s instead",
            path,
            SYSTEMD_RESOLVED_STUB,
            systemd_resolved_path,
        )
        return _read_nameservers(systemd_resolved_path)
    return servers
