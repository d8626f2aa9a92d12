"""An ExternalName Service pointing outside the cluster: CNAME plus the target's
addresses, looked up through the server (forward here), as CoreDNS's upstream does."""

from __future__ import annotations

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
