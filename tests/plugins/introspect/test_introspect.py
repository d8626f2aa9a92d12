"""introspect: its Corefile syntax, and /explain, /records and /cache of a running server
over the demo cluster with forward to a loopback responder and a cache in front.

Expected values come from the demo manifests (read here with PyYAML) and from the DNS
schema's rules, not from the server's own output."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import dns.rcode
import pytest
import yaml

from clusterdns.cli import demo_cluster_dir
from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.introspect import Introspect
from tests.helpers.dnsclient import query
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.helpers.server import RunningServer, demo_corefile, running_server

pytestmark = pytest.mark.timeout(30)

DEMO = Path(demo_cluster_dir())


def demo_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(DEMO.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def demo(kind: str, name: str) -> dict[str, Any]:
    for obj in demo_objects():
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind} {name}")


# --- setup ----------------------------------------------------------------------------------


def build(body: str) -> Introspect:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("introspect")
    assert isinstance(plugin, Introspect)
    return plugin


@pytest.mark.parametrize(
    ("body", "address"),
    [
        ("introspect", ("127.0.0.1", 8182)),
        ("introspect 127.0.0.1:9999", ("127.0.0.1", 9999)),
        ("introspect [::1]:8183", ("::1", 8183)),
        ("introspect localhost", ("localhost", 8182)),
    ],
    ids=["default is loopback", "loopback port", "ipv6 loopback", "host only"],
)
def test_addresses(body: str, address: tuple[str, int]) -> None:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    routes = instance.services.routes
    assert set(routes) == {address}
    assert set(routes[address]) == {"/", "/records", "/cache", "/explain"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("introspect :8182", "Corefile:2: introspect: needs an explicit host"),
        ("introspect 127.0.0.1:8182 extra", "Corefile:2:"),
        ("introspect 127.0.0.1:99999", "Corefile:2: introspect: port out of range"),
        ("introspect\nintrospect", "Corefile:3: introspect: this plugin can only be used once"),
        ("introspect {\n  foo\n}", "Corefile:2:"),
    ],
    ids=["every interface", "two args", "bad port", "twice", "block"],
)
def test_errors_name_file_and_line(body: str, message: str) -> None:
    with pytest.raises(CorefileError) as err:
        build(body)
    assert str(err.value).startswith(message), str(err.value)


def test_non_loopback_address_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clusterdns.plugins.introspect"):
        build("introspect 0.0.0.0:8182")
    assert "not loopback" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clusterdns.plugins.introspect"):
        build("introspect 127.0.0.1:8182")
    assert caplog.text == ""


# --- a running server -----------------------------------------------------------------------


@dataclass
class Setup:
    server: RunningServer
    upstream: Responder
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port('127.0.0.1', 0)}"

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.base + path, params=params) as response:
            return response.status, await response.json()

    async def explain(self, name: str, qtype: str = "A") -> dict[str, Any]:
        status, data = await self.get("/explain", name=name, type=qtype)
        assert status == 200, data
        return data


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with (
        Responder() as upstream,
        running_server(demo_corefile(upstream.port)) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Setup(server, upstream, http)


def ips_of(obj: dict[str, Any]) -> set[str]:
    return {obj["status"]["podIP"]} if "status" in obj else set()


def web_pod_ips() -> set[str]:
    found: set[str] = set()
    for obj in demo_objects():
        if obj.get("kind") == "Pod" and obj["spec"].get("subdomain") == "web":
            found |= ips_of(obj)
    return found


def answer_values(data: dict[str, Any], rtype: str) -> set[str]:
    values = set()
    for line in data["answer"]:
        parts = line.split()
        if parts[3] == rtype:
            values.add(" ".join(parts[4:]))
    return values


# One row per rule: (question, expected rcode, expected plugin+rule of the first step,
# the records of one type the answer must hold).
MYSQL_IP = demo("Service", "mysql-service")["spec"]["clusterIP"]
SEARCH_TARGET = demo("Service", "search")["spec"]["externalName"].rstrip(".") + "."
RULES = [
    ("mysql-service.default.svc.cluster.local.", "NOERROR", ("kubernetes", "clusterip"),
     ("A", {MYSQL_IP})),
    ("web.default.svc.cluster.local.", "NOERROR", ("kubernetes", "headless-endpoint"),
     ("A", web_pod_ips())),
    ("search.default.svc.cluster.local.", "NOERROR", ("kubernetes", "externalname-cname"),
     ("CNAME", {SEARCH_TARGET})),
    ("10-244-1-7.default.pod.cluster.local.", "NOERROR", ("kubernetes", "pod-record"),
     ("A", {"10.244.1.7"})),
    ("mysql-service.nope.svc.cluster.local.", "NXDOMAIN", ("kubernetes", "nxdomain-namespace"),
     ("A", set())),
    ("nope.default.svc.cluster.local.", "NXDOMAIN", ("kubernetes", "nxdomain-service"),
     ("A", set())),
    ("api.example.com.", "NOERROR", ("forward", "forwarded"), ("A", {DEFAULT_ADDRESS})),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "rcode", "rule", "records"),
    RULES,
    ids=[f"{name} A → {rule[1]}" for name, _, rule, _ in RULES],
)
async def test_explain_rule(
    setup: Setup, name: str, rcode: str, rule: tuple[str, str], records: tuple[str, set[str]]
) -> None:
    data = await setup.explain(name)
    assert data["rcode"] == rcode
    first = data["why"][0]
    assert (first["plugin"], first["rule"]) == rule, data["why"]
    rtype, values = records
    assert answer_values(data, rtype) == values
    # The explanation is the server's own answer: a client asking gets the same records.
    reply = await query(setup.server.port, name, "A")
    assert dns.rcode.to_text(reply.rcode()) == rcode
    got = {r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rtype)
           for r in rrset}  # fmt: skip
    assert got == values


async def test_explain_forwarded_names_the_upstream_and_then_the_cache(setup: Setup) -> None:
    first = await setup.explain("fresh.example.org.")
    steps = [(s["plugin"], s["rule"]) for s in first["why"]]
    assert steps == [("forward", "forwarded"), ("cache", "stored-in-cache")]
    assert f"127.0.0.1:{setup.upstream.port}" in first["why"][0]["detail"]
    assert [r.qname for r in setup.upstream.received] == ["fresh.example.org."]
    # Asked again: the cache answers, the upstream is not asked, the time left is said.
    again = await setup.explain("fresh.example.org.")
    (step,) = again["why"]
    assert (step["plugin"], step["rule"]) == ("cache", "cached")
    assert 0 < step["ttl_left"] <= 30
    assert "stored from forward" in step["detail"]
    assert len(setup.upstream.received) == 1
    assert answer_values(again, "A") == {DEFAULT_ADDRESS}


async def test_explain_cached_after_a_client_query(setup: Setup) -> None:
    reply = await query(setup.server.port, "cached.example.org.", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    data = await setup.explain("cached.example.org.")
    assert [(s["plugin"], s["rule"]) for s in data["why"]] == [("cache", "cached")]
    assert data["plugin"] == "cache"


async def test_explain_reports_the_reply_memo(setup: Setup) -> None:
    for _ in range(3):
        await query(setup.server.port, "mysql-service.default.svc.cluster.local.", "A")
    data = await setup.explain("mysql-service.default.svc.cluster.local.")
    assert data["memo"]["copies"] >= 1
    assert data["memo"]["kept"] == "until the data changes"
    other = await setup.explain("kube-dns.kube-system.svc.cluster.local.", "AAAA")
    assert other["memo"] == {"copies": 0}


@pytest.mark.parametrize(
    ("params", "status"),
    [({}, 400), ({"name": "a..b"}, 400), ({"name": "x.example.", "type": "NOPE"}, 400)],
    ids=["no name", "bad name", "bad type"],
)
async def test_explain_bad_questions(setup: Setup, params: dict[str, str], status: int) -> None:
    got, data = await setup.get("/explain", **params)
    assert got == status
    assert "error" in data


async def test_records_lists_the_demo_cluster(setup: Setup) -> None:
    status, data = await setup.get("/records")
    assert status == 200
    (group,) = data["plugins"]
    assert group["plugin"] == "kubernetes"
    names = {row["name"]: row for row in group["names"]}
    for obj in demo_objects():
        if obj.get("kind") != "Service":
            continue
        namespace = obj["metadata"].get("namespace", "default")
        assert f"{obj['metadata']['name']}.{namespace}.svc.cluster.local." in names
    mysql = names["mysql-service.default.svc.cluster.local."]
    assert mysql["rule"] == "clusterip"
    assert f"mysql-service.default.svc.cluster.local. 30 IN A {MYSQL_IP}" in mysql["records"]
    assert names["web-0.web.default.svc.cluster.local."]["rule"] == "endpoint"
    assert names["search.default.svc.cluster.local."]["records"] == [
        f"search.default.svc.cluster.local. 30 IN CNAME {SEARCH_TARGET}"
    ]
    assert names["_mysql._tcp.mysql-service.default.svc.cluster.local."]["rule"] == "srv-port"


async def test_records_select_a_name_or_zone(setup: Setup) -> None:
    status, data = await setup.get("/records", name="web.default.svc.cluster.local")
    assert status == 200
    names = {row["name"] for row in data["plugins"][0]["names"]}
    ports = {
        f"_{port['name']}._{port.get('protocol', 'TCP').lower()}.web.default.svc.cluster.local."
        for port in demo("Service", "web")["spec"]["ports"]
        if port.get("name")
    }
    assert ports  # a headless Service's named ports have SRV names
    assert names == {
        "web.default.svc.cluster.local.",
        "web-0.web.default.svc.cluster.local.",
        "web-1.web.default.svc.cluster.local.",
        *ports,
    }
    status, data = await setup.get("/records", zone="shared.svc.cluster.local.")
    names = {row["name"] for row in data["plugins"][0]["names"]}
    assert "queue.shared.svc.cluster.local." in names
    assert all(name.endswith(".shared.svc.cluster.local.") for name in names)


async def test_cache_lists_entries_with_time_left(setup: Setup) -> None:
    await query(setup.server.port, "one.example.org.", "A")
    await query(setup.server.port, "gone.example.org.", "AAAA")  # NODATA: a denial entry
    status, data = await setup.get("/cache")
    assert status == 200
    (cache,) = data["caches"]
    entries = {(e["name"], e["type"]): e for e in cache["entries"]}
    one = entries[("one.example.org.", "A")]
    assert one["kind"] == "success"
    assert one["stored_from"] == "forward"
    assert 0 < one["ttl_left"] <= one["ttl"] <= 30
    assert entries[("gone.example.org.", "AAAA")]["kind"] == "denial"
    # Kubernetes answers are kept ready by their plugin, never in the cache.
    await query(setup.server.port, "mysql-service.default.svc.cluster.local.", "A")
    _, data = await setup.get("/cache")
    assert not any(".svc.cluster.local." in e["name"] for e in data["caches"][0]["entries"])
    assert set(data["reply_memo"]) == {"entries", "hits"}


async def test_other_record_plugins_across_blocks(tmp_path: Path) -> None:
    zone = tmp_path / "db.example.org"
    zone.write_text(
        "$ORIGIN example.org.\n@ 300 SOA ns admin 1 7200 3600 1209600 300\n"
        "@ 300 NS ns\nns 300 A 192.0.2.53\nwww 300 A 192.0.2.80\n"
    )
    text = f"""\
example.org:0 {{
    file {zone}
}}
.:0 {{
    introspect 127.0.0.1:0
    hosts {{
        10.0.0.1 h.example.net
    }}
}}
"""
    async with running_server(text, tmp_path=tmp_path) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.http_port('127.0.0.1', 0)}"
        async with http.get(base + "/records") as response:
            data = await response.json()
        plugins = {group["plugin"]: group for group in data["plugins"]}
        assert set(plugins) == {"file", "hosts"}
        names = {row["name"]: row for row in plugins["file"]["names"]}
        assert names["www.example.org."]["records"] == ["www.example.org. 300 IN A 192.0.2.80"]
        assert names["www.example.org."]["rule"] == "zone-file"
        hosts = {row["name"]: row for row in plugins["hosts"]["names"]}
        assert hosts["h.example.net."]["records"] == ["h.example.net. 3600 IN A 10.0.0.1"]
        assert hosts["1.0.0.10.in-addr.arpa."]["records"] == [
            "1.0.0.10.in-addr.arpa. 3600 IN PTR h.example.net."
        ]
        for name, rule in (("www.example.org.", "zone-file"), ("h.example.net.", "hosts-entry")):
            async with http.get(base + "/explain", params={"name": name}) as response:
                explained = await response.json()
            assert [step["rule"] for step in explained["why"]] == [rule]
            assert explained["rcode"] == "NOERROR"
