"""EtcdStore against a real etcd: list + watch, paging, resume, compaction, leases, outages."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from clusterdns.sources.etcd.client import EtcdClient, KeyValue, WatchEvent
from clusterdns.sources.etcd.store import EtcdEntry, EtcdStore, SortedKeys
from tests.helpers.etcd import EtcdCluster, require_etcd
from tests.sources.conftest import eventually

SEED_VALUE = '{"host":"10.254.162.44","priority":10,"weight":10,"ttl":30,"targetstrip":0}'
SEED_KEYS = (
    "/skydns/local/kube/svc/default/mysql-service/2f1020d6",
    "/skydns/local/kube/default/mysql-service",
)
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd1() -> Iterator[EtcdCluster]:
    """One member shared by the tests that do not break it (each uses its own prefix)."""
    require_etcd()
    with EtcdCluster(size=1) as cluster:
        yield cluster


@pytest.fixture
def prefix() -> str:
    return f"/t{next(_prefixes)}/skydns/"


@contextlib.asynccontextmanager
async def running(store: EtcdStore) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(store.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Recorder:
    """Every notification a store sent, in order."""

    def __init__(self, store: EtcdStore) -> None:
        self.calls: list[frozenset[str] | None] = []
        store.subscribe(self.calls.append)

    def keys(self) -> list[str]:
        return [k for call in self.calls if call is not None for k in sorted(call)]


async def test_seed_records_listed_then_watched(etcd1: EtcdCluster, prefix: str) -> None:
    root = prefix.rstrip("/")
    for key in SEED_KEYS:
        etcd1.etcdctl("put", root + key, SEED_VALUE)
    async with EtcdClient(etcd1.endpoints) as client:
        store = EtcdStore(client, prefix)
        recorder = Recorder(store)
        async with running(store):
            assert await store.wait_synced(5)
            assert store.synced and store.generation == 1 and recorder.calls == [None]
            entry = store.get(root + SEED_KEYS[0])
            assert entry is not None and json.loads(entry.value)["host"] == "10.254.162.44"
            assert entry.lease == 0 and entry.mod_revision > 0
            assert [e.key for e in store.range(root + "/skydns/local/kube/")] == sorted(
                root + k for k in SEED_KEYS
            )

            new = root + "/skydns/local/kube/svc/default/web/1a2b3c4d"
            await client.put(new, '{"host":"10.0.0.9"}')
            await eventually(lambda: store.get(new) is not None)
            assert recorder.calls[-1] == frozenset({new})
            generation = store.generation
            await client.delete_range(root + "/skydns/local/kube/svc/", prefix=True)
            await eventually(lambda: store.generation > generation)
            assert store.get(new) is None and store.get(root + SEED_KEYS[0]) is None
            assert recorder.calls[-1] == frozenset({new, root + SEED_KEYS[0]})  # one batch
            assert [e.key for e in store.range(prefix)] == [root + SEED_KEYS[1]]
            assert store.errors == 0 and store.relists == 0


async def test_list_is_paged_and_at_one_revision(etcd1: EtcdCluster, prefix: str) -> None:
    async with EtcdClient(etcd1.endpoints) as client:
        for i in range(23):
            await client.put(f"{prefix}k{i:02d}", str(i))
        await client.put(prefix.rstrip("/"), "outside")  # just outside the prefix
        store = EtcdStore(client, prefix, page_size=5)
        async with running(store):
            assert await store.wait_synced(5)
            assert [e.key for e in store.range(prefix)] == [f"{prefix}k{i:02d}" for i in range(23)]
            assert len(store) == 23


PREFIX_CASES = [
    ("/a/", ["/a/b", "/a/b/c", "/a/bb", "/a/c", "/a/\U0010ffff"]),
    ("/a/b", ["/a/b", "/a/b/c", "/a/bb"]),
    ("/a/b/", ["/a/b/c"]),
    ("/a/bb", ["/a/bb"]),
    ("/a/d", []),
    ("/a/\U0010ffff", ["/a/\U0010ffff"]),
    ("/", ["/a/b", "/a/b/c", "/a/bb", "/a/c", "/a/\U0010ffff", "/b"]),
    ("", ["/a/b", "/a/b/c", "/a/bb", "/a/c", "/a/\U0010ffff", "/b"]),
]


@pytest.mark.parametrize(
    ("query", "expected"), PREFIX_CASES, ids=[repr(c[0]) for c in PREFIX_CASES]
)
def test_range_and_has_prefix(query: str, expected: list[str]) -> None:
    """The sorted-key index alone, fed watch events directly (in shuffled order)."""
    store = EtcdStore(EtcdClient(["http://127.0.0.1:1"]), "/")
    keys = ["/b", "/a/c", "/a/\U0010ffff", "/a/b/c", "/a/bb", "/a/b", "/zz"]
    events = [
        WatchEvent("PUT", KeyValue(k.encode(), b"v", i + 1, i + 1, 1, 0))
        for i, k in enumerate(keys)
    ]
    store._apply(events)
    store._apply([WatchEvent("DELETE", KeyValue(b"/zz", b"", 0, len(keys) + 1, 0, 0))])
    assert [e.key for e in store.range(query)] == expected
    assert store.has_prefix(query) == bool(expected)


async def test_lease_ttl_fetched_once_and_counted_down(etcd1: EtcdCluster, prefix: str) -> None:
    now = [1000.0]
    async with EtcdClient(etcd1.endpoints) as client:
        lease = await client.lease_grant(60)
        for i in range(3):
            await client.put(f"{prefix}leased{i}", "x", lease=lease.id)
        calls: list[int] = []
        original = client.lease_timetolive

        async def counting(lease_id: int, *, keys: bool = False) -> object:
            calls.append(lease_id)
            return await original(lease_id, keys=keys)

        client.lease_timetolive = counting  # type: ignore[method-assign,assignment]
        store = EtcdStore(client, prefix, clock=lambda: now[0])
        async with running(store):
            assert await store.wait_synced(5)
            await eventually(lambda: store.lease_remaining(lease.id) is not None)
            remaining = store.lease_remaining(lease.id)
            assert remaining is not None and 55 <= remaining <= 60
            await client.put(f"{prefix}leased3", "y", lease=lease.id)  # a known lease
            await eventually(lambda: store.get(f"{prefix}leased3") is not None)
            now[0] += 20
            assert store.lease_remaining(lease.id) == pytest.approx(remaining - 20)
            assert [store.lease_remaining(lease.id) for _ in range(1000)]  # reads only
            assert calls == [lease.id]
            assert store.lease_remaining(12345) is None
            assert store.get(f"{prefix}leased0") == EtcdEntry(
                f"{prefix}leased0",
                b"x",
                lease.id,
                store.get(f"{prefix}leased0").mod_revision,  # type: ignore[union-attr]
            )
            # Revoked: its keys go, and so does what the store knew of it.
            await client.lease_revoke(lease.id)
            await eventually(lambda: not store.has_prefix(prefix))
            assert store.lease_remaining(lease.id) is None


async def test_compaction_behind_the_watch_relists(etcd1: EtcdCluster, prefix: str) -> None:
    async with EtcdClient(etcd1.endpoints) as client:
        await client.put(f"{prefix}keep", "1")
        await client.put(f"{prefix}gone", "1")
        store = EtcdStore(client, prefix)
        recorder = Recorder(store)
        async with running(store):
            assert await store.wait_synced(5)
        # The watch is down; meanwhile keys change and history is compacted away.
        await client.delete_range(f"{prefix}gone")
        await client.put(f"{prefix}new", "2")
        latest = await client.put(f"{prefix}keep", "3")
        await client.compact(latest.revision)
        async with running(store):
            await eventually(lambda: store.relists == 1)
            assert [(e.key, e.value) for e in store.range(prefix)] == [
                (f"{prefix}keep", b"3"),
                (f"{prefix}new", b"2"),
            ]
            assert recorder.calls == [None, None]
            assert store.revision == latest.revision
            await client.put(f"{prefix}after", "4")
            await eventually(lambda: store.get(f"{prefix}after") is not None)


async def test_watch_resumes_on_another_member_when_one_dies() -> None:
    require_etcd()
    with EtcdCluster(size=3) as cluster:
        async with (
            EtcdClient(cluster.endpoints) as client,
            EtcdClient(cluster.endpoints, timeout=1.0) as writer,
        ):
            await writer.put("/skydns/a", "1")
            store = EtcdStore(client, "/skydns/", backoff_base=0.05)
            recorder = Recorder(store)
            async with running(store):
                assert await store.wait_synced(5)
                await eventually(lambda: store.watching)
                cluster.kill(client.current)
                for i in range(5):
                    await writer.put(f"/skydns/b{i}", str(i))
                await eventually(lambda: len(store) == 6, timeout=10)
                assert store.relists == 0 and store.watch_restarts >= 1
                assert recorder.keys() == [f"/skydns/b{i}" for i in range(5)]  # each once


async def test_etcd_down_keeps_records_then_resumes_without_duplicates() -> None:
    require_etcd()
    with EtcdCluster(size=1) as cluster:
        async with EtcdClient(cluster.endpoints, timeout=1.0) as client:
            for key in SEED_KEYS:
                await client.put(key, SEED_VALUE)
            store = EtcdStore(client, "/skydns/", backoff_base=0.05, backoff_cap=0.3)
            recorder = Recorder(store)
            async with running(store):
                assert await store.wait_synced(5)
                await client.put("/skydns/local/kube/default/web", '{"host":"10.0.0.2"}')
                await eventually(lambda: len(store) == 3 and store.watching)
                cluster.stop_all()
                await eventually(lambda: store.errors >= 2, timeout=10)
                assert store.synced and len(store) == 3  # the last known records
                assert store.get(SEED_KEYS[0]) is not None
                cluster.restart_all()
                await client.put("/skydns/local/kube/default/db", '{"host":"10.0.0.3"}')
                await eventually(lambda: len(store) == 4, timeout=10)
                assert store.relists == 0 and store.watch_restarts >= 1
                assert recorder.calls[0] is None and None not in recorder.calls[1:]
                assert recorder.keys() == [
                    "/skydns/local/kube/default/web",
                    "/skydns/local/kube/default/db",
                ]


@pytest.mark.parametrize("seed", range(5))
def test_sorted_keys_versions_match_a_sorted_list(seed: int) -> None:
    """Random batches of adds and removes, small chunks so they split and empty; every
    old version stays as it was (readers may hold it)."""
    import random

    from clusterdns.sources.etcd import store as store_module

    rng = random.Random(seed)
    chunk = store_module.CHUNK
    store_module.CHUNK = 4
    try:
        present: set[str] = set()
        version = SortedKeys([])
        history: list[tuple[SortedKeys, list[str]]] = []
        for _ in range(300):
            added = sorted(
                {f"/k{rng.randrange(200):03d}" for _ in range(rng.randrange(6))} - present
            )
            removed = {k for k in present if rng.random() < 0.05}
            version = version.with_changes(added, removed)
            present = (present | set(added)) - removed
            history.append((version, sorted(present)))
            prefix = f"/k{rng.randrange(20):02d}"
            assert list(version.starting_with(prefix)) == [
                k for k in sorted(present) if k.startswith(prefix)
            ]
        for old, expected in history:
            assert list(old) == expected and len(old) == len(expected)
    finally:
        store_module.CHUNK = chunk


@pytest.mark.parametrize("seed", range(5))
def test_keys_with_a_prefix_by_bisection_match_a_scan(seed: int) -> None:
    """with_prefix() slices chunks between two bisections; it must list exactly what a
    scan finds, across chunk boundaries and with U+10FFFF right after the prefix."""
    import random

    from clusterdns.sources.etcd import store as store_module

    rng = random.Random(seed)
    parts = ["a", "b", "ab", "b\U0010ffff", "c", ""]
    keys = sorted(
        {"/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(400)}
    )
    chunk = store_module.CHUNK
    store_module.CHUNK = 7  # many chunks
    try:
        index = SortedKeys.from_sorted(keys)
    finally:
        store_module.CHUNK = chunk
    for prefix in ["", "a", "a/", "b", "b\U0010ffff", "ab/", "c/a", "zz", "/"]:
        expected = [k for k in keys if k.startswith(prefix)]
        assert index.with_prefix(prefix) == expected, prefix
        limited = index.with_prefix(prefix, 3)
        assert limited == expected[: len(limited)] and (len(limited) > 3) == (len(expected) > 3)
