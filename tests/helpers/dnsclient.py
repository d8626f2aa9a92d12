"""Loopback DNS client for tests: one query to 127.0.0.1 over UDP or TCP, via dnspython."""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rdataclass
import dns.rdatatype


def make_query(
    name: str,
    rdtype: str | int,
    *,
    payload: int | None = None,
    rdclass: str | int = dns.rdataclass.IN,
) -> dns.message.QueryMessage:
    kwargs: dict[str, object] = {}
    if payload is not None:
        kwargs = {"use_edns": 0, "payload": payload}
    query = dns.message.make_query(name, rdtype, rdclass, **kwargs)  # type: ignore[arg-type]
    return query


async def query(
    port: int,
    name: str,
    rdtype: str | int,
    *,
    tcp: bool = False,
    payload: int | None = None,
    timeout: float = 2.0,
    rdclass: str | int = dns.rdataclass.IN,
) -> dns.message.Message:
    """Ask 127.0.0.1:``port``; ``payload`` adds EDNS with that UDP size."""
    message = make_query(name, rdtype, payload=payload, rdclass=rdclass)
    if tcp:
        return await dns.asyncquery.tcp(message, "127.0.0.1", port=port, timeout=timeout)
    return await dns.asyncquery.udp(message, "127.0.0.1", port=port, timeout=timeout)
