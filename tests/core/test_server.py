"""The DNS server core through real clients: transports, EDNS, truncation, rcodes."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import struct
import subprocess
import time

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from tests.core.conftest import serve

AUTHORS = " ".join(f"author-number-{i:03d}-with-a-long-name" for i in range(60))

BASIC = f"""
example.org:0 {{
    bind 127.0.0.1 ::1
    chaos v1 {AUTHORS}
    whoami
}}
.:0 {{
    bind 127.0.0.1 ::1
    any
    chaos v2 {AUTHORS}
}}
"""


async def ask(
    port: int,
    name: str,
    rdtype: str = "A",
    *,
    tcp: bool = False,
    host: str = "127.0.0.1",
    rdclass: str = "IN",
    **kwargs: object,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, rdclass, **kwargs)  # type: ignore[arg-type]
    if tcp:
        return await dns.asyncquery.tcp(query, host, port=port, timeout=3)
    return await dns.asyncquery.udp(query, host, port=port, timeout=3, ignore_trailing=True)


async def test_udp_tcp_ipv4_ipv6_and_zone_mux(tmp_path: pathlib.Path) -> None:
    async with serve(BASIC, tmp_path) as srv:
        port = srv.port()
        assert srv.port("::1") == port
        for tcp in (False, True):
            for host in ("127.0.0.1", "::1"):
                # example.org → first block (whoami), anything else → root block (any).
                reply = await ask(port, "www.example.org.", tcp=tcp, host=host)
                assert reply.rcode() == dns.rcode.NOERROR
                srv_rr = next(r for r in reply.additional if r.rdtype == dns.rdatatype.SRV)
                assert srv_rr.name.labels[0] == (b"_tcp" if tcp else b"_udp")
                version = await ask(port, "version.bind.", "TXT", rdclass="CH", tcp=tcp, host=host)
                assert version.answer[0][0].strings == (b"v2",)
        hinfo = await ask(port, "other.net.", "ANY")
        assert hinfo.answer[0].rdtype == dns.rdatatype.HINFO


async def test_question_case_echoed(tmp_path: pathlib.Path) -> None:
    async with serve(BASIC, tmp_path) as srv:
        reply = await ask(srv.port(), "WwW.ExAmPlE.oRg.")
        assert reply.question[0].name.to_text() == "WwW.ExAmPlE.oRg."
        assert reply.additional[0].name.to_text() == "WwW.ExAmPlE.oRg."


@pytest.mark.parametrize(
    ("payload", "tcp", "truncated"),
    [
        pytest.param(None, False, True, id="no EDNS → 512 and TC"),
        pytest.param(1232, False, True, id="EDNS 1232 → TC"),
        pytest.param(65000, False, False, id="EDNS 65000 capped at 4096 → fits"),
        pytest.param(None, True, False, id="TCP → whole answer"),
    ],
)
async def test_edns_sizes_and_truncation(
    tmp_path: pathlib.Path, payload: int | None, tcp: bool, truncated: bool
) -> None:
    async with serve(BASIC, tmp_path) as srv:
        query = dns.message.make_query("authors.bind.", "TXT", "CH")
        if payload is not None:
            query.use_edns(0, payload=payload)
        wire = query.to_wire()
        if tcp:
            reply = await dns.asyncquery.tcp(query, "127.0.0.1", port=srv.port(), timeout=3)
            size = len(reply.to_wire())
        else:
            raw = await _udp_raw(srv.port(), wire)
            size = len(raw)
            reply = dns.message.from_wire(raw)
        assert bool(reply.flags & dns.flags.TC) is truncated
        limit = 512 if payload is None else min(payload, 4096)
        if not tcp:
            assert size <= limit
        if payload is not None:
            assert reply.edns == 0 and reply.payload == 4096
        else:
            assert reply.edns == -1
        if not truncated:
            assert len(reply.answer[0]) == 60


async def test_dig_retries_truncated_answer_over_tcp(tmp_path: pathlib.Path) -> None:
    async with serve(BASIC, tmp_path) as srv:
        out = await asyncio.to_thread(
            subprocess.run,
            [
                "dig",
                "@127.0.0.1",
                "-p",
                str(srv.port()),
                "CH",
                "TXT",
                "authors.bind",
                "+noedns",
                "+noall",
                "+answer",
                "+comments",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        # dig saw TC over UDP, said so, and got everything over TCP.
        assert "Truncated, retrying in TCP mode" in out.stdout + out.stderr
        assert out.stdout.count("author-number") == 60
        assert "flags: qr aa rd;" in out.stdout  # the TCP answer itself is whole: no tc


async def _udp_raw(port: int, data: bytes, *, timeout: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, data)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
    finally:
        sock.close()


async def test_rcodes_refused_notimp_formerr_badvers_and_drop(tmp_path: pathlib.Path) -> None:
    text = "example.org:0 {\n  bind 127.0.0.1\n  whoami\n}\n"
    async with serve(text, tmp_path) as srv:
        port = srv.port()
        refused = await ask(port, "kubernetes.io.")
        assert refused.rcode() == dns.rcode.REFUSED

        notify = dns.message.make_query("example.org.", "SOA")
        notify.set_opcode(dns.opcode.UPDATE)
        reply = dns.message.from_wire(await _udp_raw(port, notify.to_wire()))
        assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == dns.opcode.UPDATE

        two_questions = (
            struct.pack("!HHHHHH", 0x1234, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2
        )
        formerr = dns.message.from_wire(await _udp_raw(port, two_questions))
        assert formerr.id == 0x1234 and formerr.rcode() == dns.rcode.FORMERR

        badvers = dns.message.make_query("example.org.", "A", use_edns=1)
        reply = dns.message.from_wire(await _udp_raw(port, badvers.to_wire()))
        assert reply.rcode() == dns.rcode.BADVERS

        with pytest.raises(TimeoutError):
            await _udp_raw(port, b"\x01\x02\x03", timeout=0.3)
        # Still serving after the garbage.
        assert (await ask(port, "example.org.")).rcode() == dns.rcode.NOERROR


async def test_tcp_pipelining_several_queries_one_connection(tmp_path: pathlib.Path) -> None:
    async with serve(BASIC, tmp_path) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port())
        ids = []
        for i in range(5):
            q = dns.message.make_query(f"n{i}.example.org.", "A")
            ids.append(q.id)
            wire = q.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        seen = []
        for _ in range(5):
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))
            seen.append(dns.message.from_wire(await reader.readexactly(length)).id)
        assert sorted(seen) == sorted(ids)
        writer.close()


async def test_tcp_idle_timeout_and_connection_limit(tmp_path: pathlib.Path) -> None:
    async with serve(BASIC, tmp_path) as srv:
        srv.app.server.options.tcp_idle_timeout = 0.3
        srv.app.server.options.tcp_max_connections = 2
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port())
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the server when idle
        writer.close()
        conns = [await asyncio.open_connection("127.0.0.1", srv.port()) for _ in range(2)]
        await asyncio.sleep(0.05)
        r3, w3 = await asyncio.open_connection("127.0.0.1", srv.port())
        assert await asyncio.wait_for(r3.read(), 1) == b""  # over the limit: closed at once
        for _, w in conns:
            w.close()
        w3.close()


@pytest.mark.parametrize("mode", ["batch", "thread", "loop"])
async def test_every_udp_mode_answers_and_truncates(tmp_path: pathlib.Path, mode: str) -> None:
    from clusterdns.core.lifecycle import App
    from clusterdns.core.process import Process
    from clusterdns.core.server import ServerOptions

    path = tmp_path / "Corefile"
    path.write_text(BASIC)
    app = App(config_path=str(path), process=Process(), options=ServerOptions(udp_mode=mode))
    await app.start()
    try:
        port = app.server.bound_port("127.0.0.1", 0)
        for i in range(20):
            reply = await ask(port, f"n{i}.example.org.")
            assert reply.rcode() == dns.rcode.NOERROR and reply.id
        big = dns.message.from_wire(
            await _udp_raw(port, dns.message.make_query("authors.bind.", "TXT", "CH").to_wire())
        )
        assert big.flags & dns.flags.TC
    finally:
        await app.shutdown()


@pytest.mark.parametrize("mode", ["batch", "thread"])
async def test_an_idle_receive_thread_stops_at_once(tmp_path: pathlib.Path, mode: str) -> None:
    """Shutdown wakes the receive thread blocked on the retired, idle socket, and the drain
    stops soon after the queue runs dry: before, each waited out the 0.25 s receive timeout
    (half a second per in-process server, minutes of this suite)."""
    from clusterdns.core.lifecycle import App
    from clusterdns.core.process import Process
    from clusterdns.core.server import ServerOptions

    path = tmp_path / "Corefile"
    path.write_text(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n")
    app = App(config_path=str(path), process=Process(), options=ServerOptions(udp_mode=mode))
    await app.start()
    try:
        reply = await ask(app.server.bound_port("127.0.0.1", 0), "who.example.org.")
        assert reply.rcode() == dns.rcode.NOERROR
    finally:
        started = time.monotonic()
        await app.shutdown()
        stopped = time.monotonic() - started
    assert stopped < 0.24, f"shutdown took {stopped:.3f} s"
