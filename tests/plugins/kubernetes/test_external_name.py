"""An ExternalName Service pointing outside the cluster: CNAME plus the target's
addresses, looked up through the server (forward here), as CoreDNS's upstream does."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rdatatype

from tests.helpers.responder import Responder
from tests.helpers.server import running_server

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: search, namespace: default}
spec: {type: ExternalName, externalName: www.example.com}
"""


async def test_external_name_target_is_resolved_through_the_server(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "search.yaml").write_text(MANIFEST)
    async with Responder() as upstream:
        text = (
            ".:0 {\n  bind 127.0.0.1\n"
            f"  kubernetes cluster.local {{\n    manifests {folder}\n  }}\n"
            f"  forward . 127.0.0.1:{upstream.port}\n}}\n"
        )
        async with running_server(text, tmp_path=tmp_path) as server:
            assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
            for _ in range(2):  # the second time through the fast path's decision too
                query = dns.message.make_query("search.default.svc.cluster.local.", "A")
                reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=3)
                types = [rrset.rdtype for rrset in reply.answer]
                assert types == [dns.rdatatype.CNAME, dns.rdatatype.A], reply
                assert reply.answer[0][0].target.to_text() == "www.example.com."
                assert reply.answer[1].name.to_text() == "www.example.com."
                assert reply.answer[1][0].address == "192.0.2.1"
            cname_only = dns.message.make_query("search.default.svc.cluster.local.", "CNAME")
            reply = await dns.asyncquery.udp(cname_only, "127.0.0.1", port=server.port, timeout=3)
            assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME]


LOOP = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: self, namespace: default}
  spec: {type: ExternalName, externalName: self.default.svc.cluster.local}
- apiVersion: v1
  kind: Service
  metadata: {name: ping, namespace: default}
  spec: {type: ExternalName, externalName: pong.default.svc.cluster.local}
- apiVersion: v1
  kind: Service
  metadata: {name: pong, namespace: default}
  spec: {type: ExternalName, externalName: ping.default.svc.cluster.local}
"""


async def test_external_name_loops_end_where_they_close(tmp_path: Path) -> None:
    """Each CNAME of a loop once (a wire reply may not repeat a record of an RRset)."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "loop.yaml").write_text(LOOP)
    text = f".:0 {{\n  kubernetes cluster.local {{\n    manifests {folder}\n  }}\n}}\n"
    async with running_server(text, tmp_path=tmp_path) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        for name, chain in [
            ("self", ["self"]),
            ("ping", ["ping", "pong"]),
            ("pong", ["pong", "ping"]),
        ]:
            query = dns.message.make_query(f"{name}.default.svc.cluster.local.", "A")
            wire = await _exchange(query.to_wire(), server.port)
            # dnspython merges repeated records when it parses: count them on the wire.
            assert int.from_bytes(wire[6:8], "big") == len(chain)
            reply = dns.message.from_wire(wire)
            owners = [rrset.name.labels[0].decode() for rrset in reply.answer]
            assert owners == chain, reply


async def _exchange(wire: bytes, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, wire)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), 3)
