"""DNS over TLS: TCP framing inside TLS, certificate checks, connection reuse."""

from __future__ import annotations

import asyncio

import pytest

from clusterdns.upstream import (
    Upstream,
    UpstreamAddress,
    UpstreamConnectError,
    UpstreamTimeout,
    probe,
)
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.upstream.conftest import TLS_SERVERNAME, TLSFiles
from tests.upstream.test_exchange import _answers, deadline_in, make_query


def tls_upstream(r: Responder, files: TLSFiles, servername: str | None) -> Upstream:
    address = UpstreamAddress("127.0.0.1", r.port, "tls", servername)
    return Upstream(address, tls_context=files.client_context())


@pytest.mark.parametrize("servername", [TLS_SERVERNAME, None], ids=["by name", "by IP SAN"])
async def test_tls_exchange_and_reuse(
    tls_responder: Responder, tls_files: TLSFiles, servername: str | None
) -> None:
    up = tls_upstream(tls_responder, tls_files, servername)
    for qid in (1, 2, 3):
        # the client's protocol and prefer_udp do not matter: TLS upstreams always use TLS
        reply = await up.exchange(make_query(qid=qid), deadline=deadline_in(5), prefer_udp=True)
        assert reply[:2] == qid.to_bytes(2, "big")
        assert _answers(reply) == [DEFAULT_ADDRESS]
    assert tls_responder.count("tls") == 3
    assert tls_responder.count("udp") == 0
    assert tls_responder.tcp_connections == 1
    await up.close()


async def test_tls_wrong_servername_is_a_connect_error(
    tls_responder: Responder, tls_files: TLSFiles
) -> None:
    up = tls_upstream(tls_responder, tls_files, "not-the-name.test")
    with pytest.raises(UpstreamConnectError, match="certificate"):
        await up.exchange(make_query(), deadline=deadline_in(5))
    await up.close()


async def test_tls_untrusted_certificate(tls_responder: Responder) -> None:
    # the default context trusts the system CAs only
    up = Upstream(UpstreamAddress("127.0.0.1", tls_responder.port, "tls", TLS_SERVERNAME))
    with pytest.raises(UpstreamConnectError):
        await up.exchange(make_query(), deadline=deadline_in(5))
    await up.close()


async def test_tls_to_plain_tcp_server_fails(responder: Responder, tls_files: TLSFiles) -> None:
    up = tls_upstream(responder, tls_files, TLS_SERVERNAME)
    start = asyncio.get_running_loop().time()
    with pytest.raises((UpstreamConnectError, UpstreamTimeout)):
        await up.exchange(make_query(), deadline=start + 1)
    assert asyncio.get_running_loop().time() - start < 1.3
    await up.close()


async def test_tls_stale_connection_retry(tls_responder: Responder, tls_files: TLSFiles) -> None:
    up = tls_upstream(tls_responder, tls_files, TLS_SERVERNAME)
    await up.exchange(make_query(), deadline=deadline_in(5))
    tls_responder.tcp_close_without_reply = 1
    assert _answers(await up.exchange(make_query(), deadline=deadline_in(5))) == [DEFAULT_ADDRESS]
    assert tls_responder.tcp_connections == 2
    await up.close()


async def test_tls_probe(tls_responder: Responder, tls_files: TLSFiles) -> None:
    up = tls_upstream(tls_responder, tls_files, TLS_SERVERNAME)
    tls_responder.mode = "refused"
    assert await probe(up, timeout=5)
    assert [q.transport for q in tls_responder.received] == ["tls"]
    await up.close()
