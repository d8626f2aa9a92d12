"""Options that change what the cluster looks like: filters, pods modes, fallthrough, ttl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.rcode
import pytest

from tests.helpers.dnsclient import query
from tests.helpers.server import running_server
from tests.plugins.kubernetes.cluster import corefile, objects, write_manifests

S = ".testns.svc.cluster.local."
Expect = tuple[str, str, str, set[str]]  # qname, qtype, rcode, answer rdata texts
LONG_POD = "statefulset-" + "x" * 52  # 64 characters


def pod_slice() -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": "named-a",
            "namespace": "testns",
            "labels": {"kubernetes.io/service-name": "named"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["172.0.0.40"],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "testns"},
            },
            {
                # A Pod name can be 253 characters; one over 63 cannot be a DNS label, and
                # the endpoint keeps its dashed-IP name (as CoreDNS since 1.8.7).
                "addresses": ["172.0.0.41"],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": LONG_POD, "namespace": "testns"},
            },
        ],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }


def named_service() -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "named", "namespace": "testns"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
    }


CASES = [
    pytest.param("namespaces testns", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
        ("svc2.other.svc.cluster.local.", "A", "NXDOMAIN", set()),
        ("other.svc.cluster.local.", "A", "NXDOMAIN", set()),
        ("2.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", set()),
    ], id="namespaces"),
    pytest.param("labels app=one", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
        ("svc2.other.svc.cluster.local.", "A", "NXDOMAIN", set()),
        ("hdls1" + S, "A", "NXDOMAIN", set()),
        ("2.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", set()),
        ("1.0.0.10.in-addr.arpa.", "PTR", "NOERROR", {"svc1" + S}),
    ], id="labels"),
    pytest.param("namespace_labels team in (a)", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
        ("svc2.other.svc.cluster.local.", "A", "NXDOMAIN", set()),
        ("other.svc.cluster.local.", "A", "NXDOMAIN", set()),
        ("testns.svc.cluster.local.", "A", "NOERROR", set()),
    ], id="namespace_labels"),
    pytest.param("ignore empty_service", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
        ("svcempty" + S, "A", "NXDOMAIN", set()),
        ("9.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", set()),
        ("hdls1" + S, "A", "NOERROR", {"172.0.0.2", "172.0.0.3", "172.0.0.4", "172.0.0.5"}),
        ("external" + S, "CNAME", "NOERROR", {"ext.interwebs.test."}),
    ], id="ignore empty_service"),
    pytest.param("noendpoints", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
        ("ep1a.svc1" + S, "A", "NXDOMAIN", set()),
        ("hdls1" + S, "A", "NXDOMAIN", set()),
        ("2.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN", set()),
    ], id="noendpoints"),
    pytest.param("endpoint_pod_names", [
        ("web-0.named" + S, "A", "NOERROR", {"172.0.0.40"}),
        ("172-0-0-40.named" + S, "A", "NXDOMAIN", set()),
        ("40.0.0.172.in-addr.arpa.", "PTR", "NOERROR", {"web-0.named" + S}),
        ("_http._tcp.named" + S, "SRV", "NOERROR",
         {"0 50 80 web-0.named" + S, "0 50 80 172-0-0-41.named" + S}),
        ("172-0-0-41.named" + S, "A", "NOERROR", {"172.0.0.41"}),
        (LONG_POD[:63] + ".named" + S, "A", "NXDOMAIN", set()),
        ("41.0.0.172.in-addr.arpa.", "PTR", "NOERROR", {"172-0-0-41.named" + S}),
        ("dup-name.hdls1" + S, "A", "NOERROR", {"172.0.0.4", "172.0.0.5"}),
    ], id="endpoint_pod_names"),
    pytest.param("pods verified", [
        ("10-240-0-1.testns.pod.cluster.local.", "A", "NOERROR", {"10.240.0.1"}),
        ("10-240-0-1.other.pod.cluster.local.", "A", "NXDOMAIN", set()),
        ("1-2-3-4.testns.pod.cluster.local.", "A", "NXDOMAIN", set()),
        ("testns.pod.cluster.local.", "A", "NOERROR", set()),
    ], id="pods verified"),
    pytest.param("pods disabled", [
        ("10-240-0-1.testns.pod.cluster.local.", "A", "NXDOMAIN", set()),
        ("testns.pod.cluster.local.", "A", "NXDOMAIN", set()),
        ("pod.cluster.local.", "A", "NOERROR", set()),
    ], id="pods disabled"),
    pytest.param("ttl 30", [
        ("svc1" + S, "A", "NOERROR", {"10.0.0.1"}),
    ], id="ttl"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "expectations"), CASES)
async def test_option(tmp_path: Path, option: str, expectations: list[Expect]) -> None:
    folder = write_manifests(tmp_path / "m", [*objects(), named_service(), pod_slice()])
    async with running_server(corefile(f"manifests {folder}", extra=option)) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        for qname, qtype, rcode, answer in expectations:
            response = await query(server.port, qname, qtype)
            assert dns.rcode.to_text(response.rcode()) == rcode, (qname, qtype, response.to_text())
            got = {rdata.to_text() for rrset in response.answer for rdata in rrset}
            assert got == answer, (qname, qtype, response.to_text())
            if option == "ttl 30":
                assert all(rrset.ttl == 30 for rrset in response.answer)


async def test_fallthrough(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m")
    text = (
        "cluster.local:0 in-addr.arpa:0 {\n"
        f"    kubernetes cluster.local in-addr.arpa {{\n        manifests {folder}\n"
        "        fallthrough in-addr.arpa\n    }\n    whoami\n}\n"
    )
    async with running_server(text) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        # An unknown reverse name goes to whoami; an unknown cluster name does not.
        reverse = await query(server.port, "9.9.9.9.in-addr.arpa.", "PTR")
        assert reverse.rcode() == dns.rcode.NOERROR and not reverse.authority
        assert reverse.additional, "whoami answers in the additional section"
        known = await query(server.port, "1.0.0.10.in-addr.arpa.", "PTR")
        assert known.answer
        missing = await query(server.port, "svc0.testns.svc.cluster.local.", "A")
        assert missing.rcode() == dns.rcode.NXDOMAIN


async def test_manifests_edit_propagates(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m")
    async with running_server(corefile(f"manifests {folder}")) as server:
        plugin = server.plugin("kubernetes")
        assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
        generation = plugin.generation  # type: ignore[attr-defined]
        (folder / "new.yaml").write_text(
            "kind: Service\napiVersion: v1\nmetadata: {name: late, namespace: testns}\n"
            "spec: {clusterIP: 10.0.0.77, ports: [{name: http, port: 80}]}\n"
        )
        plugin.source.poll_once(plugin.model)  # type: ignore[attr-defined]
        response = await query(server.port, "late" + S, "A")
        assert {r.to_text() for rrset in response.answer for r in rrset} == {"10.0.0.77"}
        assert plugin.generation > generation  # type: ignore[attr-defined]


MULTICLUSTER = [
    # The cluster's own zone is unchanged.
    ("svc1.testns.svc.cluster.local.", "A", "NOERROR", {"10.0.0.1"}),
    # The clusterset zone holds ServiceImports (test_multicluster.py), not Services: a
    # cluster without any has no name below <ns>.svc there.
    ("svc1.testns.svc.clusterset.local.", "A", "NXDOMAIN", set()),
    ("svc1.testns.svc.clusterset.local.", "SRV", "NXDOMAIN", set()),
    ("ep1a.svc1.testns.svc.clusterset.local.", "A", "NXDOMAIN", set()),
    # What the zone holds without ServiceImports: its apex and the namespaces (NODATA).
    ("testns.svc.clusterset.local.", "A", "NOERROR", set()),
    ("clusterset.local.", "SOA", "NOERROR", {"ns.dns.clusterset.local."}),
    ("dns-version.clusterset.local.", "TXT", "NOERROR", {'"1.1.0"'}),
]


async def test_multicluster_zone_without_service_imports(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m")
    text = corefile(
        f"manifests {folder}",
        extra="multicluster clusterset.local",
        zones="cluster.local clusterset.local",
    )
    async with running_server(text) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        for qname, qtype, rcode, answer in MULTICLUSTER:
            response = await query(server.port, qname, qtype)
            assert dns.rcode.to_text(response.rcode()) == rcode, (qname, qtype, response.to_text())
            got = {rdata.to_text().split()[0] for rrset in response.answer for rdata in rrset}
            if qtype != "SOA":
                got = {rdata.to_text() for rrset in response.answer for rdata in rrset}
            assert got == answer, (qname, qtype, response.to_text())
            if rcode == "NXDOMAIN":
                assert response.authority[0].name.to_text() == "clusterset.local."
