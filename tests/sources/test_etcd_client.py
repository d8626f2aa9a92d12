"""EtcdClient against a real etcd through its v3 JSON gateway."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from clusterdns.sources.etcd.client import (
    Compacted,
    Compare,
    DeleteRange,
    DeleteResult,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    Put,
    PutResult,
    Range,
    RangeResult,
    TLSConfig,
    WatchBatch,
    WatchCompacted,
    prefix_end,
)
from clusterdns.sources.etcd.store import EtcdStore
from tests.helpers.etcd import EtcdCluster, require_etcd

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd1() -> Iterator[EtcdCluster]:
    require_etcd()
    with EtcdCluster(size=1) as cluster:
        yield cluster


@pytest.fixture
async def client(etcd1: EtcdCluster) -> AsyncIterator[EtcdClient]:
    async with EtcdClient(etcd1.endpoints) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return f"/c{next(_prefixes)}/"


@pytest.mark.parametrize(
    ("prefix", "end"),
    [("/a/", b"/a0"), ("a", b"b"), ("\xff", "\xff".encode()[:-1] + b"\xc0"), ("", b"\x00")],
    ids=["/a/", "a", "non-ascii", "empty: every key"],
)
def test_prefix_end(prefix: str, end: bytes) -> None:
    assert prefix_end(prefix) == end
    assert prefix_end(b"a\xff\xff") == b"b"


async def test_put_get_range_paging_delete(client: EtcdClient, prefix: str) -> None:
    for i in range(7):
        result = await client.put(f"{prefix}k{i}", f"v{i}".encode())
        assert isinstance(result, PutResult) and result.revision > 0
    kv = await client.get(f"{prefix}k3")
    assert kv is not None and kv.value == b"v3" and kv.key == f"{prefix}k3".encode()
    assert kv.version == 1 and kv.create_revision == kv.mod_revision and kv.lease == 0
    assert await client.get(f"{prefix}nope") is None

    page = await client.range(prefix, prefix=True, limit=3)
    assert [k.key for k in page.kvs] == [f"{prefix}k{i}".encode() for i in range(3)]
    assert page.more and page.count == 7
    rest = await client.range(
        page.kvs[-1].key + b"\x00", prefix_end(prefix), revision=page.revision
    )
    assert len(rest.kvs) == 4 and not rest.more
    between = await client.range(f"{prefix}k2", f"{prefix}k5")
    assert [k.value for k in between.kvs] == [b"v2", b"v3", b"v4"]

    deleted = await client.delete_range(f"{prefix}k6")
    assert deleted.deleted == 1
    assert (await client.delete_range(prefix, prefix=True)).deleted == 6
    assert (await client.range(prefix, prefix=True)).kvs == ()


TXN_CASES = [
    ("mod_revision == current", "mod_revision", "==", "mod", True),
    ("mod_revision == older", "mod_revision", "==", "mod-1", False),
    ("mod_revision > older", "mod_revision", ">", "mod-1", True),
    ("create_revision == 0 (exists)", "create_revision", "==", 0, False),
    ("version == 2", "version", "==", 2, True),
    ("version < 2", "version", "<", 2, False),
    ("value == b", "value", "==", "b", True),
    ("value != b", "value", "!=", "b", False),
    ("lease == 0", "lease", "==", 0, True),
]


@pytest.mark.parametrize(
    ("target", "op", "value", "succeeds"),
    [c[1:] for c in TXN_CASES],
    ids=[c[0] for c in TXN_CASES],
)
async def test_txn_compare(
    client: EtcdClient, prefix: str, target: str, op: str, value: object, succeeds: bool
) -> None:
    key = f"{prefix}guard"
    await client.put(key, "a")
    mod = (await client.put(key, "b")).revision
    if value == "mod":
        value = mod
    elif value == "mod-1":
        value = mod - 1
    result = await client.txn(
        [Compare(key, target, op, value)],  # type: ignore[arg-type]
        [Put(f"{prefix}then", "yes"), DeleteRange(f"{prefix}gone", prefix_end(f"{prefix}gone"))],
        [Range(key)],
    )
    assert result.succeeded is succeeds
    if succeeds:
        assert isinstance(result.responses[0], PutResult)
        assert isinstance(result.responses[1], DeleteResult)
        assert (await client.get(f"{prefix}then")) is not None
    else:
        (found,) = result.responses
        assert isinstance(found, RangeResult) and found.kvs[0].value == b"b"
        assert (await client.get(f"{prefix}then")) is None


async def test_txn_create_if_absent(client: EtcdClient, prefix: str) -> None:
    key = f"{prefix}leader"
    absent = Compare(key, "create_revision", "==", 0)
    first = await client.txn([absent], [Put(key, "me")], [Range(key)])
    second = await client.txn([absent], [Put(key, "you")], [Range(key)])
    assert first.succeeded and not second.succeeded
    (found,) = second.responses
    assert isinstance(found, RangeResult) and found.kvs[0].value == b"me"


async def test_lease_grant_keepalive_timetolive_revoke(client: EtcdClient, prefix: str) -> None:
    lease = await client.lease_grant(30)
    assert lease.id > 0 and lease.ttl == 30
    await client.put(f"{prefix}leased", "x", lease=lease.id)
    info = await client.lease_timetolive(lease.id, keys=True)
    assert info.granted_ttl == 30 and 0 < info.ttl <= 30
    assert info.keys == (f"{prefix}leased".encode(),)
    assert await client.lease_keepalive(lease.id) == 30
    kv = await client.get(f"{prefix}leased")
    assert kv is not None and kv.lease == lease.id
    await client.lease_revoke(lease.id)
    assert await client.get(f"{prefix}leased") is None
    assert (await client.lease_timetolive(lease.id)).ttl == -1
    assert await client.lease_keepalive(lease.id) == 0  # gone
    await client.lease_revoke(lease.id)  # revoking twice is no error


async def test_lease_expiry_deletes_keys(client: EtcdClient, prefix: str) -> None:
    lease = await client.lease_grant(1)
    await client.put(f"{prefix}short", "x", lease=lease.id)
    deadline = asyncio.get_running_loop().time() + 5
    while await client.get(f"{prefix}short") is not None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


async def next_events(watch: AsyncIterator[WatchBatch], timeout: float = 5.0) -> WatchBatch:
    async def first() -> WatchBatch:
        async for batch in watch:
            if batch.events:
                return batch
        raise AssertionError("watch ended")

    return await asyncio.wait_for(first(), timeout)


async def test_watch_put_delete_with_lease_and_revisions(client: EtcdClient, prefix: str) -> None:
    start = await client.put(f"{prefix}before", "0")
    watch = client.watch(prefix, prefix=True, start_revision=start.revision)
    try:
        first = await next_events(watch)
        assert [(e.type, e.kv.key) for e in first.events] == [("PUT", f"{prefix}before".encode())]
        lease = await client.lease_grant(30)
        put = await client.put(f"{prefix}a", "1", lease=lease.id)
        batch = await next_events(watch)
        (event,) = batch.events
        assert event.type == "PUT" and event.kv.lease == lease.id
        assert event.kv.mod_revision == put.revision and event.kv.value == b"1"
        await client.put(f"{prefix}b", "2")
        txn = await client.txn([], [DeleteRange(prefix, prefix_end(prefix))])
        events = []
        while len(events) < 4:
            events.extend((await next_events(watch)).events)
        deletes = [e for e in events if e.type == "DELETE"]
        assert sorted(e.kv.key for e in deletes) == sorted(
            f"{prefix}{k}".encode() for k in ("a", "b", "before")
        )
        assert {e.kv.mod_revision for e in deletes} == {txn.revision}  # one revision
        await client.lease_revoke(lease.id)
    finally:
        await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_from_compacted_revision_raises(client: EtcdClient, prefix: str) -> None:
    first = await client.put(f"{prefix}x", "1")
    last = await client.put(f"{prefix}x", "2")
    await client.compact(last.revision)
    with pytest.raises(WatchCompacted) as raised:
        async with asyncio.timeout(5):
            async for _ in client.watch(prefix, prefix=True, start_revision=first.revision):
                pass
    assert raised.value.compact_revision >= last.revision
    with pytest.raises(Compacted):
        await client.range(prefix, prefix=True, revision=first.revision)


async def test_watch_connection_has_tcp_keepalive(client: EtcdClient, prefix: str) -> None:
    """A member whose host vanished is noticed in ~25 s, not at the 11-minute idle limit."""
    import socket

    watch = client.watch(prefix, prefix=True)
    try:
        async with asyncio.timeout(5):
            first = await anext(watch)  # type: ignore[arg-type]
        assert first.created
        sockets = [  # the watch's connection is the one the session has in use
            proto.transport.get_extra_info("socket")
            for proto in client.session.connector._acquired  # type: ignore[union-attr]
            if proto.transport is not None
        ]
        assert len(sockets) == 1
        sock = sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
    finally:
        await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_progress_notifications(client: EtcdClient, prefix: str) -> None:
    """The test cluster notifies progress every second on an idle watch."""
    watch = client.watch(prefix, prefix=True)
    try:
        async with asyncio.timeout(6):
            async for batch in watch:
                if batch.progress:
                    assert batch.revision > 0
                    break
    finally:
        await watch.aclose()  # type: ignore[attr-defined]


async def test_failover_to_the_next_endpoint() -> None:
    require_etcd()
    with EtcdCluster(size=3) as cluster:
        dead = "http://127.0.0.1:1"  # nothing listens there
        async with EtcdClient([dead, *cluster.endpoints], timeout=1.0) as client:
            await client.put("/f/a", "1")
            assert client.endpoint == cluster.endpoints[0]
            cluster.kill(0)
            await client.put("/f/b", "2")
            assert client.endpoint in cluster.endpoints[1:]
            assert len((await client.range("/f/", prefix=True)).kvs) == 2
        async with EtcdClient([dead], timeout=1.0) as client:
            with pytest.raises(EtcdUnavailable, match="no etcd endpoint answered"):
                await client.get("/f/a")


async def test_basic_auth_token() -> None:
    require_etcd()
    with EtcdCluster(size=1) as cluster:
        cluster.etcdctl("user", "add", "root:rootpw")
        cluster.etcdctl("user", "add", "sync:syncpw")
        cluster.etcdctl("role", "add", "skydns")
        cluster.etcdctl("role", "grant-permission", "skydns", "--prefix=true", "readwrite", "/s/")
        cluster.etcdctl("user", "grant-role", "sync", "skydns")
        cluster.etcdctl("auth", "enable")
        async with EtcdClient(cluster.endpoints, credentials=("sync", "syncpw")) as client:
            await client.put("/s/a", "1")
            kv = await client.get("/s/a")
            assert kv is not None and kv.value == b"1"
            with pytest.raises(EtcdError, match="permission denied"):
                await client.put("/other", "1")
        async with EtcdClient(cluster.endpoints) as anonymous:
            with pytest.raises(EtcdError):
                await anonymous.get("/s/a")
        async with EtcdClient(cluster.endpoints, credentials=("sync", "wrong")) as wrong:
            with pytest.raises(EtcdError, match="authentication failed"):
                await wrong.get("/s/a")


async def test_tls_with_client_certificate() -> None:
    require_etcd()
    with EtcdCluster(size=1, tls=True) as cluster:
        files = cluster.tls
        assert files is not None and cluster.endpoints[0].startswith("https://")
        tls = TLSConfig(cert=str(files.client_cert), key=str(files.client_key), ca=str(files.ca))
        async with EtcdClient(cluster.endpoints, tls=tls) as client:
            await client.put("/tls/a", "1")
            store = EtcdStore(client, "/tls/")
            task = asyncio.create_task(store.run())
            try:
                assert await store.wait_synced(5) and store.get("/tls/a") is not None
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # The server wants a client certificate; a client trusting the CA alone is refused.
        async with EtcdClient(cluster.endpoints, tls=TLSConfig(ca=str(files.ca))) as anonymous:
            with pytest.raises(EtcdUnavailable):
                await anonymous.get("/tls/a")
