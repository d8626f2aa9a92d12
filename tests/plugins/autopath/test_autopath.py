"""autopath end to end: a real server, the kubernetes plugin on a manifests folder whose Pod
127.0.0.1 is the test client, and clients that are not Pods (127.0.0.2) or are Pods elsewhere."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.plugins.kubernetes.handler import Kubernetes
from tests.helpers.kubeapi import KubeAPIServer, pod
from tests.helpers.server import RunningServer, running_server
from tests.plugins.autopath.cluster import (
    MYSQL_IP,
    NOT_A_POD,
    OTHER_POD_IP,
    POD_IP,
    POD_SEARCH,
    GlibcStub,
    addresses,
    answer_text,
    ask,
    corefile,
    objects,
    write_manifests,
)

# The package exports the setup function under the module's name.
autopath_setup = importlib.import_module("clusterdns.plugins.autopath.setup")
SEARCH_NAME = "mysql.default.svc.cluster.local.default.svc.cluster.local."


@pytest.fixture(autouse=True)
def host_resolv_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's own resolv.conf: what @kubernetes appends after the cluster elements."""
    path = tmp_path / "host-resolv.conf"
    path.write_text("nameserver 192.0.2.1\nsearch example.internal corp.example\n")
    monkeypatch.setattr(autopath_setup, "HOST_RESOLV_CONF", str(path))
    return path


async def serve(tmp_path: Path, text: str) -> AsyncIterator[RunningServer]:
    async with running_server(text, tmp_path=tmp_path) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        yield server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    folder = write_manifests(tmp_path / "cluster", objects())
    async for running in serve(tmp_path, corefile(f"manifests {folder}")):
        yield running


# qname, client, expected rcode, expected answer (zone-file text)
CASES = [
    pytest.param(
        SEARCH_NAME, POD_IP, "NOERROR",
        [f"{SEARCH_NAME} 5 IN CNAME mysql.default.svc.cluster.local.",
         f"mysql.default.svc.cluster.local. 5 IN A {MYSQL_IP}"],
        id="mysql.default.svc.cluster.local + default search, pod → CNAME + A",
    ),
    pytest.param(
        "mysql.default.default.svc.cluster.local.", POD_IP, "NOERROR",
        ["mysql.default.default.svc.cluster.local. 5 IN CNAME mysql.default.svc.cluster.local.",
         f"mysql.default.svc.cluster.local. 5 IN A {MYSQL_IP}"],
        id="mysql.default + default search, pod → found under svc.cluster.local",
    ),
    pytest.param(
        "mysql.default.svc.cluster.local.", POD_IP, "NOERROR",
        [f"mysql.default.svc.cluster.local. 5 IN A {MYSQL_IP}"],
        id="mysql (first element exists) → plain A, no CNAME",
    ),
    pytest.param(
        "nowhere.default.svc.cluster.local.", POD_IP, "NXDOMAIN", [],
        id="a name that exists nowhere → NXDOMAIN",
    ),
    pytest.param(
        SEARCH_NAME, NOT_A_POD, "NXDOMAIN", [],
        id="client that is not a pod → no search-path answer",
    ),
    pytest.param(
        SEARCH_NAME, OTHER_POD_IP, "NXDOMAIN", [],
        id="pod of another namespace asking default's search name → no search-path answer",
    ),
    pytest.param(
        "mysql.default.svc.cluster.local.other.svc.cluster.local.", OTHER_POD_IP, "NOERROR",
        ["mysql.default.svc.cluster.local.other.svc.cluster.local. 5 IN CNAME "
         "mysql.default.svc.cluster.local.",
         f"mysql.default.svc.cluster.local. 5 IN A {MYSQL_IP}"],
        id="pod of other, its own search name → CNAME + A",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("qname", "client", "rcode", "answer"), CASES)
async def test_cases(
    server: RunningServer, qname: str, client: str, rcode: str, answer: list[str]
) -> None:
    reply = await ask(server.port, qname, source=client)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert answer_text(reply) == answer
    assert reply.question[0].name.to_text() == qname


async def test_question_keeps_client_letter_case(server: RunningServer) -> None:
    mixed = "MySQL.Default.svc.cluster.local.DEFAULT.svc.Cluster.Local."
    reply = await ask(server.port, mixed)
    assert reply.question[0].name.to_text() == mixed
    assert reply.answer[0].name.to_text() == mixed
    assert addresses(reply) == {MYSQL_IP}


async def test_nodata_everywhere_returns_the_first_reply(server: RunningServer) -> None:
    # No AAAA anywhere on the path (the bare name has only an A): the client's own NXDOMAIN.
    reply = await ask(server.port, SEARCH_NAME, "AAAA")
    assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer


async def test_success_metric(server: RunningServer) -> None:
    registry = server.app.process.metrics.registry
    label = {"server": "dns://127.0.0.1:0"}
    before = registry.get_sample_value("coredns_autopath_success_total", label) or 0.0
    await ask(server.port, SEARCH_NAME)
    await ask(server.port, SEARCH_NAME, source=NOT_A_POD)  # no autopath, no count
    assert registry.get_sample_value("coredns_autopath_success_total", label) == before + 1


async def test_kubernetes_model_watches_only_the_pod_ip_index(server: RunningServer) -> None:
    from clusterdns.sources.model import Kind

    model = server.plugin("kubernetes").model  # type: ignore[attr-defined]
    assert Kind.POD_IPS in model.kinds and Kind.PODS not in model.kinds
    assert model.pods_by_ip(POD_IP) == ()  # no Pod records kept
    assert model.pod_namespace(POD_IP) == "default"


# --- glibc's search order: six round trips become one ------------------------------------


@pytest.mark.parametrize(
    ("name", "without", "with_autopath"),
    [
        ("mysql.default.svc.cluster.local", 6, 1),
        ("mysql.default", 2, 1),
        ("mysql", 1, 1),
    ],
)
async def test_glibc_search_round_trips(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    without: int,
    with_autopath: int,
) -> None:
    served: list[str] = []
    original_serve = Kubernetes.serve

    async def counting_serve(self: Kubernetes, req, next_handler):  # type: ignore[no-untyped-def]
        served.append(req.name)
        return await original_serve(self, req, next_handler)

    # Patched before the chain is built, so the chain calls it.
    monkeypatch.setattr(Kubernetes, "serve", counting_serve)
    folder = write_manifests(tmp_path / "cluster", objects())
    results = {}
    for label, line in (("without", "# no autopath"), ("with", "autopath @kubernetes")):
        served.clear()  # count what the server did for the last configuration only
        async for server in serve(tmp_path, corefile(f"manifests {folder}", autopath=line)):
            stub = GlibcStub(server.port, POD_SEARCH)
            reply = await stub.resolve(name)
            results[label] = (len(stub.asked), addresses(reply))
    assert results["without"] == (without, {MYSQL_IP})
    assert results["with"] == (with_autopath, {MYSQL_IP})
    if name == "mysql.default.svc.cluster.local":
        # Server side, autopath walked the same path for the client: the one query went
        # down the chain and reached kubernetes for each cluster element (the host
        # elements and the bare name pass through it to the end of the chain).
        assert served.count(f"{name}.default.svc.cluster.local.") == 1
        assert served.count(f"{name}.example.internal.") == 1


async def test_glibc_a_and_aaaa_pair(server: RunningServer) -> None:
    # getaddrinfo asks A and AAAA for each candidate and stops when either has an answer.
    stub = GlibcStub(server.port, POD_SEARCH)
    a = await stub.resolve("mysql.default.svc.cluster.local", "A")
    assert len(stub.asked) == 1 and addresses(a) == {MYSQL_IP}


# --- IP reuse: the index follows the current owner -----------------------------------------


async def test_pod_ip_reused_in_another_namespace(tmp_path: Path) -> None:
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        text = corefile(f"endpoint {api.url}")
        async for server in serve(tmp_path, text):
            port = server.port
            assert (await ask(port, SEARCH_NAME)).rcode() == dns.rcode.NOERROR
            # The IP goes to a new Pod in "other" before the old Pod's deletion arrives.
            api.create(pod("newcomer", "other", ip=POD_IP))
            api.delete(pod("client", "default", ip=POD_IP))
            other_name = "mysql.default.svc.cluster.local.other.svc.cluster.local."
            for _ in range(200):
                reply = await ask(port, other_name)
                if reply.rcode() == dns.rcode.NOERROR:
                    break
                await asyncio.sleep(0.02)
            assert addresses(reply) == {MYSQL_IP}
            # The old Pod's late delete did not remove the newcomer; default's name is
            # no longer this client's search path.
            await asyncio.sleep(0.1)
            assert (await ask(port, other_name)).rcode() == dns.rcode.NOERROR
            assert (await ask(port, SEARCH_NAME)).rcode() == dns.rcode.NXDOMAIN


async def test_pod_moved_in_manifests(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "cluster", objects())
    async for server in serve(tmp_path, corefile(f"manifests {folder}")):
        assert (await ask(server.port, SEARCH_NAME)).rcode() == dns.rcode.NOERROR
        write_manifests(folder, objects(client_namespace="other"))
        model = server.plugin("kubernetes").model  # type: ignore[attr-defined]
        for _ in range(300):
            if model.pod_namespace(POD_IP) == "other":
                break
            await asyncio.sleep(0.02)
        assert (await ask(server.port, SEARCH_NAME)).rcode() == dns.rcode.NXDOMAIN


# --- the other modes ----------------------------------------------------------------------


async def test_coredns_compatible_with_pods_verified(tmp_path: Path) -> None:
    from clusterdns.sources.model import Kind

    folder = write_manifests(tmp_path / "cluster", objects())
    text = corefile(
        f"manifests {folder}",
        autopath="autopath @kubernetes {\n        coredns_compatible\n    }",
        extra="pods verified",
    )
    async for server in serve(tmp_path, text):
        model = server.plugin("kubernetes").model  # type: ignore[attr-defined]
        assert Kind.POD_IPS not in model.kinds  # the namespace comes from the Pod records
        reply = await ask(server.port, SEARCH_NAME)
        assert addresses(reply) == {MYSQL_IP}
        assert (await ask(server.port, SEARCH_NAME, source=NOT_A_POD)).rcode() == 3


async def test_coredns_compatible_needs_pods_verified(tmp_path: Path) -> None:
    from clusterdns.corefile import CorefileError

    folder = write_manifests(tmp_path / "cluster", objects())
    text = corefile(
        f"manifests {folder}", autopath="autopath @kubernetes {\n        coredns_compatible\n    }"
    )
    with pytest.raises(CorefileError, match="pods verified"):
        async with running_server(text, tmp_path=tmp_path):
            pass


async def test_default_mode_shares_the_pods_verified_watch(tmp_path: Path) -> None:
    from clusterdns.sources.model import Kind

    folder = write_manifests(tmp_path / "cluster", objects())
    async for server in serve(tmp_path, corefile(f"manifests {folder}", extra="pods verified")):
        model = server.plugin("kubernetes").model  # type: ignore[attr-defined]
        assert {Kind.PODS, Kind.POD_IPS} <= model.kinds
        assert addresses(await ask(server.port, SEARCH_NAME)) == {MYSQL_IP}


async def test_static_resolv_conf_answers_any_client(tmp_path: Path) -> None:
    resolv = tmp_path / "my-resolv.conf"
    resolv.write_text("search default.svc.cluster.local svc.cluster.local cluster.local\n")
    folder = write_manifests(tmp_path / "cluster", objects())
    text = corefile(f"manifests {folder}", autopath=f"autopath {resolv}")
    async for server in serve(tmp_path, text):
        reply = await ask(server.port, SEARCH_NAME, source=NOT_A_POD)
        assert addresses(reply) == {MYSQL_IP}
        assert reply.answer[0].to_text() == (
            f"{SEARCH_NAME} 5 IN CNAME mysql.default.svc.cluster.local."
        )
        # Not below the first element: untouched.
        reply = await ask(server.port, "mysql.other.svc.cluster.local.", source=NOT_A_POD)
        assert reply.rcode() == dns.rcode.NXDOMAIN


async def test_fast_path(server: RunningServer) -> None:
    import dns.message

    from clusterdns.core.fast import SLOW, FastReply
    from clusterdns.wire import parse_query

    autopath = server.plugin("autopath")

    def fast(name: str) -> object:
        wire = dns.message.make_query(name, "A").to_wire()
        return autopath.answer_fast(parse_query(wire), 512, 4096)  # type: ignore[attr-defined]

    # The name itself has an answer: that answer, whoever asks (serve() returns it as-is),
    # first sight included; never memoised (until 0).
    found = fast("mysql.default.svc.cluster.local.")
    assert isinstance(found, FastReply) and found.until == 0
    # A search-path candidate without an answer of its own needs the client: the chain.
    assert fast(SEARCH_NAME) is SLOW
    # Not of the <base>.<ns>.svc.<zone> shape: the rest of the fast path decides.
    assert fast("default.svc.cluster.local.") is None
    assert fast("example.org.") is None


async def test_cache_never_serves_a_pods_search_path_answer_to_another_client(
    tmp_path: Path,
) -> None:
    folder = write_manifests(tmp_path / "cluster", objects())
    text = corefile(f"manifests {folder}").replace("    autopath", "    cache 30\n    autopath")
    async for srv in serve(tmp_path, text):
        pod_reply = await ask(srv.port, SEARCH_NAME, source=POD_IP)
        assert pod_reply.answer and pod_reply.answer[0].rdtype == dns.rdatatype.CNAME
        # Not a pod: the cache must not hand it the pod's shortcut.
        outsider = await ask(srv.port, SEARCH_NAME, source=NOT_A_POD)
        assert dns.rcode.to_text(outsider.rcode()) == "NXDOMAIN"
        assert outsider.answer == []
        # And the pod still gets its answer.
        again = await ask(srv.port, SEARCH_NAME, source=POD_IP)
        assert answer_text(again) == answer_text(pod_reply)
