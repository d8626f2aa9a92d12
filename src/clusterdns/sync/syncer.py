"""The syncer: mirror the cluster model's Services into SkyDNS records in etcd (kube2sky).

It runs the same cluster source as the kubernetes plugin into a
:class:`~clusterdns.sources.model.ClusterModel` and subscribes to its changes. Only the
elected leader writes (see :mod:`.election`):

1. on election, a full **reconcile**: read every key under the domain's prefix, compute
   every Service's records, then create what is missing, rewrite what differs and delete
   what no Service owns (``sync`` owns everything under ``<path>/<reversed domain>/``);
2. then each model change rewrites only the Services it names, diffed against what this
   leader knows etcd holds for them.

Each Service's change is one etcd transaction (several small Services share one), so a
reader never sees half a Service; every transaction is guarded by the election key, so a
deposed leader's write fails. A Service needing more operations than etcd allows in one
transaction (``--max-txn-ops``, 128 by default) is written in several, puts before
deletes, so a reader sees old and new records together for a moment but never neither.

Everything here runs on one event loop; nothing is shared with other threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypeVar

from clusterdns.sources.etcd.client import (
    DeleteRange,
    EtcdClient,
    EtcdError,
    Put,
    prefix_end,
)
from clusterdns.sources.kube.reflector import Backoff
from clusterdns.sources.model import Change, ClusterModel

from .election import Election, LostLeadership
from .records import domain_prefix, service_records

__all__ = ["ClusterSource", "Syncer"]

log = logging.getLogger("clusterdns.sync")

ServiceKey: TypeAlias = tuple[str, str]  # (namespace, name)
Records: TypeAlias = dict[str, str]  # etcd key → value
MAX_TXN_OPS = 120  # etcd's --max-txn-ops defaults to 128
READ_PAGE = 1000
T = TypeVar("T")


class ClusterSource(Protocol):
    """What the kubernetes plugin's sources (API, manifests) offer."""

    async def run(self, model: ClusterModel) -> None: ...


@dataclass
class _Batch:
    """Operations for one transaction and the Services they bring up to date."""

    ops: list[Put | DeleteRange] = field(default_factory=list)
    services: dict[ServiceKey, Records] = field(default_factory=dict)


@dataclass
class SyncCounters:
    txns: int = 0  # successful transactions
    puts: int = 0
    deletes: int = 0
    reconciles: int = 0
    errors: int = 0


class Syncer:
    def __init__(
        self,
        *,
        client: EtcdClient,
        model: ClusterModel,
        source: ClusterSource,
        election: Election,
        path: str = "/skydns",
        domain: str = "cluster.local",
        ttl: int = 30,
        max_txn_ops: int = MAX_TXN_OPS,
    ) -> None:
        self.client = client
        self.model = model
        self.source = source
        self.election = election
        self.domain = domain.strip(".").lower()
        self.prefix = domain_prefix(path, self.domain)
        self.ttl = ttl
        self.max_txn_ops = max_txn_ops
        self.counters = SyncCounters()
        self.reconciled = asyncio.Event()  # set after each reconcile as leader (tests)
        self._written: dict[ServiceKey, Records] = {}  # what etcd holds, as the leader knows
        self._pending: set[ServiceKey] = set()
        self._full = False
        self._wake = asyncio.Event()

    # --- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the cluster source and, once it has listed, lead or follow forever."""
        self.model.subscribe(self._on_change)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.source.run(self.model))
                group.create_task(self._lead_forever())
        finally:
            self.model.unsubscribe(self._on_change)

    async def _lead_forever(self) -> None:
        while not await self.model.wait_synced(10):
            log.info("sync: waiting for the first list of services and endpoints")
        log.info("sync: cluster state listed (%d services)", self.model.service_count())
        while True:
            await self.election.campaign()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self.election.keep_alive())
                    group.create_task(self._write_forever())
            except* LostLeadership as lost:
                self.election.resign_locally()
                log.warning("sync: lost leadership (%s); stopped writing", lost.exceptions[0])

    def _on_change(self, change: Change) -> None:
        if change.full:
            self._full = True
        else:
            self._pending.update(change.services)
        if self._full or self._pending:
            self._wake.set()

    async def _write_forever(self) -> None:
        backoff = Backoff(base=0.1, cap=2.0)
        self._full = True
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            full = self._full
            try:
                if full:
                    self._full = False
                    self._pending.clear()
                    await self.reconcile()
                else:
                    keys, self._pending = self._pending, set()
                    try:
                        await self.write_services(keys)
                    except Exception:
                        self._pending |= keys
                        raise
                backoff.reset()
            except LostLeadership:
                raise
            except Exception as exc:
                # etcd errors are expected; anything else is a bug, but keep writing.
                self._full = self._full or full  # a failed reconcile is done again in full
                self.counters.errors += 1
                delay = backoff.next_delay()
                if isinstance(exc, EtcdError):
                    log.warning("sync: etcd write failed (%s), retrying in %.1fs", exc, delay)
                else:
                    log.exception("sync: write failed, retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                self._wake.set()

    # --- reconcile and writes ------------------------------------------------------------

    def desired(self, key: ServiceKey) -> Records:
        svc = self.model.service(*key)
        if svc is None:
            return {}
        endpoints = self.model.endpoints(*key) if svc.headless else ()
        return service_records(svc, endpoints, prefix=self.prefix, domain=self.domain, ttl=self.ttl)

    def owner(self, key: str) -> ServiceKey | None:
        """The Service an etcd key under the prefix belongs to (None: no Service's)."""
        parts = key[len(self.prefix) :].split("/")
        if len(parts) >= 3 and parts[0] == "svc" and all(parts[1:3]):
            return (parts[1], parts[2])  # .../svc/<ns>/<name>[/...]
        if len(parts) == 2 and all(parts):
            return (parts[0], parts[1])  # the legacy <ns>/<name> key
        return None

    async def read_all(self) -> Records:
        """Every key under the prefix, read page by page at one revision."""
        found: Records = {}
        end = prefix_end(self.prefix)
        key: str | bytes = self.prefix
        revision = 0
        while True:
            page = await self.client.range(key, end, revision=revision, limit=READ_PAGE)
            revision = revision or page.revision
            for kv in page.kvs:
                found[kv.key.decode(errors="surrogateescape")] = kv.value.decode(
                    errors="surrogateescape"
                )
            if not page.more or not page.kvs:
                return found
            key = page.kvs[-1].key + b"\x00"

    async def reconcile(self) -> None:
        """Make etcd hold exactly the records of the Services in the model."""
        actual = await self.read_all()
        held: dict[ServiceKey, Records] = {}
        orphans: list[str] = []
        for key, value in actual.items():
            owner = self.owner(key)
            if owner is None:
                orphans.append(key)
            else:
                held.setdefault(owner, {})[key] = value
        wanted = {(svc.namespace, svc.name) for svc in self.model.services()}
        self._written = held
        keys = sorted(wanted | held.keys())
        changed = await self.write_services(keys)
        for chunk in _chunks(orphans, self.max_txn_ops):
            await self._commit(_Batch([DeleteRange(k) for k in chunk]))
        self.counters.reconciles += 1
        log.info("sync: reconciled %d services under %s: %d rewritten, %d stray keys deleted",
                 len(wanted), self.prefix, changed, len(orphans))  # fmt: skip
        self.reconciled.set()

    async def write_services(self, keys: Iterable[ServiceKey]) -> int:
        """Bring these Services' records in etcd up to date; returns how many changed."""
        batch = _Batch()
        changed = 0
        for key in keys:
            new = self.desired(key)
            old = self._written.get(key, {})
            puts = [Put(k, v) for k, v in new.items() if old.get(k) != v]
            deletes = [DeleteRange(k) for k in old if k not in new]
            if not puts and not deletes:
                continue
            changed += 1
            ops: list[Put | DeleteRange] = [*puts, *deletes]
            if len(ops) > self.max_txn_ops:
                # Too big for one transaction: several, puts first (see the docstring).
                await self._flush(batch)
                batch = _Batch()
                chunks = list(_chunks(ops, self.max_txn_ops))
                for i, chunk in enumerate(chunks):
                    last = i == len(chunks) - 1
                    await self._commit(_Batch(list(chunk), {key: new} if last else {}))
                continue
            if len(batch.ops) + len(ops) > self.max_txn_ops:
                await self._flush(batch)
                batch = _Batch()
            batch.ops.extend(ops)
            batch.services[key] = new
        await self._flush(batch)
        return changed

    async def _flush(self, batch: _Batch) -> None:
        if batch.ops:
            await self._commit(batch)

    async def _commit(self, batch: _Batch) -> None:
        """One guarded transaction; raises :class:`LostLeadership` if no longer leader."""
        if not self.election.valid:
            raise LostLeadership("lease renewal overdue")
        result = await self.client.txn([self.election.guard()], batch.ops)
        if not result.succeeded:
            raise LostLeadership("the election key is no longer ours")
        self.counters.txns += 1
        for op in batch.ops:
            if isinstance(op, Put):
                self.counters.puts += 1
            else:
                self.counters.deletes += 1
        for key, records in batch.services.items():
            if records:
                self._written[key] = records
            else:
                self._written.pop(key, None)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
