"""clusterdns sync (kube2sky) against a real 3-member etcd and the Kubernetes API test server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest

from clusterdns.cli import build_parser
from clusterdns.sources.etcd.client import EtcdClient, Put, TLSConfig
from clusterdns.sources.kube.kubeconfig import from_endpoint
from clusterdns.sources.kube.source import KubeAPISource
from clusterdns.sources.model import ClusterModel
from clusterdns.sources.records import Endpoint, Service, ServicePort
from clusterdns.sync.command import KINDS, tls_config
from clusterdns.sync.election import Election, LostLeadership
from clusterdns.sync.records import domain_prefix, fnv1a_32, record_value, service_records
from clusterdns.sync.syncer import Syncer
from tests.helpers.etcd import EtcdCluster, free_port, require_etcd
from tests.helpers.kubeapi import KubeAPIServer, endpoint_slice, service

SRC = Path(__file__).resolve().parents[2] / "src"
_paths = itertools.count()


# --- records (pure) ------------------------------------------------------------------------


def svc(name: str = "mysql-service", **kwargs: object) -> Service:
    fields: dict[str, object] = dict(
        namespace="default", name=name, type="ClusterIP", cluster_ips=("10.254.162.44",),
        headless=False, external_name=None, ports=(), publish_not_ready=False, labels=(),
    )  # fmt: skip
    fields.update(kwargs)
    return Service(**fields)  # type: ignore[arg-type]


def ep(ip: str, hostname: str | None = None, *, ready: bool = True) -> Endpoint:
    return Endpoint((ip,), ready, hostname, None, (ServicePort("http", 80, "TCP"),))


SEED_VALUE = '{"host":"10.254.162.44","priority":10,"weight":10,"ttl":30,"targetstrip":0}'
KUBE = "/skydns/local/kube/"
HTTP = (ServicePort("http", 80, "TCP"),)
WEB = "/skydns/local/kube/svc/default/web/"
V20, V21 = record_value("10.244.1.20", ttl=30), record_value("10.244.1.21", ttl=30)
H20, H21 = fnv1a_32(V20.encode()), fnv1a_32(V21.encode())
FQDN = "mysql-service.default.svc.kube.local"

RECORD_CASES = [
    (
        "seed 000: ClusterIP → hash leaf + legacy key",
        svc(), (),
        {KUBE + "svc/default/mysql-service/2f1020d6": SEED_VALUE,
         KUBE + "default/mysql-service": SEED_VALUE},
    ),
    (
        "named port → SRV data under _tcp/_mysql; unnamed port → none",
        svc(ports=(ServicePort("mysql", 3306, "TCP"), ServicePort("", 9, "UDP"))), (),
        {KUBE + "svc/default/mysql-service/2f1020d6": SEED_VALUE,
         KUBE + "default/mysql-service": SEED_VALUE,
         KUBE + "svc/default/mysql-service/_tcp/_mysql/2f1020d6": json.dumps(
             {"host": FQDN, "port": 3306, "priority": 10, "weight": 10, "ttl": 30,
              "targetstrip": 0}, separators=(",", ":"))},
    ),
    (
        "dual-stack → one leaf per ClusterIP, legacy key for the primary",
        svc(cluster_ips=("10.254.162.44", "fd00::44")), (),
        {KUBE + "svc/default/mysql-service/2f1020d6": SEED_VALUE,
         KUBE + "svc/default/mysql-service/"
         + fnv1a_32(record_value("fd00::44", ttl=30).encode()): record_value("fd00::44", ttl=30),
         KUBE + "default/mysql-service": SEED_VALUE},
    ),
    (
        "headless → a leaf per ready endpoint, its hostname, SRV per endpoint",
        svc("web", cluster_ips=(), headless=True),
        (ep("10.244.1.20", "web-0"), ep("10.244.1.21"), ep("10.244.1.22", ready=False)),
        {WEB + H20: V20, WEB + "web-0": V20, WEB + H21: V21,
         WEB + "_tcp/_http/web-0": record_value("web-0.web.default.svc.kube.local", ttl=30,
                                                port=80),
         WEB + "_tcp/_http/" + H21: record_value(f"{H21}.web.default.svc.kube.local", ttl=30,
                                                 port=80)},
    ),
    (
        "headless, publishNotReadyAddresses → not-ready endpoints too",
        svc("web", cluster_ips=(), headless=True, publish_not_ready=True, ports=HTTP),
        (ep("10.244.1.21", ready=False),),
        {WEB + H21: V21,
         WEB + "_tcp/_http/" + H21: record_value(f"{H21}.web.default.svc.kube.local", ttl=30,
                                                 port=80)},
    ),
    ("headless without endpoints → nothing", svc("web", cluster_ips=(), headless=True), (), {}),
    (
        "ExternalName → host is the target (a CNAME)",
        svc("search", type="ExternalName", cluster_ips=(), external_name="www.google.com."), (),
        {KUBE + "svc/default/search": '{"host":"www.google.com","ttl":30}',
         KUBE + "default/search": '{"host":"www.google.com","ttl":30}'},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service_", "endpoints", "expected"),
    [c[1:] for c in RECORD_CASES],
    ids=[c[0] for c in RECORD_CASES],
)
def test_service_records(
    service_: Service, endpoints: tuple[Endpoint, ...], expected: dict[str, str]
) -> None:
    prefix = domain_prefix("/skydns", "kube.local")
    assert prefix == KUBE
    got = service_records(service_, endpoints, prefix=prefix, domain="kube.local", ttl=30)
    assert got == expected


# --- against etcd --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd3() -> Iterator[EtcdCluster]:
    """A 3-member cluster shared by the tests that do not break it (each its own path)."""
    require_etcd()
    with EtcdCluster(size=3) as cluster:
        yield cluster


@pytest.fixture
async def kubeapi() -> AsyncIterator[KubeAPIServer]:
    async with KubeAPIServer(bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def path() -> str:
    return f"/sync{next(_paths)}"


async def eventually(predicate: object, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` (sync or async) is true, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def etcd_records(client: EtcdClient, prefix: str) -> dict[str, str]:
    found = await client.range(prefix, prefix=True)
    return {kv.key.decode(): kv.value.decode() for kv in found.kvs}


def expected_from(model: ClusterModel, prefix: str, domain: str, ttl: int = 30) -> dict[str, str]:
    """What etcd must hold for the Services a model mirrors."""
    records: dict[str, str] = {}
    for s in model.services():
        eps = model.endpoints(s.namespace, s.name) if s.headless else ()
        records.update(service_records(s, eps, prefix=prefix, domain=domain, ttl=ttl))
    return records


@contextlib.asynccontextmanager
async def syncing(
    server: KubeAPIServer,
    endpoints: list[str],
    path: str,
    *,
    lease_ttl: int = 3,
    domain: str = "cluster.local",
) -> AsyncIterator[Syncer]:
    async with EtcdClient(endpoints, timeout=1.0) as client:
        model = ClusterModel(kinds=set(KINDS), pod_names=False)
        source = KubeAPISource(from_endpoint(server.url), kinds=set(KINDS), backoff_cap=0.5)
        syncer = Syncer(
            client=client,
            model=model,
            source=source,
            election=Election(client, f"{path}-leader", ttl=lease_ttl),
            path=path,
            domain=domain,
        )
        task = asyncio.create_task(syncer.run())
        try:
            yield syncer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await syncer.election.resign()


def headless_web(server: KubeAPIServer) -> None:
    server.create(service("web", cluster_ip="None", ports=[("http", 80, "TCP")]))
    server.create(
        endpoint_slice(
            "web-abc", "web", addresses=["10.244.1.20", "10.244.1.21"],
            hostnames={"10.244.1.20": "web-0"},
        )
    )  # fmt: skip


async def test_reconcile_creates_missing_fixes_changed_deletes_stale(
    etcd3: EtcdCluster, kubeapi: KubeAPIServer, path: str
) -> None:
    kubeapi.create(service("mysql-service", cluster_ip="10.254.162.44", ports=[]))
    kubeapi.create(service("api", cluster_ip="10.96.0.5", ports=[("https", 443, "TCP")]))
    kubeapi.create(service("search", type="ExternalName", external_name="www.example.com"))
    headless_web(kubeapi)
    prefix = domain_prefix(path, "cluster.local")
    async with EtcdClient(etcd3.endpoints) as client:
        mysql_leaf = f"{prefix}svc/default/mysql-service/2f1020d6"
        stale = {
            f"{prefix}svc/default/gone/abcdef12": SEED_VALUE,  # a deleted Service
            f"{prefix}default/gone": SEED_VALUE,  # and its legacy key
            f"{prefix}svc/default/api/deadbeef": SEED_VALUE,  # an old ClusterIP
            f"{prefix}junk": "x",  # belongs to no Service
        }
        for key, value in {**stale, mysql_leaf: "wrong"}.items():
            await client.put(key, value)
        outside = f"{path}/local/other/svc/default/x/1"  # another domain: not ours
        await client.put(outside, "keep")

        async with syncing(kubeapi, etcd3.endpoints, path) as syncer:
            await asyncio.wait_for(syncer.reconciled.wait(), 10)
            held = await etcd_records(client, prefix)
            assert held == expected_from(syncer.model, prefix, "cluster.local")
            assert held[mysql_leaf] == SEED_VALUE
            assert not stale.keys() & held.keys()
            assert f"{prefix}svc/default/web/web-0" in held
            assert (
                f"{prefix}svc/default/api/_tcp/_https/"
                + fnv1a_32(record_value("10.96.0.5", ttl=30).encode())
                in held
            )
            assert held[f"{prefix}svc/default/search"] == '{"host":"www.example.com","ttl":30}'
            assert (await client.get(outside)) is not None
            # A second reconcile finds nothing to do.
            txns = syncer.counters.txns
            await syncer.reconcile()
            assert syncer.counters.txns == txns
            # One transaction per Service: all of a Service's keys share a revision.
            found = await client.range(f"{prefix}svc/default/web/", prefix=True)
            assert len({kv.mod_revision for kv in found.kvs}) == 1


async def test_services_created_changed_and_deleted_reach_etcd(
    etcd3: EtcdCluster, kubeapi: KubeAPIServer, path: str
) -> None:
    prefix = domain_prefix(path, "cluster.local")
    async with (
        EtcdClient(etcd3.endpoints) as client,
        syncing(kubeapi, etcd3.endpoints, path) as syncer,
    ):
        await asyncio.wait_for(syncer.reconciled.wait(), 10)
        assert await etcd_records(client, prefix) == {}

        async def in_sync() -> bool:
            return await etcd_records(client, prefix) == expected_from(
                syncer.model, prefix, "cluster.local"
            )

        kubeapi.create(service("mysql-service", cluster_ip="10.254.162.44", ports=[]))
        await eventually(lambda: etcd_records(client, prefix))
        assert await etcd_records(client, prefix) == {
            f"{prefix}svc/default/mysql-service/2f1020d6": SEED_VALUE,
            f"{prefix}default/mysql-service": SEED_VALUE,
        }
        headless_web(kubeapi)
        await eventually(lambda: client.get(f"{prefix}svc/default/web/web-0"))
        await eventually(in_sync)
        # An endpoint goes: its leaves go, in the same transaction as the rest.
        kubeapi.update(
            endpoint_slice("web-abc", "web", addresses=["10.244.1.20"],
                           hostnames={"10.244.1.20": "web-0"})
        )  # fmt: skip
        gone = f"{prefix}svc/default/web/" + fnv1a_32(record_value("10.244.1.21", ttl=30).encode())
        await eventually(lambda: _absent(client, gone))
        await eventually(in_sync)
        kubeapi.delete(service("mysql-service"))
        await eventually(lambda: _absent(client, f"{prefix}default/mysql-service"))
        await eventually(in_sync)
        assert not any("mysql-service" in k for k in await etcd_records(client, prefix))
        assert syncer.counters.errors == 0


async def _absent(client: EtcdClient, key: str) -> bool:
    return await client.get(key) is None


async def test_two_syncers_elect_one_leader(
    etcd3: EtcdCluster, kubeapi: KubeAPIServer, path: str
) -> None:
    kubeapi.create(service("a", cluster_ip="10.96.0.1", ports=[]))
    async with (
        syncing(kubeapi, etcd3.endpoints, path) as one,
        syncing(kubeapi, etcd3.endpoints, path) as two,
    ):
        await eventually(lambda: one.election.leader or two.election.leader)
        await asyncio.sleep(1.0)  # a second candidate had time to (wrongly) win
        assert [one.election.leader, two.election.leader].count(True) == 1
        leader, follower = (one, two) if one.election.leader else (two, one)
        await asyncio.wait_for(leader.reconciled.wait(), 10)
        kubeapi.create(service("b", cluster_ip="10.96.0.2", ports=[]))
        prefix = domain_prefix(path, "cluster.local")
        async with EtcdClient(etcd3.endpoints) as client:
            await eventually(lambda: client.get(f"{prefix}default/b"))
        assert leader.counters.txns >= 2 and follower.counters.txns == 0
        assert not follower.reconciled.is_set()


async def test_deposed_leader_write_fails_and_stale_leader_stops(
    etcd3: EtcdCluster, path: str
) -> None:
    now = [0.0]
    async with EtcdClient(etcd3.endpoints) as client, EtcdClient(etcd3.endpoints) as other:
        election = Election(client, f"{path}-leader", ttl=6, clock=lambda: now[0])
        await asyncio.wait_for(election.campaign(), 5)
        assert election.valid
        guarded = [election.guard()]
        ok = await client.txn(guarded, [Put(f"{path}/a", "1")])
        assert ok.succeeded
        # The key is replaced behind its back (its lease expired, another won).
        await other.delete_range(f"{path}-leader")
        rival = Election(other, f"{path}-leader", ttl=6)
        await asyncio.wait_for(rival.campaign(), 5)
        late = await client.txn(guarded, [Put(f"{path}/a", "deposed")])
        assert not late.succeeded
        assert (await client.get(f"{path}/a")).value == b"1"  # type: ignore[union-attr]
        # A leader whose renewals are overdue for 2/3 of the TTL stops before writing.
        model = ClusterModel(kinds=set(KINDS))
        syncer = Syncer(client=client, model=model, source=None, election=rival, path=path)  # type: ignore[arg-type]
        rival.clock = lambda: now[0]
        rival.renewed_at = 0.0
        now[0] = 3.9
        assert rival.valid
        now[0] = 4.1
        assert not rival.valid
        stray = domain_prefix(path, "cluster.local") + "stray"
        await other.put(stray, "x")  # reconcile must delete it, but may not write
        with pytest.raises(LostLeadership):
            await syncer.reconcile()
        assert await other.get(stray) is not None
        await rival.resign()
        await election.resign()


async def test_writes_continue_when_an_etcd_member_dies(kubeapi: KubeAPIServer) -> None:
    require_etcd()
    path = "/skydns"
    prefix = domain_prefix(path, "cluster.local")
    with EtcdCluster(size=3) as cluster:
        async with (
            EtcdClient(cluster.endpoints, timeout=2.0) as client,
            syncing(kubeapi, cluster.endpoints, path) as syncer,
        ):
            await asyncio.wait_for(syncer.reconciled.wait(), 10)
            cluster.kill(syncer.client.current)
            kubeapi.create(service("after-kill", cluster_ip="10.96.7.7", ports=[]))
            await eventually(lambda: client.get(f"{prefix}default/after-kill"), timeout=15)
            assert syncer.election.leader


def spawn_sync(endpoints: list[str], api: str, path: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(SRC))
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clusterdns.cli", "sync", "--etcd", *endpoints,
             "--endpoint", api, "--path", path, "--lease-ttl", "3s",
             "--election-key", f"{path}-leader"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def spawn_serve(endpoints: list[str], path: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """``clusterdns serve`` answering cluster.local from etcd with the etcd plugin."""
    corefile = tmp / f"Corefile.{port}"
    corefile.write_text(
        f"cluster.local:{port} {{\n    etcd cluster.local {{\n        path {path}\n"
        f"        endpoint {' '.join(endpoints)}\n    }}\n}}\n"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(SRC))
    with open(tmp / f"serve.{port}.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(corefile)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


async def answer(port: int, name: str) -> tuple[str, list[str]]:
    """(rcode, A addresses) from a replica, ("timeout", []) when it does not answer."""
    query = dns.message.make_query(f"{name}.default.svc.cluster.local", "A")
    try:
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except dns.exception.Timeout:
        return "timeout", []
    addresses = sorted(rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == 1)
    return dns.rcode.to_text(reply.rcode()), addresses


async def test_leader_killed_follower_takes_over_and_replicas_agree(
    etcd3: EtcdCluster, kubeapi: KubeAPIServer, path: str, tmp_path: Path
) -> None:
    """The issue's check: two syncers and two DNS replicas on a 3-member etcd; SIGKILL the
    leader syncer, change Services meanwhile, and both replicas answer the new state."""
    lease_ttl = 3
    prefix = domain_prefix(path, "cluster.local")
    kubeapi.create(service("keep", cluster_ip="10.96.1.1", ports=[]))
    kubeapi.create(service("doomed", cluster_ip="10.96.1.2", ports=[]))
    procs = [spawn_sync(etcd3.endpoints, kubeapi.url, path, tmp_path / f"sync{i}.log")
             for i in range(2)]  # fmt: skip
    logs = [tmp_path / f"sync{i}.log" for i in range(2)]
    ports = [free_port(), free_port()]
    procs += [spawn_serve(etcd3.endpoints, path, port, tmp_path) for port in ports]

    async def replicas_answer(name: str, expected: tuple[str, list[str]]) -> bool:
        return all([await answer(port, name) == expected for port in ports])

    try:
        async with EtcdClient(etcd3.endpoints) as client:
            await eventually(lambda: client.get(f"{prefix}default/doomed"), timeout=20)
            await eventually(lambda: replicas_answer("doomed", ("NOERROR", ["10.96.1.2"])), 20)
            holder = await client.get(f"{path}-leader")
            assert holder is not None
            leader_pid = int(holder.value.decode().rsplit("/", 1)[1])
            (leader,) = [p for p in procs[:2] if p.pid == leader_pid]
            (follower,) = [p for p in procs[:2] if p.pid != leader_pid]
            leader.send_signal(signal.SIGKILL)
            leader.wait(5)
            killed_at = time.monotonic()
            # While nobody leads: one Service goes, another comes.
            kubeapi.delete(service("doomed"))
            kubeapi.create(service("newcomer", cluster_ip="10.96.1.3", ports=[]))

            async def taken_over() -> bool:
                kv = await client.get(f"{path}-leader")
                return kv is not None and kv.value.decode().endswith(f"/{follower.pid}")

            await eventually(taken_over, timeout=lease_ttl + 5)
            assert time.monotonic() - killed_at < lease_ttl + 1.5
            await eventually(lambda: client.get(f"{prefix}default/newcomer"), timeout=10)
            held = await etcd_records(client, prefix)
            want_keys = {f"{prefix}default/keep", f"{prefix}default/newcomer"}
            assert {k for k in held if "/svc/" not in k} == want_keys
            assert not any("doomed" in k for k in held)
            assert len(held) == 4  # two Services, a leaf and a legacy key each
            await eventually(lambda: replicas_answer("newcomer", ("NOERROR", ["10.96.1.3"])), 5)
            assert await replicas_answer("doomed", ("NXDOMAIN", []))
            assert await replicas_answer("keep", ("NOERROR", ["10.96.1.1"]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = "".join(log.read_text() for log in logs)
    assert "sync: elected leader" in text


async def test_etcd_down_then_back_writes_resume(kubeapi: KubeAPIServer) -> None:
    """The leader stops writing while etcd is down, keeps its key when it comes back (the
    same lease), and writes what changed meanwhile."""
    require_etcd()
    path = "/skydns"
    prefix = domain_prefix(path, "cluster.local")
    kubeapi.create(service("before", cluster_ip="10.96.3.1", ports=[]))
    with EtcdCluster(size=1) as cluster:
        async with syncing(kubeapi, cluster.endpoints, path, lease_ttl=3) as syncer:
            await asyncio.wait_for(syncer.reconciled.wait(), 10)
            cluster.stop_all()
            await eventually(lambda: not syncer.election.valid, timeout=5)
            kubeapi.create(service("during", cluster_ip="10.96.3.2", ports=[]))
            await asyncio.sleep(0.5)
            cluster.start()
            async with EtcdClient(cluster.endpoints) as client:
                await eventually(lambda: client.get(f"{prefix}default/during"), timeout=15)
                assert await client.get(f"{prefix}default/before") is not None
            assert syncer.election.leader and syncer.counters.reconciles >= 2


@pytest.mark.parametrize(
    ("argv", "lease_ttl", "tls"),
    [
        ([], 10, None),
        (["--lease-ttl", "3s"], 3, None),
        (["--lease-ttl", "2m"], 120, None),
        (["--lease-ttl", "15"], 15, None),
        (["--tls", "ca.pem"], 10, TLSConfig(ca="ca.pem")),
        (["--tls", "c.pem", "k.pem"], 10, TLSConfig("c.pem", "k.pem")),
        (["--tls", "c.pem", "k.pem", "ca.pem"], 10, TLSConfig("c.pem", "k.pem", "ca.pem")),
    ],
    ids=["defaults", "3s", "2m", "bare seconds", "tls CA", "tls CERT KEY", "tls CERT KEY CA"],
)
def test_sync_options(argv: list[str], lease_ttl: int, tls: TLSConfig | None) -> None:
    args = build_parser().parse_args(["sync", "--manifests", "/tmp", *argv])
    assert args.lease_ttl == lease_ttl and tls_config(args.tls) == tls
    assert args.path == "/skydns" and args.domain == "cluster.local" and args.ttl == 30


@pytest.mark.parametrize("bad", ["1s", "10x", "-3", "1.5s"])
def test_sync_rejects_lease_ttl(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sync", "--lease-ttl", bad])
    assert "--lease-ttl" in capsys.readouterr().err
