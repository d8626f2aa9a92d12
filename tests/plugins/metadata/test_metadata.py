"""metadata with the kubernetes plugin's labels, read by log formats ({/label}), for fast
and chain answers; the name parser; parsing of the directive."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.kubernetes.metadata import NameParts, parse_name
from clusterdns.plugins.log import Log
from clusterdns.plugins.metadata import Metadata
from tests.helpers.kubeapi import pod
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import objects, write_manifests

pytestmark = pytest.mark.timeout(30)

LABELS = (
    "kind", "namespace", "service", "endpoint", "port-name", "protocol",
    "client-namespace", "client-pod-name", "parse-error",
)  # fmt: skip
FORMAT = "|".join(f"{{/kubernetes/{label}}}" for label in LABELS)
COREFILE = """
cluster.local example.org {{
    metadata {metadata_zones}
    log . "{fmt}"
    kubernetes cluster.local {{
        manifests {folder}
        pods verified
    }}
    whoami
}}
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, io.StringIO]]:
    folder = write_manifests(tmp_path, [*objects(), pod("client", "testns", ip="127.0.0.7")])
    text = COREFILE.format(metadata_zones="", fmt=FORMAT, folder=folder)
    async with running_server(text, tmp_path=tmp_path) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        out = io.StringIO()
        log_plugin = running.plugin("log")
        assert isinstance(log_plugin, Log)
        log_plugin.stream = out
        yield running, out


async def logged(
    running: RunningServer, out: io.StringIO, name: str, rdtype: str, source: str
) -> dict[str, str]:
    out.seek(0)
    out.truncate()
    query = dns.message.make_query(name, rdtype)
    await dns.asyncquery.udp(query, "127.0.0.1", port=running.port, source=source, timeout=2)
    line = out.getvalue().strip()
    assert line.startswith("[INFO] ")
    values = line[len("[INFO] ") :].split("|")
    return dict(zip(LABELS, values, strict=True))


CASES = [
    pytest.param("svc1.testns.svc.cluster.local", "A", "127.0.0.7",
                 {"kind": "svc", "namespace": "testns", "service": "svc1", "endpoint": "", "port-name": "", "protocol": "",
                  "client-namespace": "testns", "client-pod-name": "client"}, id="service, from a known pod"),
    pytest.param("_http._tcp.svc1.testns.svc.cluster.local", "SRV", "127.0.0.9",
                 {"kind": "svc", "namespace": "testns", "service": "svc1", "port-name": "http", "protocol": "tcp"}, id="SRV port and protocol, unknown client"),
    pytest.param("ep1a.svc1.testns.svc.cluster.local", "A", "127.0.0.7",
                 {"kind": "svc", "service": "svc1", "endpoint": "ep1a", "client-pod-name": "client"}, id="endpoint"),
    pytest.param("10-240-0-1.testns.pod.cluster.local", "A", "127.0.0.7",
                 {"kind": "pod", "namespace": "testns", "service": "10-240-0-1"}, id="pod name"),
    pytest.param("a.b.c.d.svc1.testns.svc.cluster.local", "A", "127.0.0.9",
                 {"parse-error": "invalid query name", "kind": "-"}, id="too long: parse error"),
    pytest.param("x.example.org", "A", "127.0.0.7",
                 {"kind": "-", "namespace": "-", "client-namespace": "testns"}, id="outside the kubernetes zone: client labels only"),
    pytest.param("x.example.org", "A", "127.0.0.9",
                 {"kind": "-", "client-namespace": "-", "client-pod-name": "-"}, id="nothing known: '-'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "source", "expected"), CASES)
async def test_log_reads_kubernetes_metadata(
    server: tuple[RunningServer, io.StringIO],
    name: str,
    rdtype: str,
    source: str,
    expected: dict[str, str],
) -> None:
    running, out = server
    for _ in range(2):  # the first answer and a fast one
        values = await logged(running, out, name, rdtype, source)
        for label, value in expected.items():
            # An empty value leaves an empty field.
            assert values[label] == value, label


async def test_metadata_zones_limit_collection(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path, objects())
    text = COREFILE.format(metadata_zones="example.org", fmt=FORMAT, folder=folder)
    async with running_server(text, tmp_path=tmp_path) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        out = io.StringIO()
        log_plugin = running.plugin("log")
        assert isinstance(log_plugin, Log)
        log_plugin.stream = out
        values = await logged(running, out, "svc1.testns.svc.cluster.local", "A", "127.0.0.1")
        assert values["kind"] == "-" and values["service"] == "-"


async def test_without_metadata_labels_are_empty(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path, objects())
    text = COREFILE.format(metadata_zones="", fmt=FORMAT, folder=folder).replace(
        "    metadata \n", ""
    )
    assert "    metadata" not in text
    async with running_server(text, tmp_path=tmp_path) as running:
        out = io.StringIO()
        log_plugin = running.plugin("log")
        assert isinstance(log_plugin, Log)
        log_plugin.stream = out
        values = await logged(running, out, "svc1.testns.svc.cluster.local", "A", "127.0.0.1")
        assert set(values.values()) == {"-"}


@pytest.mark.parametrize(
    ("name", "zone", "expected"),
    [
        ("cluster.local.", "cluster.local.", NameParts()),
        ("svc.cluster.local.", "cluster.local.", NameParts()),
        ("testns.svc.cluster.local.", "cluster.local.", NameParts("svc", "testns")),
        ("a.testns.svc.cluster.local.", "cluster.local.", NameParts("svc", "testns", "a")),
        ("e.a.ns.svc.cluster.local.", "cluster.local.", NameParts("svc", "ns", "a", "e")),
        ("_p._udp.a.ns.svc.cluster.local.", "cluster.local.", NameParts("svc", "ns", "a", "", "p", "udp")),
        ("x.y.a.ns.svc.cluster.local.", "cluster.local.", NameParts("svc", "ns", "a", "", "x", "y")),
        ("a.ns.other.cluster.local.", "cluster.local.", None),
        ("w.x.y.a.ns.svc.cluster.local.", "cluster.local.", None),
        ("a.ns.svc.", ".", NameParts("svc", "ns", "a")),
    ],
)  # fmt: skip
def test_parse_name(name: str, zone: str, expected: NameParts | None) -> None:
    assert parse_name(name, zone) == expected


def test_setup() -> None:
    instance = build_instance(
        parse("example.org {\nmetadata\n}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("metadata")
    assert isinstance(plugin, Metadata) and plugin.zones == ("example.org.",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("metadata\nmetadata", "Corefile:3: metadata: this plugin can only be used once"),
        ("metadata {\nx\n}", "Corefile:2: metadata: unexpected block"),
        ("metadata a..b", "no valid zone"),  # a port on a zone is ignored, as in CoreDNS
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        build_instance(
            parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
        )
