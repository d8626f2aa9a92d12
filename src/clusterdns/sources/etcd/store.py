"""EtcdStore: an in-memory copy of every key under a prefix, fed by one etcd watch.

List at a revision (paged), watch from the next revision, resume after a disconnect from
the last revision applied (with backoff), relist in full when the watch's revision was
compacted. Nothing is cleared on an error: once listed, the last known keys stay readable
while etcd is unreachable, and ``synced`` stays True.

Who reads, who writes, and why that is safe:

* **Writer**: :meth:`EtcdStore.run`, one task on the event loop. It never mutates a
  structure a reader can hold: each watch response (one batch of events; all events of
  one etcd revision, so one transaction, are in the same batch) or relist builds a new
  :class:`_Snapshot` (a new dict, and a new sorted key list when the set of keys changed)
  and publishes it with one attribute assignment. The lease table is likewise replaced
  entry by entry with single ``dict`` assignments of immutable tuples.
* **Readers**: :meth:`get`, :meth:`range`, :meth:`has_prefix` and
  :meth:`lease_remaining`, called from the event loop and from UDP receive threads. Each
  reads ``self._snapshot`` once and works on that object only, so it sees the state
  before or after a whole batch, never half of one (a reader never sees half of a
  Service that ``clusterdns sync`` wrote in one transaction).

Copying the entries per batch costs O(keys) (about a millisecond per 100k keys); a burst
of changes arrives as few large watch responses, so it is paid per response, not per key.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..kube.reflector import Backoff
from .client import (
    Compacted,
    EtcdClient,
    EtcdError,
    WatchCompacted,
    WatchEvent,
    prefix_end,
)

__all__ = ["EtcdEntry", "EtcdStore"]

log = logging.getLogger("clusterdns.sources.etcd")

PAGE_SIZE = 1000
LEASE_REFRESH_INTERVAL = 1.0  # seconds between checks for leases to (re)fetch
LEASE_FETCH_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class EtcdEntry:
    key: str  # full key, e.g. "/skydns/local/kube/svc/default/mysql-service/2f1020d6"
    value: bytes
    lease: int  # 0: no lease
    mod_revision: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What readers see; never mutated once published."""

    entries: dict[str, EtcdEntry]
    keys: list[str]  # sorted (code point order = etcd's UTF-8 byte order)


_EMPTY = _Snapshot({}, [])


@dataclass(frozen=True, slots=True)
class _Lease:
    deadline: float  # clock() at which the lease runs out unless renewed
    granted: int


@dataclass
class _Bound:
    """A bound on :meth:`EtcdStore.run` for tests: stop after this many watch calls."""

    watches: int | None = None
    count: int = field(default=0)


def _key_text(key: bytes) -> str:
    return key.decode("utf-8", errors="surrogateescape")


class EtcdStore:
    """Every key under ``prefix``, kept current by :meth:`run` (see the module docstring)."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.page_size = page_size
        self.synced = False
        self.generation = 0
        self.revision = 0  # the etcd revision the copy is at (last list or applied event)
        self.errors = 0
        self.relists = 0  # lists after the first one
        self.watch_restarts = 0  # watches resumed from a revision without a list
        self.last_error: str | None = None
        self.watching = False  # a watch stream is established right now
        self._snapshot = _EMPTY
        self._synced_event = asyncio.Event()
        self._subscribers: list[Callable[[frozenset[str] | None], None]] = []
        self._leases: dict[int, _Lease] = {}  # read by any thread, written by the loop
        self._holders: dict[int, int] = {}  # lease → keys holding it (the loop only)
        self._lease_wakeup = asyncio.Event()
        self._listed = False

    # --- readers (any thread, no awaits) -------------------------------------------------

    def get(self, key: str) -> EtcdEntry | None:
        return self._snapshot.entries.get(key)

    def range(self, prefix: str) -> list[EtcdEntry]:
        """Every entry whose key starts with ``prefix``, in key order."""
        snapshot = self._snapshot
        keys = snapshot.keys
        if not prefix:
            start, end = 0, len(keys)
        else:
            start = bisect.bisect_left(keys, prefix)
            end = bisect.bisect_left(keys, _str_prefix_end(prefix), lo=start)
        entries = snapshot.entries
        return [entries[k] for k in keys[start:end]]

    def has_prefix(self, prefix: str) -> bool:
        keys = self._snapshot.keys
        i = bisect.bisect_left(keys, prefix)
        return i < len(keys) and keys[i].startswith(prefix)

    def __len__(self) -> int:
        return len(self._snapshot.keys)

    def lease_remaining(self, lease: int) -> float | None:
        """Seconds left on ``lease``, from its TTL fetched once and the clock.

        None when unknown: not fetched yet, or the estimate ran out while keys still hold
        the lease (its owner renewed it; it is fetched again within a second).
        """
        known = self._leases.get(lease)
        if known is None:
            return None
        left = known.deadline - self.clock()
        return left if left > 0 else None

    # --- sync and notification -----------------------------------------------------------

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first full list; False on timeout."""
        try:
            await asyncio.wait_for(self._synced_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def subscribe(self, callback: Callable[[frozenset[str] | None], None]) -> None:
        """Call ``callback(changed keys)`` on the event loop after each applied batch;
        ``callback(None)`` after a (re)list: anything may have changed."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[frozenset[str] | None], None]) -> None:
        self._subscribers = [c for c in self._subscribers if c != callback]

    def _notify(self, changed: frozenset[str] | None) -> None:
        for callback in self._subscribers:
            try:
                callback(changed)
            except Exception:
                log.exception("etcd: store subscriber %r failed", callback)

    # --- writer --------------------------------------------------------------------------

    async def run(self, *, max_watches: int | None = None) -> None:
        """Keep the copy current until cancelled; errors are logged, counted and retried.

        ``max_watches`` (tests) returns after that many watch calls. Cancelled and run
        again, it resumes watching from the revision it had reached.
        """
        leases = asyncio.create_task(self._refresh_leases())
        try:
            await self._run(_Bound(max_watches))
        finally:
            leases.cancel()
            try:
                await leases
            except asyncio.CancelledError:
                pass

    async def _run(self, bound: _Bound) -> None:
        backoff = Backoff(base=self.backoff_base, cap=self.backoff_cap)
        failing = False
        need_list = not self._listed  # run() again after a cancel resumes the watch
        while bound.watches is None or bound.count < bound.watches:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    backoff.reset()
                else:
                    self.watch_restarts += 1
                bound.count += 1
                await self._watch(backoff)
            except asyncio.CancelledError:
                raise
            except WatchCompacted as exc:
                # Normal after a long disconnect: the revision we had is gone.
                log.info("etcd: watch revision %d compacted (at %d), relisting",
                         self.revision + 1, exc.compact_revision)  # fmt: skip
                need_list = True
                continue
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff.next_delay()
                level = logging.DEBUG if failing else logging.WARNING
                what = "lost the watch on" if self._listed else "cannot list"
                log.log(level, "etcd: %s %s (%s), retrying in %.1fs",
                        what, self.prefix, self.last_error, delay)  # fmt: skip
                failing = True
                await asyncio.sleep(delay)
                continue
            if failing:
                failing = False
                log.info("etcd: watch on %s re-established", self.prefix)

    async def _list(self) -> None:
        """One full list at one revision, page by page; the copy changes only at the end."""
        entries: dict[str, EtcdEntry] = {}
        end = prefix_end(self.prefix)
        key: str | bytes = self.prefix
        revision = 0
        while True:
            try:
                page = await self.client.range(key, end, revision=revision, limit=self.page_size)
            except Compacted:
                if not revision:
                    raise
                # Compacted between two pages: start over at the latest revision.
                entries.clear()
                key, revision = self.prefix, 0
                continue
            revision = revision or page.revision
            for kv in page.kvs:
                text = _key_text(kv.key)
                entries[text] = EtcdEntry(text, kv.value, kv.lease, kv.mod_revision)
            if not page.more or not page.kvs:
                break
            key = page.kvs[-1].key + b"\x00"
        if self._listed:
            self.relists += 1
        self._listed = True
        self._publish(_Snapshot(entries, sorted(entries)))
        self.revision = revision
        holders: dict[int, int] = {}
        for entry in entries.values():
            if entry.lease:
                holders[entry.lease] = holders.get(entry.lease, 0) + 1
        self._holders = holders
        self._leases_changed()
        log.debug("etcd: listed %d keys under %s at revision %d",
                  len(entries), self.prefix, revision)  # fmt: skip
        self._notify(None)
        if not self.synced:
            self.synced = True
            self._synced_event.set()

    async def _watch(self, backoff: Backoff) -> None:
        """One watch call from ``revision + 1``, applying each response as one batch."""
        events = self.client.watch(
            self.prefix, prefix_end(self.prefix), start_revision=self.revision + 1
        )
        try:
            async for batch in events:
                if batch.created:
                    self.watching = True
                    backoff.reset()  # the connection works
                if batch.events:
                    self._apply(batch.events)
        finally:
            self.watching = False
            await events.aclose()

    def _apply(self, events: Iterable[WatchEvent]) -> None:
        old = self._snapshot
        entries = dict(old.entries)
        changed: set[str] = set()
        added: dict[str, None] = {}  # new keys, in order
        removed: set[str] = set()
        holders = self._holders
        new_lease = False
        applied = self.revision  # all events of one revision come in one response
        for event in events:
            kv = event.kv
            if kv.mod_revision <= applied:
                continue  # already applied (a watch resumed from an older revision)
            key = _key_text(kv.key)
            before = entries.get(key)
            if before is not None and before.lease:
                self._release(before.lease)
            if event.type == "DELETE":
                if entries.pop(key, None) is not None:
                    changed.add(key)
                    if key in added:
                        del added[key]
                    else:
                        removed.add(key)
            else:
                entry = EtcdEntry(key, kv.value, kv.lease, kv.mod_revision)
                if key not in entries:
                    if key in removed:
                        removed.discard(key)
                    else:
                        added[key] = None
                entries[key] = entry
                changed.add(key)
                if entry.lease:
                    holders[entry.lease] = holders.get(entry.lease, 0) + 1
                    new_lease = new_lease or entry.lease not in self._leases
            self.revision = max(self.revision, kv.mod_revision)
        if not changed:
            return
        keys = old.keys
        if added or removed:
            keys = [k for k in keys if k not in removed] if removed else list(keys)
            for key in added:
                bisect.insort(keys, key)
        self._publish(_Snapshot(entries, keys))
        if new_lease:
            self._lease_wakeup.set()
        self._notify(frozenset(changed))

    def _publish(self, snapshot: _Snapshot) -> None:
        self._snapshot = snapshot  # one assignment: readers see all of it or none
        self.generation += 1

    # --- leases --------------------------------------------------------------------------

    def _release(self, lease: int) -> None:
        count = self._holders.get(lease, 0) - 1
        if count > 0:
            self._holders[lease] = count
        else:
            self._holders.pop(lease, None)
            self._leases.pop(lease, None)  # no key holds it any more

    def _leases_changed(self) -> None:
        for lease in [lease for lease in self._leases if lease not in self._holders]:
            del self._leases[lease]
        self._lease_wakeup.set()

    def _leases_to_fetch(self) -> list[int]:
        """Leases held by keys whose TTL is unknown or whose estimate ran out."""
        now = self.clock()
        return [
            lease
            for lease in self._holders
            if (known := self._leases.get(lease)) is None or known.deadline <= now
        ]

    async def _refresh_leases(self) -> None:
        """Fetch a lease's TTL once when a key with a new lease appears, and again only
        when the estimate runs out while keys still hold it (its owner kept it alive)."""
        semaphore = asyncio.Semaphore(LEASE_FETCH_CONCURRENCY)

        async def fetch(lease: int) -> None:
            async with semaphore:
                try:
                    info = await self.client.lease_timetolive(lease)
                except EtcdError as exc:
                    log.debug("etcd: lease %x: time to live unknown (%s)", lease, exc)
                    return
            if info.ttl > 0 and lease in self._holders:
                self._leases[lease] = _Lease(self.clock() + info.ttl, info.granted_ttl)

        while True:
            try:
                await asyncio.wait_for(self._lease_wakeup.wait(), LEASE_REFRESH_INTERVAL)
            except TimeoutError:
                pass
            self._lease_wakeup.clear()
            todo = self._leases_to_fetch()
            if todo:
                await asyncio.gather(*(fetch(lease) for lease in todo))


def _str_prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    last = prefix[-1]
    if ord(last) < 0x10FFFF:
        return prefix[:-1] + chr(ord(last) + 1)
    return _str_prefix_end(prefix[:-1]) if len(prefix) > 1 else "\U0010ffff" * 2
