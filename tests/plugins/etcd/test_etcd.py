"""The etcd plugin on a real etcd: records written with etcdctl, asked of ``clusterdns serve``
with dnspython and dig; changes, leases, etcd stopped and restarted, a member killed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.core.fast import SLOW, FastReply
from clusterdns.plugins.etcd import Etcd, EtcdConfig
from clusterdns.wire import parse_query
from clusterdns.wire.render import reply_limit
from tests.helpers.dnsclient import make_query
from tests.helpers.etcd import EtcdCluster
from tests.helpers.server import RunningServer, ServerProcess, running_server
from tests.plugins.etcd.cases import (
    KEYS,
    ROWS,
    SEED_VALUE,
    Case,
    corefile,
    expected_lines,
    lines,
    oracle,
)

SEED_KEY = "/skydns/local/kube/svc/default/mysql-service/2f1020d6"
SEED_NAME = "mysql-service.default.svc.kube.local."
WAIT = 10.0  # seconds a change may take to show (etcd on a busy 2-core machine)


def put_all(cluster: EtcdCluster, keys: dict[str, str]) -> None:
    """Write the keys with etcdctl, all in one transaction (``etcdctl txn`` reads compares,
    a blank line, the requests on success, a blank line, those on failure)."""
    requests = "\n".join(f"put {key} {json.dumps(value)}" for key, value in keys.items())
    cluster.etcdctl("txn", input=f"\n{requests}\n\n\n".encode())


@pytest.fixture(scope="module")
def seeded() -> Iterator[EtcdCluster]:
    with EtcdCluster(size=1) as cluster:
        put_all(cluster, KEYS)
        yield cluster


@pytest.fixture(scope="module")
def served(seeded: EtcdCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``clusterdns serve`` as a process on the seeded etcd; its DNS port."""
    folder = tmp_path_factory.mktemp("etcd-serve")
    with ServerProcess(corefile(seeded.endpoints), folder) as server:
        # Ready once the first list is in: ask until the seed answers.
        deadline = time.monotonic() + 20
        while True:
            try:
                if ask(server.port, SEED_NAME, "A").answer:
                    break
            except dns.exception.Timeout:
                pass
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        yield server.port


def ask(port: int, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=port, timeout=2.0, one_rr_per_rrset=True)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=2.0, one_rr_per_rrset=True)


def check(reply: dns.message.Message, case: Case) -> None:
    assert dns.rcode.to_text(reply.rcode()) == case.rcode, reply.to_text()
    assert reply.flags & dns.flags.AA or case.rcode == "SERVFAIL"
    assert lines(reply) == expected_lines(case), reply.to_text()


@pytest.mark.parametrize("case", ROWS)
def test_table_through_clusterdns_serve(served: int, case: Case) -> None:
    # Over TCP so the 40-record answer comes whole.
    check(ask(served, case.qname, case.qtype, tcp=True), case)


async def test_table_on_the_real_store_matches_the_oracle(seeded: EtcdCluster) -> None:
    """answer_fast on the real EtcdStore (listed from etcd) gives the oracle's bytes for
    every row the fast path answers: the unit tests' in-memory store hides nothing."""
    from clusterdns.plugins.etcd.setup import build
    from tests.plugins.etcd.test_answers import MAX_UDP, ZONE_LIST, client_query

    plugin = build(EtcdConfig(zones=ZONE_LIST, endpoints=tuple(seeded.endpoints)))
    await plugin.start()
    try:
        assert await plugin.store.wait_synced(10)
        checked = 0
        for param in ROWS:
            case: Case = param.values[0]
            for variant in ({"edns": False}, {"edns": True, "do": True, "case_mix": True}):
                query = client_query(case, **variant)
                parsed = parse_query(query.to_wire())
                limit = reply_limit(parsed, tcp=False, max_udp=MAX_UDP)
                result = plugin.answer_fast(parsed, limit, MAX_UDP)
                if not case.fast:
                    assert result is SLOW, case
                    continue
                assert isinstance(result, FastReply), case
                expected = oracle(query, case, plugin.serial, limit=limit, payload=MAX_UDP)
                assert result.wire == expected, param.id
                checked += 1
        assert checked > 80
    finally:
        await plugin.stop()


def test_seed_names_with_dig(served: int) -> None:
    """The seed article's three names resolve to the Service's IP, as its nslookups show
    (the search path turns mysql-service into these)."""
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed")
    for name in (SEED_NAME, "mysql-service.default.kube.local."):
        done = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(served), name, "A", "+short", "+time=2", "+tries=1"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        assert done.stdout.split() == ["10.254.162.44"], done.stdout
    done = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(served), "nope.kube.local", "A", "+time=2", "+tries=1"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    assert "status: NXDOMAIN" in done.stdout and "flags: qr aa" in done.stdout


def test_truncated_over_udp(served: int) -> None:
    reply = ask(served, "big.skydns.test.", "A")
    assert reply.flags & dns.flags.TC
    assert 0 < sum(len(rrset) for rrset in reply.answer) < 40


# --- changes, leases, outages (one etcd and one in-process server each) --------------------


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = WAIT) -> None:
    """Wait until ``check()`` is true, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.05)


async def aask(
    port: int, name: str, rdtype: str = "A", *, timeout: float = 2.0
) -> dns.message.Message:
    query = make_query(name, rdtype)
    return await dns.asyncquery.udp(
        query, "127.0.0.1", port=port, timeout=timeout, one_rr_per_rrset=True
    )


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(
        rdata.address
        for rrset in reply.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rdata in rrset
    )


def ctl(cluster: EtcdCluster, *args: str) -> Awaitable[str]:
    return asyncio.to_thread(cluster.etcdctl, *args)


async def ctl_retry(cluster: EtcdCluster, *args: str, attempts: int = 5) -> str:
    """etcdctl, again after a failure (a leader election in progress), a bounded number
    of times."""
    for attempt in range(attempts):
        try:
            return await ctl(cluster, *args)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def serve_corefile(cluster: EtcdCluster, extra: str = "") -> str:
    return (
        "kube.local:0 {\n"
        "    ready 127.0.0.1:0\n"
        f"    etcd {{\n        endpoint {' '.join(cluster.endpoints)}\n        {extra}\n    }}\n"
        "}\n"
    )


def plugin_of(server: RunningServer) -> Etcd:
    plugin = server.plugin("etcd")
    assert isinstance(plugin, Etcd)
    return plugin


async def test_answers_follow_creates_and_deletes(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(EtcdCluster(size=1).start)
    try:
        await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
        async with running_server(serve_corefile(cluster), tmp_path=tmp_path) as server:
            port = server.port
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]))
            new = "/skydns/local/kube/svc/default/web/x1"
            before = await aask(port, "web.default.svc.kube.local.")
            assert before.rcode() == dns.rcode.NXDOMAIN
            await ctl(cluster, "put", new, '{"host":"10.254.0.7"}')
            await eventually(lambda: _has(port, "web.default.svc.kube.local.", ["10.254.0.7"]))
            # A second record for the same name (external-dns's leaf keys).
            await ctl(cluster, "put", new.replace("x1", "x2"), '{"host":"10.254.0.8"}')
            await eventually(
                lambda: _has(port, "web.default.svc.kube.local.", ["10.254.0.7", "10.254.0.8"])
            )
            await ctl(cluster, "del", "--prefix", "/skydns/local/kube/svc/default/web/")
            await eventually(lambda: _rcode(port, "web.default.svc.kube.local.", "NXDOMAIN"))
            # Other names were not disturbed.
            assert addresses(await aask(port, SEED_NAME)) == ["10.254.162.44"]
    finally:
        await asyncio.to_thread(cluster.close)


async def _has(port: int, name: str, expected: list[str]) -> bool:
    return addresses(await aask(port, name)) == expected


async def _rcode(port: int, name: str, rcode: str) -> bool:
    return dns.rcode.to_text((await aask(port, name)).rcode()) == rcode


def _ttl(reply: dns.message.Message) -> int:
    (rrset,) = reply.answer
    return int(rrset.ttl)


async def test_lease_ttls(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(EtcdCluster(size=1).start)
    try:
        long_lease = _lease_id(await ctl(cluster, "lease", "grant", "600"))
        short_lease = _lease_id(await ctl(cluster, "lease", "grant", "100"))
        tiny_lease = _lease_id(await ctl(cluster, "lease", "grant", "10"))
        base = "/skydns/local/kube/leased"
        await ctl(cluster, "put", f"--lease={long_lease}", f"{base}/long", '{"host":"10.0.0.1"}')
        await ctl(cluster, "put", f"--lease={short_lease}", f"{base}/short", '{"host":"10.0.0.2"}')
        await ctl(cluster, "put", f"--lease={tiny_lease}", f"{base}/tiny", '{"host":"10.0.0.3"}')
        await ctl(
            cluster, "put", f"--lease={short_lease}", f"{base}/own", '{"host":"10.0.0.4","ttl":20}'
        )
        extra = "min-lease-ttl 30s\n        max-lease-ttl 2m"
        async with running_server(serve_corefile(cluster, extra), tmp_path=tmp_path) as server:
            port = server.port

            async def leases_known() -> bool:
                reply = await aask(port, "short.leased.kube.local.")
                return bool(reply.answer) and _ttl(reply) <= 100

            await eventually(leases_known)
            assert _ttl(await aask(port, "long.leased.kube.local.")) == 120  # max-lease-ttl
            assert 90 <= _ttl(await aask(port, "short.leased.kube.local.")) <= 100
            assert _ttl(await aask(port, "tiny.leased.kube.local.")) == 30  # min-lease-ttl
            assert _ttl(await aask(port, "own.leased.kube.local.")) == 20  # the value's is smaller
            # The TTL ticks down with the lease.
            first = _ttl(await aask(port, "short.leased.kube.local."))
            await asyncio.sleep(2.1)
            assert _ttl(await aask(port, "short.leased.kube.local.")) <= first - 1
            # A revoked lease takes its keys with it.
            await ctl(cluster, "lease", "revoke", short_lease)
            await eventually(lambda: _rcode(port, "short.leased.kube.local.", "NXDOMAIN"))
    finally:
        await asyncio.to_thread(cluster.close)


def _lease_id(output: str) -> str:
    found = re.search(r"lease ([0-9a-f]+) granted", output)
    assert found, output
    return found.group(1)


async def _ready(server: RunningServer) -> int:
    url = f"http://127.0.0.1:{server.http_port('127.0.0.1', 0)}/ready"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status


async def test_etcd_down_keeps_answers_and_restart_resumes(tmp_path: Path) -> None:
    cluster = EtcdCluster(size=1)
    try:
        async with running_server(serve_corefile(cluster), tmp_path=tmp_path) as server:
            port, plugin = server.port, plugin_of(server)
            # etcd not started yet: not ready, and no records to answer from.
            assert await _ready(server) == 503
            assert plugin.ready() is False
            # A query waits for the first list up to 5 s after start, then gets SERVFAIL.
            reply = await aask(port, SEED_NAME, timeout=8.0)
            assert reply.rcode() == dns.rcode.SERVFAIL
            await asyncio.to_thread(cluster.start)
            await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
            # The watch retries with backoff (up to 10 s apart) while etcd was away.
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]), timeout=25)
            assert await _ready(server) == 200
            # etcd goes away entirely: the last answers stay, and so does readiness.
            await asyncio.to_thread(cluster.stop_all)
            for _ in range(5):
                assert addresses(await aask(port, SEED_NAME)) == ["10.254.162.44"]
                await asyncio.sleep(0.2)
            assert await _ready(server) == 200
            # It comes back (same data dir): the watch resumes, changes show, no duplicates.
            await asyncio.to_thread(cluster.start)
            await ctl(
                cluster, "put", "/skydns/local/kube/svc/default/late/x", '{"host":"10.9.0.1"}'
            )
            await eventually(lambda: _has(port, "late.default.svc.kube.local.", ["10.9.0.1"]))
            assert addresses(await aask(port, SEED_NAME)) == ["10.254.162.44"]
            store = plugin.store
            assert getattr(store, "errors", 0) >= 1
    finally:
        await asyncio.to_thread(cluster.close)


async def test_three_members_one_killed(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(EtcdCluster(size=3).start)
    try:
        await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
        async with running_server(serve_corefile(cluster), tmp_path=tmp_path) as server:
            port = server.port
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]))
            # The member the client talks to first dies without a word.
            await asyncio.to_thread(cluster.kill, 0)
            assert addresses(await aask(port, SEED_NAME)) == ["10.254.162.44"]
            # Writes to the two left still reach us (once they have elected a leader, if
            # the killed member led).
            await asyncio.to_thread(cluster.wait_healthy, [1, 2], 20.0)
            await ctl_retry(
                cluster, "put", "/skydns/local/kube/svc/default/after/x", '{"host":"10.9.0.2"}'
            )
            await eventually(lambda: _has(port, "after.default.svc.kube.local.", ["10.9.0.2"]))
            await ctl_retry(cluster, "del", SEED_KEY)
            await eventually(lambda: _rcode(port, SEED_NAME, "NXDOMAIN"))
    finally:
        await asyncio.to_thread(cluster.close)


async def _metrics(server: RunningServer) -> str:
    url = f"http://127.0.0.1:{server.http_port('127.0.0.1', 0)}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return await response.text()


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_fast_path_memo_and_metrics(tmp_path: Path) -> None:
    """Repeated questions are answered from the reply memo (only fast-path replies go
    there), a change still shows at once, and the plugin's metrics are exported."""
    cluster = await asyncio.to_thread(EtcdCluster(size=1).start)
    try:
        await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
        text = serve_corefile(cluster).replace("    ready", "    prometheus 127.0.0.1:0\n    ready")
        async with running_server(text, tmp_path=tmp_path) as server:
            port = server.port
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]))
            for _ in range(5):
                assert addresses(await aask(port, SEED_NAME)) == ["10.254.162.44"]
            metrics = await _metrics(server)
            assert _metric(metrics, "clusterdns_reply_memo_hits_total") >= 3
            assert _metric(metrics, "clusterdns_etcd_synced") == 1
            assert _metric(metrics, "clusterdns_etcd_keys") == 1
            # The memo holds the old reply; the change drops it.
            await ctl(cluster, "put", SEED_KEY, '{"host":"10.254.162.45","ttl":30}')
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.45"]))
            metrics = await _metrics(server)
            assert _metric(metrics, "clusterdns_etcd_generation") >= 2
            assert "coredns_dns_responses_total{" in metrics and 'plugin="etcd"' in metrics
    finally:
        await asyncio.to_thread(cluster.close)


async def test_cache_in_front_is_never_stale(tmp_path: Path) -> None:
    """With ``cache`` before it, a name cached as NXDOMAIN resolves as soon as its key is
    written, and a changed value shows at once (the cache watches our generation)."""
    cluster = await asyncio.to_thread(EtcdCluster(size=1).start)
    try:
        await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
        text = serve_corefile(cluster).replace("    ready", "    cache 300\n    ready")
        async with running_server(text, tmp_path=tmp_path) as server:
            port = server.port
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]))
            name = "cached.default.svc.kube.local."
            for _ in range(3):
                assert (await aask(port, name)).rcode() == dns.rcode.NXDOMAIN
            await ctl(
                cluster, "put", "/skydns/local/kube/svc/default/cached/x", '{"host":"10.9.0.4"}'
            )
            await eventually(lambda: _has(port, name, ["10.9.0.4"]), timeout=3.0)
            await ctl(cluster, "put", SEED_KEY, '{"host":"10.254.162.46","ttl":30}')
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.46"]), timeout=3.0)
    finally:
        await asyncio.to_thread(cluster.close)


async def test_reload_keeps_the_watch(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(EtcdCluster(size=1).start)
    try:
        await ctl(cluster, "put", SEED_KEY, SEED_VALUE)
        text = serve_corefile(cluster)
        async with running_server(text, tmp_path=tmp_path) as server:
            port, first = server.port, plugin_of(server)
            await eventually(lambda: _has(port, SEED_NAME, ["10.254.162.44"]))
            # Same etcd settings, something else changed: the running watch is kept.
            server.corefile.write_text(text.replace("    ready", "    log\n    ready"))
            answers: list[list[str]] = []

            async def hammer() -> None:
                for _ in range(50):
                    answers.append(addresses(await aask(port, SEED_NAME)))

            load = asyncio.ensure_future(hammer())
            assert await server.app.reload()
            await load
            assert answers == [["10.254.162.44"]] * 50
            second = plugin_of(server)
            assert second is not first and second.store is first.store
            assert getattr(second.store, "relists", 0) == 0
            await ctl(
                cluster, "put", "/skydns/local/kube/svc/default/kept/x", '{"host":"10.9.0.3"}'
            )
            await eventually(lambda: _has(port, "kept.default.svc.kube.local.", ["10.9.0.3"]))
            # Other etcd settings: a new watch, and the new settings apply.
            server.corefile.write_text(
                text.replace("endpoint", "max-lease-ttl 1m\n        endpoint")
            )
            assert await server.app.reload()
            third = plugin_of(server)
            assert third.store is not first.store and third.config.max_lease_ttl == 60
            await eventually(lambda: _has(port, "kept.default.svc.kube.local.", ["10.9.0.3"]))
    finally:
        await asyncio.to_thread(cluster.close)


def test_the_table_covers_every_record_type() -> None:
    """The table covers every record type the README promises."""
    kinds = {case.values[0].qtype for case in ROWS}
    assert {"A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR", "SOA", "NS"} <= kinds
