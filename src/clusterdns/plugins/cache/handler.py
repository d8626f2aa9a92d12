"""cache's query path: positive and negative caches of wire replies, prefetch, serve_stale,
and invalidation by the generation of the record plugin that owns the name."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import dns.rdatatype

from clusterdns.core.explain import CachedEntry, Rule, Why
from clusterdns.core.fast import SLOW, FastAnswerer, FastReply, FastResult, VersionedRecords
from clusterdns.core.plugin import BlockView, Plugin, PluginError
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.cache.entry import CachedAnswer, Kind, ParsedReply, WalkError
from clusterdns.plugins.cache.metrics import CacheMetrics, Children
from clusterdns.wire import Query, name_to_text, text_to_wire

log = logging.getLogger("clusterdns.cache")

# (lower-case wire qname, qtype, qclass, DO, CD)
Key = tuple[bytes, int, int, bool, bool]

DEFAULT_CAPACITY = 9984  # CoreDNS: 256 shards of 39 items
MAX_SUCCESS_TTL = 3600
MAX_DENIAL_TTL = 1800
MIN_TTL = 5
FLAG_CD = 0x0010
RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3


@dataclass
class CacheConfig:
    zones: tuple[str, ...] = (".",)
    success_capacity: int = DEFAULT_CAPACITY
    success_ttl: int = MAX_SUCCESS_TTL
    success_min_ttl: int = MIN_TTL
    denial_capacity: int = DEFAULT_CAPACITY
    denial_ttl: int = MAX_DENIAL_TTL
    denial_min_ttl: int = MIN_TTL
    servfail_ttl: int = MIN_TTL
    prefetch: int = 0
    prefetch_duration: float = 60.0
    prefetch_percentage: int = 10
    stale_up_to: float = 0.0
    verify_stale: bool = False
    # serve_stale's VERIFY_TIMEOUT: how long verify waits before serving the stale entry
    # (the verify goes on in the background); 0: as long as the next plugin takes.
    verify_timeout: float = 0.0
    # RESPONSE_TTL: the TTL of stale answers (RFC 8767 recommends 30); 0 as CoreDNS's default.
    stale_ttl: int = 0
    # FAILURE_RECHECK: after a failed refresh of a stale entry, serve it without asking again
    # for this long; 0: ask on every query.
    stale_recheck: float = 0.0
    # serve_stale_policy prefer_positive: a usable positive entry wins over a denial.
    prefer_positive: bool = False
    # None: caching of that kind enabled everywhere; a tuple: disabled for those zones.
    disable_success: tuple[str, ...] | None = None
    disable_denial: tuple[str, ...] | None = None
    keepttl: bool = False


def _zone_set(zones: Iterable[str]) -> frozenset[bytes]:
    return frozenset(text_to_wire(zone.lower()) for zone in zones)


def _key(lower: bytes, qtype: int, qclass: int, do: bool, flags: int) -> Key:
    """What an answer is cached under: the name, type, class, DO and CD bits."""
    return (lower, qtype, qclass, do, bool(flags & FLAG_CD))


def _in(query: Query, zones: frozenset[bytes]) -> bool:
    if b"\x00" in zones:  # the root zone (`cache` in a `.` block): everything
        return True
    lower = query.qname_lower
    return any(lower[offset:] in zones for offset in query.label_offsets)


def _reply_wire(reply: Reply) -> bytes | None:
    if reply.wire is not None:
        return reply.wire
    if reply.template is not None:
        return reply.template.wire
    if reply.message is not None:
        return bytes(reply.message.to_wire(max_size=65535))
    return None


def _kept_ready(owners: tuple[VersionedRecords, ...], answered_by: str) -> bool:
    """Did a record plugin that answers on the fast path (kubernetes, etcd) answer this?"""
    return any(owner.name == answered_by and isinstance(owner, FastAnswerer) for owner in owners)


class Cache(Plugin):
    # Hits are replies made behind the cache: they get the edits after it (core/fast.py).
    replays_later_replies: Literal[True] = True

    def __init__(
        self,
        config: CacheConfig,
        metrics: CacheMetrics,
        *,
        server_label: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.success: dict[Key, CachedAnswer] = {}
        self.denial: dict[Key, CachedAnswer] = {}
        self.payload = 4096
        self._zones = _zone_set(config.zones)
        self._everywhere = b"\x00" in self._zones  # the root zone: every name is in
        self._zones_label = ",".join(config.zones)
        self._no_success = (
            None if config.disable_success is None else _zone_set(config.disable_success)
        )
        self._no_denial = (
            None if config.disable_denial is None else _zone_set(config.disable_denial)
        )
        self._children = Children(metrics, server_label, self._zones_label)
        self._server_label = server_label
        # zone (wire) -> record plugins serving it; None until the block is known.
        self._owners: dict[bytes, tuple[VersionedRecords, ...]] | None = None
        self._refreshing: set[Key] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    # -- the block this cache sits in ------------------------------------------------------

    def bind(self, block: BlockView) -> None:
        """Learn the block: its label, UDP size and the record plugins after us."""
        if block.server_label != self._server_label:
            self._server_label = block.server_label
            self._children = Children(self.metrics, block.server_label, self._zones_label)
        self.payload = block.settings.max_udp_size
        plugins = block.plugins
        after = plugins[plugins.index(self) + 1 :] if self in plugins else plugins
        self.set_record_plugins(after)

    def set_record_plugins(self, plugins: Iterable[object]) -> None:
        """Plugins whose ``generation`` stamps entries for names in their ``zones``."""
        owners: dict[bytes, list[VersionedRecords]] = {}
        for plugin in plugins:
            if plugin is self or not isinstance(plugin, VersionedRecords):
                continue
            for zone in plugin.zones:
                owners.setdefault(text_to_wire(str(zone).lower()), []).append(plugin)
        self._owners = {zone: tuple(found) for zone, found in owners.items()}

    def _owners_of(self, query: Query) -> tuple[VersionedRecords, ...]:
        """Every record plugin whose zone covers the name: any of them may answer it
        (through fallthrough), so a change in any of them invalidates the entry."""
        owners = self._owners
        if not owners:
            return ()
        lower = query.qname_lower
        found: tuple[VersionedRecords, ...] = ()
        for offset in query.label_offsets:
            plugins = owners.get(lower[offset:])
            if plugins:
                found += plugins
        return found

    # -- lookups ------------------------------------------------------------------------------

    @staticmethod
    def key(query: Query) -> Key:
        edns = query.edns
        return _key(
            query.qname_lower, query.qtype, query.qclass, edns is not None and edns.do, query.flags
        )

    def _tables(self) -> tuple[dict[Key, CachedAnswer], dict[Key, CachedAnswer]]:
        """Where a key is looked up, in order: one table holds it, but with
        prefer_positive a positive entry is kept beside a later denial, and wins."""
        if self.config.prefer_positive:
            return (self.success, self.denial)
        return (self.denial, self.success)

    def _get(self, key: Key, now: float) -> CachedAnswer | None:
        """A usable entry (fresh, or stale within serve_stale), dropping dead ones."""
        for table in self._tables():
            entry = table.get(key)
            if entry is None:
                continue
            remaining = entry.remaining(now)
            if entry.stale() or (remaining <= 0 and -remaining >= self.config.stale_up_to):
                table.pop(key, None)
                self._update_sizes()
                continue
            return entry
        return None

    def _count_hit(self, entry: CachedAnswer) -> None:
        if entry.kind is Kind.SUCCESS:
            self._children.hits_success.inc()
        else:
            self._children.hits_denial.inc()

    def _due_for_prefetch(self, entry: CachedAnswer, remaining: int, now: float) -> bool:
        config = self.config
        if config.prefetch <= 0:
            return False
        # CoreDNS's freq: hits within a sliding window of `prefetch_duration`.
        if now - entry.freq_start > config.prefetch_duration:
            entry.freq_start = now
            entry.freq_hits = 1
        else:
            entry.freq_hits += 1
        threshold = math.ceil(config.prefetch_percentage / 100 * entry.ttl)
        return entry.freq_hits >= config.prefetch and remaining <= threshold

    def _fresh_hit(self, query: Query, key: Key, now: float) -> bytes | None:
        entry = self._get(key, now)
        if entry is None:
            return None
        remaining = entry.remaining(now)
        if remaining <= 0 or self._due_for_prefetch(entry, remaining, now):
            return None
        self._count_hit(entry)
        return entry.render(query, None if self.config.keepttl else remaining, self.payload)

    def lookup(self, req_or_query: Request | Query, now: float | None = None) -> bytes | None:
        """The synchronous hot path: the complete reply bytes for a fresh hit, else None.

        None also when the entry is stale, due for prefetch, or the block has not been
        seen yet (record plugins unknown): :meth:`serve` handles those.
        """
        if isinstance(req_or_query, Request):
            if self._owners is None:
                self.bind(req_or_query.block)
            query = req_or_query.query
        else:
            query = req_or_query
        if self._owners is None or not _in(query, self._zones):
            return None
        self._children.requests.inc()
        return self._fresh_hit(query, self.key(query), self.clock() if now is None else now)

    def passes_express(self, lower: bytes, qtype: int, flags: int, do: bool) -> bool:
        """Would answer_fast() of this class-IN question return None? (core/fast.py
        ExpressPassable.) Only said for a cache of the root zone holding no entry for it."""
        if not self._everywhere or self._owners is None:
            return False
        key = _key(lower, qtype, 1, do, flags)
        return key not in self.denial and key not in self.success

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """The core's synchronous hook (may run on a UDP receive thread): a fresh hit; None
        for names outside the cached zones and for misses; SLOW for stale entries,
        prefetch due, or a reply over ``limit`` (the chain truncates it).

        A miss is None, not SLOW: the next fast hook may answer it (the kubernetes
        plugin's on-wire answers), as fast as a hit and never stale; a miss nobody answers
        fast goes down the chain and is cached there.

        The hit may be replayed by the reply memo until its TTL would tick down (CoreDNS
        counts whole seconds), its hits counted here; not with prefetch, where popularity
        is counted per hit."""
        if not _in(query, self._zones):
            return None
        if self._owners is None:
            return SLOW
        key = self.key(query)
        # Read-only here (this may run on a UDP thread): dropping dead entries is the chain's job.
        first, second = self._tables()
        entry = first.get(key) or second.get(key)
        if entry is None or entry.stale():
            return None
        now = self.clock()
        remaining = entry.remaining(now)
        if remaining <= 0 or self._due_for_prefetch(entry, remaining, now):
            return SLOW
        wire = entry.render(query, None if self.config.keepttl else remaining, self.payload)
        if len(wire) > limit:
            return SLOW
        children = self._children
        children.requests.inc()
        self._count_hit(entry)
        if self.config.prefetch > 0:
            return FastReply(wire, until=0.0)
        # The next whole second since storing, when remaining() drops by one.
        next_tick = entry.stored + int(now - entry.stored) + 1
        if self.config.keepttl:
            next_tick = entry.stored + entry.ttl
        until = time.monotonic() + max(next_tick - now, 0.0)
        hits = children.hits_success if entry.kind is Kind.SUCCESS else children.hits_denial

        def count(n: int, _seconds_each: float) -> None:
            children.requests.inc(n)
            hits.inc(n)

        return FastReply(wire, until=until, sinks=((("cache", id(children), entry.kind), count),))

    # -- the plugin ---------------------------------------------------------------------------

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        if not _in(query, self._zones):
            return await next_handler(req)
        if self._owners is None:
            self.bind(req.block)
        now = self.clock()
        key = self.key(query)
        self._children.requests.inc()
        wire = self._fresh_hit(query, key, now)
        if wire is not None:
            if req.why is not None:
                self._explain_hit(req.why, key, now, "")
            return Reply.of_wire(wire, plugin="cache")
        entry = self._get(key, now)
        if entry is None:
            self._children.misses.inc()
            return await self._fetch(req, key, next_handler)
        self._count_hit(entry)
        remaining = entry.remaining(now)
        if req.why is not None:
            self._explain_hit(req.why, key, now, "stale, " if remaining <= 0 else "")
        if remaining > 0:  # fresh, and popular enough to refresh before it expires
            self._spawn_refresh(req, key, next_handler, entry)
            ttl = None if self.config.keepttl else remaining
            return Reply.of_wire(entry.render(query, ttl, self.payload), plugin="cache")
        config = self.config
        if key in self._refreshing or (
            config.stale_recheck > 0 and now - entry.refresh_failed < config.stale_recheck
        ):
            pass  # a refresh is under way, or failed lately: the stale entry, no new ask
        elif config.verify_stale:
            fresh = await self._verify(req, key, next_handler, entry)
            if fresh is not None:
                return fresh
        else:
            self._spawn_refresh(req, key, next_handler, entry)
        self._children.served_stale.inc()
        return Reply.of_wire(entry.render(query, config.stale_ttl, self.payload), plugin="cache")

    def _explain_hit(self, why: list[Why], key: Key, now: float, note: str) -> None:
        entry = self.denial.get(key) or self.success.get(key)
        if entry is None:
            return
        why.append(
            Why(
                "cache",
                Rule.CACHED,
                f"{note}{entry.kind.value} entry stored from {entry.origin or 'another plugin'}"
                f" with TTL {entry.ttl}",
                ttl_left=max(entry.remaining(now), 0),
            )
        )

    def cache_entries(self) -> list[CachedEntry]:
        """Every entry with its TTL left (core/explain.py CacheLister). A copy taken in one
        step: a UDP thread may read the tables meanwhile, only the loop writes them."""
        now = self.clock()
        out: list[CachedEntry] = []
        for table in (self.success, self.denial):
            for (qname, qtype, _, do, cd), entry in list(table.items()):
                flags = "".join((" +do" if do else "", " +cd" if cd else ""))
                out.append(
                    CachedEntry(
                        name=name_to_text(qname),
                        qtype=dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype)) + flags,
                        kind=entry.kind.value,
                        ttl=entry.ttl,
                        ttl_left=entry.remaining(now),
                        stored_from=entry.origin,
                    )
                )
        return out

    def _stamp(
        self, query: Query
    ) -> tuple[tuple[VersionedRecords, ...] | None, tuple[int, ...] | None]:
        # Read before asking the next plugin: data that changes while it answers must not
        # be stamped with the new generation.
        owners = self._owners_of(query)
        if not owners:
            return None, None
        return owners, tuple(owner.generation for owner in owners)

    async def _fetch(self, req: Request, key: Key, next_handler: Handler) -> Reply:
        owners, generation = self._stamp(req.query)
        reply = await next_handler(req)
        if req.meta.get("client_specific"):
            return reply  # e.g. an autopath answer: right for this client only
        if owners and _kept_ready(owners, reply.plugin):
            # Its owner answers from replies it keeps ready (kubernetes): as fast as a hit,
            # never stale, and the reply memo keeps it without a TTL ticking down.
            return reply
        entry = self.store(req.query, key, reply, owners=owners, generation=generation)
        if entry is None:
            return reply
        if req.why is not None:
            req.why.append(Why("cache", Rule.STORED, f"{entry.kind.value} entry for {entry.ttl}s"))
        ttl = None if self.config.keepttl else entry.ttl
        return Reply.of_wire(entry.render(req.query, ttl, self.payload), plugin=reply.plugin)

    async def _verify(
        self, req: Request, key: Key, next_handler: Handler, stale: CachedAnswer
    ) -> Reply | None:
        """serve_stale verify: ask first; only NOERROR or NXDOMAIN replaces the stale entry
        (None: serve it). With a verify timeout the question goes on in the background
        when it takes longer, and refreshes the entry if it succeeds."""
        timeout = self.config.verify_timeout
        if timeout <= 0:
            return await self._ask_for_stale(req, key, next_handler, stale)
        self._refreshing.add(key)
        task = asyncio.ensure_future(self._ask_for_stale(req, key, next_handler, stale))
        task.add_done_callback(lambda _: self._refreshing.discard(key))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            self._tasks.add(task)  # cancelled on stop(), like a refresh
            task.add_done_callback(self._tasks.discard)
            return None

    async def _ask_for_stale(
        self, req: Request, key: Key, next_handler: Handler, stale: CachedAnswer
    ) -> Reply | None:
        owners, generation = self._stamp(req.query)
        try:
            reply = await next_handler(req)
        except PluginError:
            stale.refresh_failed = self.clock()
            return None
        if not reply.written or reply.rcode not in (RCODE_NOERROR, RCODE_NXDOMAIN):
            stale.refresh_failed = self.clock()
            return None
        if req.meta.get("client_specific"):
            return reply
        entry = self.store(req.query, key, reply, owners=owners, generation=generation)
        if (
            self.config.prefer_positive
            and stale.kind is Kind.SUCCESS
            and (entry is None or entry.kind is not Kind.SUCCESS)
        ):
            return None  # prefer_positive: only a positive answer replaces a stale positive one
        if entry is None:
            return reply
        ttl = None if self.config.keepttl else entry.ttl
        return Reply.of_wire(entry.render(req.query, ttl, self.payload), plugin=reply.plugin)

    def _spawn_refresh(
        self, req: Request, key: Key, next_handler: Handler, entry: CachedAnswer
    ) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        self._children.prefetch.inc()
        task = asyncio.ensure_future(self._refresh(req, key, next_handler, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(
        self, req: Request, key: Key, next_handler: Handler, old: CachedAnswer
    ) -> None:
        try:
            owners, generation = self._stamp(req.query)
            reply = await next_handler(req)
            if reply.rcode not in (RCODE_NOERROR, RCODE_NXDOMAIN):
                old.refresh_failed = self.clock()
                return  # RFC 8767: an error does not replace what we have
            if req.meta.get("client_specific"):
                return
            entry = self.store(req.query, key, reply, owners=owners, generation=generation)
            if entry is not None:
                entry.freq_hits = old.freq_hits  # keep the popularity gathered so far
        except Exception as err:  # a background refresh has nobody to report to
            old.refresh_failed = self.clock()
            log.debug("cache: refreshing %s failed: %s", req.name, err)
        finally:
            self._refreshing.discard(key)

    # -- storing ------------------------------------------------------------------------------

    def store(
        self,
        query: Query,
        key: Key,
        reply: Reply,
        *,
        owners: tuple[VersionedRecords, ...] | None = None,
        generation: tuple[int, ...] | None = None,
        now: float | None = None,
    ) -> CachedAnswer | None:
        """Cache ``reply`` to ``query`` if it may be; returns the new entry."""
        wire = _reply_wire(reply)
        if wire is None:
            return None  # an error the server writes itself: CoreDNS never sees it either
        try:
            parsed = ParsedReply(wire)
        except WalkError as err:
            log.debug("cache: not caching reply for %s: %s", query.name, err)
            self._children.drops.inc()
            return None
        if (parsed.qname, parsed.qtype, parsed.qclass) != (key[0], key[1], key[2]):
            self._children.drops.inc()
            return None
        kind = parsed.kind()
        if kind is None:
            return None
        config = self.config
        if kind is Kind.SUCCESS:
            if self._no_success is not None and (
                not self._no_success or _in(query, self._no_success)
            ):
                return None
            ttl = min(max(parsed.message_ttl(kind), config.success_min_ttl), config.success_ttl)
            table, other, capacity = self.success, self.denial, config.success_capacity
        else:
            if self._no_denial is not None and (not self._no_denial or _in(query, self._no_denial)):
                return None
            if kind is Kind.DENIAL:
                ttl = min(max(parsed.message_ttl(kind), config.denial_min_ttl), config.denial_ttl)
            else:
                ttl = config.servfail_ttl
            table, other, capacity = self.denial, self.success, config.denial_capacity
        if ttl <= 0 or capacity <= 0:
            return None
        entry = CachedAnswer(
            parsed,
            kind=kind,
            ttl=ttl,
            stored=self.clock() if now is None else now,
            owner=owners,
            generation=generation,
        )
        entry.origin = reply.plugin
        table.pop(key, None)
        if not (config.prefer_positive and other is self.success):
            other.pop(key, None)  # prefer_positive keeps the last positive entry beside denials
        while len(table) >= capacity:
            # Oldest first (insertion order); CoreDNS evicts at random within a shard.
            del table[next(iter(table))]
            if table is self.success:
                self._children.evictions_success.inc()
            else:
                self._children.evictions_denial.inc()
        table[key] = entry
        self._update_sizes()
        return entry

    def _update_sizes(self) -> None:
        self._children.entries_success.set(len(self.success))
        self._children.entries_denial.set(len(self.denial))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
