"""The ``etcd`` plugin at run time: a watched copy of the keys, outcomes kept per question.

Who reads, who writes, and why that is safe:

* The store (sources/etcd/store.py) is written by its watch task on the event loop and
  swaps whole snapshots; :class:`Answers` only reads it, from any thread.
* Outcomes are kept in ``_outcomes`` (question → Outcome) and indexed by the etcd paths
  they read. Readers are the UDP receive threads (``answer_fast``) and the event loop
  (``serve``); both add entries. The store's change callback, on the event loop, drops the
  entries whose paths a batch touched. Adding and dropping both hold ``_lock`` and an entry
  is only added if no batch was applied while it was computed (``_generation`` unchanged),
  so an outcome computed from the old keys is never stored after its drop ran.
* Lookups of ``_outcomes`` take no lock: one dict read, atomic under the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Final, Protocol

import dns.message
import dns.rcode

from clusterdns.core.explain import Rule, Why
from clusterdns.core.fast import SERIAL_SLACK, SLOW, ChangeLog, FastReply, FastResult
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.etcd.answers import (
    Answers,
    AnswerSettings,
    Outcome,
    RecordStore,
    soa_record,
)
from clusterdns.plugins.etcd.config import EtcdConfig
from clusterdns.plugins.etcd.records import wildcard_path
from clusterdns.wire import Query
from clusterdns.wire.build import (
    TYPE_CNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_PTR,
    Record,
    build_reply,
    mx_rdata,
    name_rdata,
)
from clusterdns.wire.render import reply_limit

log = logging.getLogger("clusterdns.plugins.etcd")

PLUGIN: Final = "etcd"
STARTUP_WAIT: Final = 5.0  # CoreDNS's etcdTimeout: how long a query waits for the first list
# Keys below a name past which its first answer is not worked out on a UDP thread.
LARGE_SUBTREE: Final = 256
OUTCOME_LIMIT: Final = 200_000  # questions kept; past it the oldest goes, one per new one
CHANGE_LOG: Final = 1024  # batches remembered for changes_since
# The reply memo's token for "the SOA serial moved": not a path (paths start with "/").
SERIAL_TOKEN: Final = "serial"
_NAMED_TYPES: Final = (TYPE_CNAME, TYPE_NS, TYPE_PTR)


class WatchedStore(RecordStore, Protocol):
    """The store as the plugin drives it (sources/etcd/store.py's EtcdStore)."""

    synced: bool
    generation: int

    async def run(self) -> None: ...
    async def wait_synced(self, timeout: float | None = None) -> bool: ...
    def more_than(self, prefix: str, count: int) -> bool: ...
    def subscribe(self, callback: _Callback) -> None: ...
    def unsubscribe(self, callback: _Callback) -> None: ...


class _Callback(Protocol):
    def __call__(self, changed: frozenset[str] | None, /) -> None: ...


class Closable(Protocol):
    async def close(self) -> None: ...


def ancestors(key: str) -> set[str]:
    """Every path a read of which sees ``key``: the key and each of its parents."""
    found = {key}
    at = key.rfind("/")
    while at > 0:
        key = key[:at]
        found.add(key)
        at = key.rfind("/")
    if at == 0:
        found.add("/")  # the whole keyspace (``path /``)
    return found


def _collect(name: str, qtype: int) -> None:
    """First pass look-ups: just note them (Outcome.lookups), answer nothing."""
    return None


class Etcd(Plugin):
    """Serves SkyDNS records from an in-memory copy of the keys under ``config.path``."""

    name = PLUGIN

    def __init__(
        self,
        config: EtcdConfig,
        store: WatchedStore,
        *,
        client: Closable | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.answers = Answers(store, self._settings())
        self._lock = threading.Lock()
        # Oldest first: when full, the oldest outcome makes room (no bulk pause).
        self._outcomes: OrderedDict[tuple[bytes, int], Outcome] = OrderedDict()
        self._index: dict[str, set[tuple[bytes, int]]] = {}
        self._generation = 0
        self._changes = ChangeLog(CHANGE_LOG)
        self.serial = int(time.time())
        self._soa: dict[str, tuple[int, Record]] = {}
        self._task: asyncio.Task[None] | None = None
        self._deadline = 0.0
        self.last_change: float | None = None
        store.subscribe(self._on_change)

    def _settings(self) -> AnswerSettings:
        config = self.config
        return AnswerSettings(
            root=config.path,
            zones=config.zones,
            fallthrough=config.fallthrough,
            min_lease_ttl=config.min_lease_ttl,
            max_lease_ttl=config.max_lease_ttl,
        )

    # --- VersionedRecords ------------------------------------------------------------------

    @property
    def zones(self) -> tuple[str, ...]:
        return self.config.zones

    @property
    def generation(self) -> int:
        return self._generation

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        """The paths (and SERIAL_TOKEN) touched after ``generation``; None if unknown."""
        return self._changes.since(generation, self._generation)

    # --- lifecycle -------------------------------------------------------------------------

    def ready(self) -> bool | None:
        """Not ready until the first full list; ready from then on, even if etcd goes."""
        return self.store.synced

    def adopt(self, previous: Plugin) -> None:
        """Reload with the same settings: keep the running watch and its copy of the keys."""
        if not isinstance(previous, Etcd) or previous.config != self.config:
            return
        if previous._task is None:
            return
        self.store.unsubscribe(self._on_change)
        previous.store.unsubscribe(previous._on_change)
        self.store, self.client, self._task = previous.store, previous.client, previous._task
        previous._task, previous.client = None, None
        self.answers = Answers(self.store, self._settings())
        self.serial = previous.serial
        self.store.subscribe(self._on_change)

    async def start(self) -> None:
        self._deadline = time.monotonic() + STARTUP_WAIT
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.store.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store retries on its own; reaching here is a bug. Keep serving.
            log.exception("etcd: watch stopped")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    def _on_change(self, changed: frozenset[str] | None) -> None:
        """A batch was applied to the store (None: a full list): drop what it touched."""
        serial = max(self.serial, int(time.time()))
        moved = serial != self.serial
        self.serial = serial
        with self._lock:
            self.answers.forget(changed)
            tokens: set[Hashable] | None = None
            if changed is None:
                self._outcomes = OrderedDict()
                self._index = {}
            else:
                tokens = set()
                for key in changed:
                    tokens.update(ancestors(key))
                outcomes, index = self._outcomes, self._index
                for token in tokens:
                    for question in index.pop(token, ()):  # type: ignore[call-overload]
                        outcomes.pop(question, None)
                if moved:
                    tokens.add(SERIAL_TOKEN)
            self._changes.record(self._generation + 1, tokens)  # before it is published
            self._generation += 1
        self.last_change = time.monotonic()

    # --- answering -------------------------------------------------------------------------

    def _outcome(self, query: Query, zone: str | None = None) -> Outcome | None:
        """The kept outcome of ``query``'s question, computed and kept on first sight;
        None when the name is not in our zones."""
        question = (query.qname_lower, query.qtype)
        kept = self._outcomes.get(question)
        if kept is not None and (kept.expires == math.inf or kept.expires > time.monotonic()):
            return kept
        name = query.name
        if zone is None:
            zone = self.answers.zone_of(name)
            if zone is None:
                return None
        generation = self._generation
        outcome = self.answers.outcome(name, query.qname_lower, query.qtype, zone, _collect)
        with self._lock:
            if self._generation == generation:
                outcomes, index = self._outcomes, self._index
                if question not in outcomes and len(outcomes) >= OUTCOME_LIMIT:
                    oldest, old = outcomes.popitem(last=False)
                    for path in old.depends:
                        members = index.get(path)
                        if members is not None:
                            members.discard(oldest)
                            if not members:
                                del index[path]
                outcomes[question] = outcome
                for path in outcome.depends:
                    index.setdefault(path, set()).add(question)
        return outcome

    def _soa_record(self, zone: str) -> Record:
        serial = self.serial
        kept = self._soa.get(zone)
        if kept is not None and kept[0] == serial:
            return kept[1]
        record = soa_record(zone, serial)
        self._soa[zone] = (serial, record)
        return record

    def render(self, query: Query, outcome: Outcome, *, limit: int, payload: int) -> bytes:
        """The reply to ``query`` for ``outcome`` (the SOA with the current serial)."""
        answer: Sequence[Record] = outcome.answer
        authority: Sequence[Record] = ()
        if outcome.soa == 1:
            answer = (self._soa_record(outcome.zone),)
        elif outcome.soa == 2:
            authority = (self._soa_record(outcome.zone),)
        return build_reply(
            query,
            rcode=outcome.rcode,
            answer=answer,
            authority=authority,
            additional=outcome.additional,
            limit=limit,
            payload=payload,
        )

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """The fast path (may run on a UDP thread): None outside our zones; SLOW before the
        first list, for fall through, and when a target must be looked up elsewhere."""
        question = (query.qname_lower, query.qtype)
        outcome = self._outcomes.get(question)
        if outcome is None or (outcome.expires != math.inf and outcome.expires <= time.monotonic()):
            zone = self.answers.zone_of(query.name)
            if zone is None:
                return None
            if not self.store.synced:
                return SLOW
            if self._large(query.name):
                return SLOW  # the event loop works it out once; then it is kept
            outcome = self._outcome(query, zone)
            assert outcome is not None
        if outcome.fallthrough or outcome.lookups:
            return SLOW
        wire = self.render(query, outcome, limit=limit, payload=payload)
        depends: frozenset[Hashable] = outcome.depends
        until = outcome.expires
        if outcome.soa == 1:  # the apex SOA itself: its serial is the answer
            depends = depends | {SERIAL_TOKEN}
        elif outcome.soa:  # a negative answer: the serial may lag (core.fast.SERIAL_SLACK)
            until = min(until, time.monotonic() + SERIAL_SLACK)
        return FastReply(wire, until=until, depends=depends)

    def _large(self, name: str) -> bool:
        """Does a question for ``name`` read a large subtree (SkyDNS answers a parent name
        with every record below it: ``svc.<zone>`` reads them all)? Such an answer is
        worked out on the event loop, not on a UDP thread that serves everyone else."""
        path, _ = wildcard_path(name, self.config.path)
        return self.store.more_than(path.rstrip("/") + "/", LARGE_SUBTREE)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        zone = self.answers.zone_of(query.name)
        if zone is None:
            return await next_handler(req)
        if not self.store.synced:
            remaining = self._deadline - time.monotonic()
            if remaining > 0:
                await self.store.wait_synced(remaining)
            if not self.store.synced:
                log.debug("etcd: no records yet for %s: etcd not listed", query.name)
                return Reply.error(dns.rcode.SERVFAIL, plugin=PLUGIN)
        outcome = self._outcome(query, zone)
        assert outcome is not None
        if req.why is not None:
            rule = Rule.FALLTHROUGH if outcome.fallthrough else Rule.ETCD
            req.why.append(Why(PLUGIN, rule, f"records under {self.config.path} for {zone}"))
        if outcome.fallthrough:
            return await next_handler(req)
        if outcome.lookups:
            outcome = await self._resolve_elsewhere(req, zone, outcome)
        limit = reply_limit(
            query, tcp=req.transport == "tcp", max_udp=req.block.settings.max_udp_size
        )
        wire = self.render(query, outcome, limit=limit, payload=req.block.settings.max_udp_size)
        return Reply.of_wire(wire, plugin=PLUGIN)

    async def _resolve_elsewhere(self, req: Request, zone: str, outcome: Outcome) -> Outcome:
        """Targets outside the zone: ask the server (cache, forward...) as CoreDNS's
        upstream does, then decide again with the answers."""
        found: dict[tuple[str, int], Sequence[Record] | None] = {}
        for name, qtype in sorted(outcome.lookups):
            try:
                reply = await req.lookup(name, qtype)
            except Exception as err:  # a failed look-up leaves the record out, as CoreDNS
                log.debug("etcd: looking up %s failed: %s", name, err)
                reply = None
            found[(name, qtype)] = None if reply is None else answer_records(reply)
        query = req.query
        return self.answers.outcome(
            query.name,
            query.qname_lower,
            query.qtype,
            zone,
            lambda name, qtype: found.get((name, qtype)),
        )


def answer_records(reply: Reply) -> list[Record]:
    """The answer section of another block's reply as records (names lower-cased)."""
    try:
        message = reply.to_message()
    except Exception:  # a reply we cannot read counts as an empty answer
        return []
    if message is None:
        return []
    return message_records(message)


def message_records(message: dns.message.Message) -> list[Record]:
    records: list[Record] = []
    for rrset in message.answer:
        owner = rrset.name.canonicalize().to_wire()
        assert owner is not None
        for rdata in rrset:
            parts: tuple[bytes, ...]
            if rrset.rdtype in _NAMED_TYPES:
                target = rdata.target.canonicalize().to_wire()
                parts = name_rdata(target)
            elif rrset.rdtype == TYPE_MX:
                exchange = rdata.exchange.canonicalize().to_wire()
                parts = mx_rdata(rdata.preference, exchange)
            else:
                parts = (rdata.to_wire(),)
            records.append((owner, int(rrset.rdtype), rrset.ttl, parts))
    return records


__all__ = ["SERIAL_TOKEN", "Etcd", "ancestors", "answer_records", "message_records"]
