"""The UDP reply memo: finished replies keyed by the query's bytes after its ID.

A fast-path answer (a record plugin's stored template, a cache hit) is a pure
function of the query bytes from offset 2 on (flags, question with its letter
case, EDNS OPT) and of the plugins' data. The first such query is answered by
the fast path and its reply, minus the ID, is kept here; every later identical
query is answered with one dict lookup and a copy into the send buffer: no
parsing, no zone match, no hooks, no rendering (bench/RESULTS.md section 1).

Correctness rests on three rules:

- Only answers a plugin vouches for are kept (``FastReply.until``), with a
  deadline: ``inf`` for data that only changes with the plugin's ``generation``
  (kubernetes), the next TTL tick for a cache hit. Client-specific answers
  (autopath), reordered ones (loadbalance with several records) and blocks
  whose observers need every query (log) are never kept.
- Each batch starts with :meth:`ReplyMemo.check`: a new configuration (the mux
  changed on reload) empties the memo; a watched plugin's generation moving drops
  the entries it says changed (``changes_since``: kubernetes names the Services an
  update touched, so endpoint churn elsewhere keeps the rest) and every entry
  tied to nothing in particular (negative answers carry the SOA serial), or
  everything when it cannot tell. Entries inserted while a generation moves are
  dropped by the next check.
- Metrics still see every query: an entry carries a :class:`Tally` that the
  receive thread increments; at scrape time :meth:`MemoStats.flush` hands the
  new hits to the observers' sinks (coredns_dns_*, coredns_cache_*).

One memo per receive thread, so only that thread writes its dict.
"""

from __future__ import annotations

import threading
import time
import weakref
from array import array
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Final, cast

from clusterdns.core.fast import Depends, Sink, Sinks, VersionedRecords

DEFAULT_SIZE: Final = 100_000
# First sights remembered once the memo is full (4 MiB, allocated then): pairs of slots.
_SEEN_SLOTS: Final = 1 << 19
_SEEN_MASK: Final = _SEEN_SLOTS - 2  # an even index: the first slot of a pair
# A dependency group's list: the group's own key, then the memo keys in it.
Group = list[Hashable]
# What the receive loop reads: (reply after the ID, valid until (monotonic), tally),
# and the dependency groups the entry is in (dropping any of them drops it): the one
# group's list itself, nearly always, else a tuple of them.
Entry = tuple[bytes, float, list[int], Group | tuple[Group, ...]]


class Tally:
    """Hits of every memo entry that shares one accounting (labels, sizes, sinks)."""

    __slots__ = ("count", "flushed", "sinks")

    def __init__(self, sinks: tuple[Sink, ...]) -> None:
        self.count = [0]  # incremented by the receive thread: count[0] += 1
        self.flushed = 0
        self.sinks = sinks


class ReplyMemo:
    """The memo of one UDP receive thread."""

    def __init__(self, limit: int = DEFAULT_SIZE, stats: MemoStats | None = None) -> None:
        self.limit = limit
        # The entries, and their keys in the order they were kept: the oldest is evicted
        # first. (A plain dict's next(iter()) walks over the holes earlier removals left,
        # quadratic as a queue; an OrderedDict costs ~50 bytes and a second lookup per
        # entry.) ``_order`` may hold keys that are gone or were kept again later: those
        # are skipped, or evict a re-kept entry early, and the queue is rebuilt from the
        # entries when such keys make up half of it.
        self.entries: dict[bytes, Entry] = {}
        self._order: deque[bytes] = deque()
        self.tallies: dict[Hashable, Tally] = {}
        # The tally of a first-sight answer by its label row (block, zone, transport,
        # family, type, rcode, step, sizes): found with one lookup (core/dispatch.py).
        self.row_tallies: dict[Hashable, Tally] = {}
        self.owner: object = None  # the configuration (mux) the entries belong to
        self._watched: list[tuple[VersionedRecords, int]] = []
        # Dependency group → [the group's own key, then the memo keys in it]. Lists, not
        # sets: a group holds a handful of entries (a Service's A, AAAA, SRV... in a few
        # letter cases) and a one-key set costs 216 bytes against a list's 64. An entry
        # refers to its groups' lists, so nothing about a group is stored twice. A group
        # is a dependency token, whichever plugin named it: tokens two plugins share
        # (kubernetes and k8s_external both name Services) drop each other's entries too,
        # which only ever drops more than needed.
        self._groups: dict[Hashable, Group] = {}
        # Time spent answering memo hits, and how many: metrics share it out per hit.
        self.hit_seconds = 0.0
        self.hits = 0
        # First sights admitted here and counted through their entry's tally (not by the
        # observers one by one); their time is in hit_seconds too, shared the same way.
        self.counted = 0
        # The receive loop adds each batch's whole time to hit_seconds (first sights
        # included): then first sights add none of their own.
        self.batch_timed = False
        self._flushed_seconds = 0.0
        self._flushed_served = 0
        # Hashes of questions answered once, used once the memo is full (see admits()).
        self._seen = array("q")
        if stats is not None:
            stats.add(self)

    def admits(self, key: bytes) -> bool:
        """Should a reply to this question be kept now?

        While the memo has room, yes: keeping it evicts nothing. Once full, only on the
        question's second sight, so a stream of questions that never repeat (a scan, a
        random-subdomain flood) cannot push the replies that are asked again out. The
        first sights are remembered as hashes in a fixed two-way table: a question
        forgotten there (two others came to its pair of slots since) waits one more sight.
        """
        if len(self.entries) < self.limit:
            return True
        if self.limit <= 0:
            return False
        if not self._seen:
            self._seen = array("q", bytes(8 * _SEEN_SLOTS))
        marker = hash(key) | 1  # never 0, the empty slot
        slot = marker & _SEEN_MASK  # even: the pair is (slot, slot + 1)
        seen = self._seen
        if seen[slot] == marker or seen[slot + 1] == marker:
            return True
        # The newer of the two stays in the first slot, the older moves to the second.
        seen[slot + 1] = seen[slot]
        seen[slot] = marker
        return False

    def answer(self, key: bytes, now: float) -> bytes | None:
        """The reply after the ID for a query's bytes after its ID, counted as a hit; None
        if there is none or it expired. (The batch loop in mmsg.py inlines this.)"""
        entry = self.entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        entry[2][0] += 1
        self.hits += 1
        return entry[0]

    def check(self, owner: object, generations: Iterable[VersionedRecords]) -> None:
        """Drop what a new configuration or a watched plugin's changes made stale."""
        if owner is not self.owner:
            self.clear()
            self.owner = owner
            self._watched = [(p, _generation(p)) for p in generations]
            return
        watched = self._watched
        for index, (plugin, seen) in enumerate(watched):
            current = _generation(plugin)
            if current == seen:
                continue
            touched = plugin.changes_since(seen)
            if touched is None:
                self.clear()
                self._watched = [(p, _generation(p)) for p, _ in watched]
                return
            # Entries tied to nothing in particular go with any change; the rest only
            # when their own dependency changed (one Service's endpoints, not all).
            self._drop_group(None)
            for token in touched:
                self._drop_group(token)
            watched[index] = (plugin, current)

    def clear(self) -> None:
        self.entries.clear()
        self._order.clear()
        self._groups.clear()
        self.row_tallies.clear()  # its keys hold the configuration's blocks

    def _drop_group(self, group: Hashable) -> None:
        members = self._groups.pop(group, None)
        if members is None:
            return
        entries = self.entries
        for member in members[1:]:
            key = cast(bytes, member)  # after the group's own key, memo keys
            entry = entries.pop(key, None)
            if entry is not None and isinstance(entry[3], tuple):  # in other groups too
                self._ungroup(key, entry[3], but=members)

    def put(
        self,
        key: bytes,
        tail: bytes,
        until: float,
        sinks: Sinks,
        owner: object = None,
        depends: Depends = None,
    ) -> None:
        """Keep a reply. It stays until ``owner``'s ``changes_since`` names one of the
        ``depends`` tokens; with None, until any watched plugin changes."""
        if self.limit > 0:
            self.put_tallied(key, tail, until, self.tally_of(sinks), owner, depends)

    def count_first(self, tally: Tally, started: float) -> None:
        """Count a first sight (answered at ``started``, perf_counter) through ``tally``,
        kept or not: its time joins the hits' (the batch loop charges a batch's time
        itself), shared out by flush()."""
        tally.count[0] += 1
        self.counted += 1
        if not self.batch_timed:
            self.hit_seconds += time.perf_counter() - started

    def first_sight(
        self,
        key: bytes,
        tail: bytes,
        until: float,
        tally: Tally,
        owner: object,
        depends: Depends,
        started: float,
    ) -> None:
        """A first sight that may be kept: admits(), put_tallied() and count_first(), the
        one sequence both the express tier and the general fast path follow."""
        if len(self.entries) < self.limit or self.admits(key):
            self.put_tallied(key, tail, until, tally, owner, depends)
        self.count_first(tally, started)

    def tally_of(self, sinks: Sinks) -> Tally:
        """The tally shared by every entry whose sinks have these accounting keys."""
        accounting = tuple([k for k, _ in sinks])
        tally = self.tallies.get(accounting)
        if tally is None:
            tally = self.tallies[accounting] = Tally(tuple([s for _, s in sinks]))
        return tally

    def put_tallied(
        self,
        key: bytes,
        tail: bytes,
        until: float,
        tally: Tally,
        owner: object = None,
        depends: Depends = None,
    ) -> None:
        """put() with the entry's tally already found (the first-sight path keeps them by
        label row, so admitting a reply builds no sinks)."""
        entries = self.entries
        previous = entries.get(key)
        if previous is not None:
            kept = previous[3]
            if kept is self._only_group(owner, depends):
                # Kept again in the group it is in (a negative answer rebuilt after its
                # slack): the group stays as it is. Taking the key out of the group's list
                # and back in costs O(group), and one namespace's misses are one group.
                entries[key] = (tail, until, tally.count, kept)
                return
            self._ungroup(key, kept)
        else:
            if len(entries) >= self.limit:
                if self.limit <= 0:
                    return
                # The oldest entry makes room, one per new one: no bulk pause, and a scan
                # of many names cycles through the memo instead of emptying it.
                self._evict_oldest()
            order = self._order
            order.append(key)
            if len(order) > 2 * self.limit + 1024:
                self._order = deque(entries)  # keys gone or kept again: start over
                self._order.append(key)
        all_groups = self._groups
        groups: Group | tuple[Group, ...]
        if depends is None or owner is None:
            members = all_groups.get(None)
            if members is None:
                members = all_groups[None] = [None]
            members.append(key)
            groups = members
        elif len(depends) == 1:  # nearly always: one Service, or one namespace's misses
            (token,) = depends
            members = all_groups.get(token)
            if members is None:
                members = all_groups[token] = [token]
            members.append(key)
            groups = members
        else:
            joined = []
            for token in depends:
                members = all_groups.get(token)
                if members is None:
                    members = all_groups[token] = [token]
                members.append(key)
                joined.append(members)
            groups = tuple(joined)
        entries[key] = (tail, until, tally.count, groups)

    def _evict_oldest(self) -> None:
        entries = self.entries
        order = self._order
        while order:
            old = order.popleft()
            entry = entries.pop(old, None)
            if entry is not None:
                self._ungroup(old, entry[3])
                return

    def _only_group(self, owner: object, depends: Depends) -> Group | None:
        """The list of the one existing group an entry with these dependencies joins, or
        None (several groups, or none yet)."""
        if depends is None or owner is None:
            return self._groups.get(None)
        if len(depends) != 1:
            return None
        (token,) = depends
        return self._groups.get(token)

    def _ungroup(
        self,
        key: bytes,
        groups: Group | tuple[Group, ...],
        but: Group | None = None,
    ) -> None:
        """Take ``key`` out of its groups' lists (but ``but``, being dropped whole); a
        list left with no key goes."""
        for members in (groups,) if isinstance(groups, list) else groups:
            if members is but:
                continue
            try:
                members.remove(key)
            except ValueError:
                continue
            if len(members) == 1:
                self._groups.pop(members[0], None)

    def held(self, qname_lower: bytes, qtype: int, now: float) -> list[float]:
        """Seconds left of every entry answering ``qname_lower``/``qtype`` (any letter case,
        flags or EDNS), ``inf`` for "until the data changes". A scan: for introspection
        only. The receive thread may write meanwhile: a scan it disturbs is retried."""
        tail = qtype.to_bytes(2, "big")
        end = 10 + len(qname_lower)
        for _ in range(5):
            try:
                keys = list(self.entries.items())
            except RuntimeError:
                continue
            return [
                entry[1] - now
                for key, entry in keys
                if key[10:end].lower() == qname_lower
                and key[end : end + 2] == tail
                and entry[1] > now
            ]
        return []

    def flush(self) -> None:
        """Give every tally's new hits to its sinks (the scrape's thread, under MemoStats' lock)."""
        served = self.hits + self.counted
        seconds = self.hit_seconds
        new = served - self._flushed_served
        each = (seconds - self._flushed_seconds) / new if new > 0 else 0.0
        self._flushed_served = served
        self._flushed_seconds = seconds
        for tally in list(self.tallies.values()):
            count = tally.count[0]
            delta = count - tally.flushed
            if delta <= 0:
                continue
            tally.flushed = count
            for sink in tally.sinks:
                sink(delta, each)


def _generation(plugin: VersionedRecords) -> int:
    return plugin.generation


class MemoStats:
    """Every live memo of the process, flushed into the metrics before each scrape."""

    def __init__(self) -> None:
        self._memos: weakref.WeakSet[ReplyMemo] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._retired_hits = 0  # of memos gone with their sockets: the counter never goes back

    def add(self, memo: ReplyMemo) -> None:
        with self._lock:
            self._memos.add(memo)

    def flush(self) -> None:
        with self._lock:
            for memo in list(self._memos):
                memo.flush()

    def totals(self) -> tuple[int, int]:
        """(hits, entries) over every live memo, for /metrics."""
        with self._lock:
            memos = list(self._memos)
        hits = self._retired_hits + sum(m.hits for m in memos)
        return hits, sum(len(m.entries) for m in memos)

    def held(self, qname_lower: bytes, qtype: int) -> tuple[float, ...]:
        """Seconds left of every live memo's copies of an answer (see ReplyMemo.held)."""
        with self._lock:
            memos = list(self._memos)
        now = time.monotonic()
        return tuple(left for memo in memos for left in memo.held(qname_lower, qtype, now))

    def retire(self, memo: ReplyMemo) -> None:
        """A receive thread is done with ``memo``: count its last hits and forget it."""
        with self._lock:
            memo.flush()
            if memo in self._memos:
                self._memos.discard(memo)
                self._retired_hits += memo.hits
