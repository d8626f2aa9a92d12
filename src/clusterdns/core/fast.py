"""The fast-path contract: what a plugin offers so a query is answered without a coroutine.

The server asks the plugins of a block, in chain order, before it builds a Request.
Each capability is a small Protocol, found once when the block is built
(:class:`FastPath`), so nothing on the query path looks attributes up by name:

- :class:`FastAnswerer`: ``answer_fast(query, limit, payload)`` returns a finished
  :class:`FastReply` (the client's ID and question, EDNS, truncated to ``limit``),
  ``None`` ("not mine: ask the next plugin") or ``SLOW`` ("the ordinary chain must
  answer this one"). A plugin without it ends the fast path: whatever it would do is
  only done by the chain, so the fast path is an optimisation and never a different
  answer. It may run on a UDP receive thread: it only reads.
- :class:`FastFilter`: a plugin that only transforms what later plugins answer
  (loadbalance) filters the finished reply; ``None`` sends the query to the chain.
- :class:`VersionedRecords`: a record plugin whose data changes (kubernetes, etcd,
  hosts, file) counts its changes in ``generation`` and says which dependency tokens a
  run of changes touched (``changes_since``), so the reply memo and the cache drop
  only what went stale.
- :class:`FastGate`: a plugin that decides, before anything after it runs, whether a
  query goes on at all (acl): it may answer (a refusal), drop the query, send it to the
  chain, or let it on, saying whether its verdict depended on who asked (then nothing
  after it is memoised: the reply memo is keyed by the query bytes, not the client).
- :class:`FastEdit`: a plugin that edits every finished reply of the plugins after it
  the same way, as a function of the query and the reply only (nsid, header, minimal);
  the edited reply may be memoised. Chain replies get the same edits
  (core/dispatch.py), since the encoder writes the OPT record itself.
- :class:`ReplaysReplies`: a plugin whose answers were made behind it (cache): the
  edits after it apply to them as well.
- :class:`FastTransparent`: a plugin with nothing to do on the fast path (errors): the
  fast path goes on past it as if it were not in the chain.
- :class:`FastObserver`: an observer (prometheus) that can count fast answers without
  a Request, and memo hits in bulk; a block with an observer that is not one (log)
  never memoises and builds a Request per fast answer for it.
- :class:`ExpressAnswerer`: a record plugin that answers its commonest first-sight
  questions from the datagram itself (``answer_express``), before any Query is built;
  :class:`ExpressPassable`: a step that may stand before one (a cache that can say it
  holds nothing for the question). The server uses them only where the answer is the
  one the steps above would give (core/dispatch.py: the express tier); anything else,
  or None, goes the general way.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

from clusterdns.wire import Query

if TYPE_CHECKING:
    from clusterdns.core.request import Transport

INFINITE: Final = math.inf
# How long a negative answer (NXDOMAIN, NODATA) may be replayed with the SOA serial it was
# built with. The serial is the time of the plugin's last change and moves with any change
# anywhere in the zone; the answer itself depends only on its own name. CoreDNS with
# `cache` replays such answers for their negative TTL (the SOA minimum, 5 s by default)
# with the serial they were built with; tying them to the serial instead dropped every
# negative of the memo once a second under churn.
SERIAL_SLACK: Final = 5.0
# Sinks get (new hits, seconds spent per hit on average).
Sink = Callable[[int, float], None]
Sinks = tuple[tuple[Hashable, Sink], ...]
# What a reply depends on: tokens its plugin's changes_since() names when they change;
# None: any change of the plugin's data.
Depends = frozenset[Hashable] | None
# An express answer: (reply, valid until (as FastReply.until), what it depends on, the
# question name in lower-case wire form, qtype, the query's DO bit).
ExpressReply = tuple[bytes, float, Depends, bytes, int, bool]


class SlowType(enum.Enum):
    """What a fast hook returns to send a query down the ordinary chain (an enum member, so
    ``result is SLOW`` narrows the type)."""

    SLOW = "SLOW"

    def __repr__(self) -> str:
        return "SLOW"


SLOW: Final = SlowType.SLOW


class FastReply:
    """A finished fast-path reply and how long it may be replayed.

    ``wire`` is the complete reply to the query it answers. ``until`` (monotonic
    seconds) is how long the same query bytes may get the same reply from the reply
    memo: ``INFINITE`` for "until my data changes" (the memo watches ``generation``),
    a deadline for a cache hit whose TTL ticks, 0 for never (client-specific answers).
    ``depends`` narrows "my data changes" to the tokens the plugin reports;
    ``sinks`` count memo hits as the plugin counts its own answers (cache hits)."""

    __slots__ = ("depends", "sinks", "until", "wire")

    def __init__(
        self,
        wire: bytes,
        until: float = INFINITE,
        depends: Depends = None,
        sinks: Sinks = (),
    ) -> None:
        self.wire = wire
        self.until = until
        self.depends = depends
        self.sinks = sinks

    def __repr__(self) -> str:
        return f"FastReply({len(self.wire)} bytes, until={self.until}, depends={self.depends})"


FastResult = FastReply | Literal[SlowType.SLOW] | None


class Gate(enum.Enum):
    """A gate's verdict on a query other than a reply of its own."""

    PASS = "PASS"  # on to the plugins after it; the same verdict for every client
    PRIVATE = "PRIVATE"  # on, but the verdict depended on the client: memoise nothing
    DROP = "DROP"  # no reply at all
    CHAIN = "CHAIN"  # the ordinary chain must decide


PASS: Final = Gate.PASS
PRIVATE: Final = Gate.PRIVATE
DROP: Final = Gate.DROP
CHAIN: Final = Gate.CHAIN
GateResult = bytes | Gate


@runtime_checkable
class FastAnswerer(Protocol):
    """Answers some queries synchronously from data it keeps in memory."""

    name: str

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """The reply to ``query`` within ``limit`` bytes (TC and fewer records when it
        does not fit), advertising ``payload`` in its OPT; None: not mine; SLOW: chain."""
        ...


@runtime_checkable
class FastFilter(Protocol):
    """Transforms finished replies of the plugins after it (loadbalance)."""

    def filter_fast(self, wire: bytes) -> bytes | None:
        """The reply to send (``wire`` itself when unchanged), or None for the chain."""
        ...


@runtime_checkable
class FastGate(Protocol):
    """Lets a query on, refuses, or drops it before the plugins after it (acl)."""

    name: str

    def gate_fast(
        self, query: Query, client: tuple[str, int], limit: int, payload: int
    ) -> GateResult:
        """A finished reply of its own (within ``limit``, advertising ``payload``), or a
        :class:`Gate` verdict."""
        ...

    def pass_sinks(self) -> Sinks:
        """What counts a query it let on (a memo hit of a reply behind it is one)."""
        ...


@runtime_checkable
class FastEdit(Protocol):
    """Edits every finished reply of the plugins after it (nsid, header, minimal)."""

    name: str

    def edit_fast(self, query: Query, wire: bytes, limit: int) -> bytes:
        """The reply to send instead of ``wire`` (``wire`` itself when unchanged), a
        function of the query bytes and ``wire`` only, within ``limit`` bytes."""
        ...


@runtime_checkable
class ReplaysReplies(Protocol):
    """A plugin that answers with replies it stored from the plugins after it (cache).
    Those replies passed through every edit after it when they were made, so its own
    answers get those edits too (CoreDNS's cache stores what its writer saw)."""

    replays_later_replies: Literal[True]


@runtime_checkable
class FastTransparent(Protocol):
    """Has nothing to do with a fast answer (errors: an answer made without a coroutine
    cannot fail), so the fast path neither stops nor stops by at it."""

    fast_transparent: Literal[True]


@runtime_checkable
class VersionedRecords(Protocol):
    """A record plugin whose answers change with its data (kubernetes, etcd, hosts, file)."""

    name: str

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones it answers for (lower-case, absolute)."""
        ...

    @property
    def generation(self) -> int:
        """Moves whenever any answer may have changed."""
        ...

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        """The dependency tokens touched after ``generation``; None: can't tell (drop all)."""
        ...


class ChangeLog:
    """What each recent generation of a record plugin touched: its ``changes_since``.

    The plugin's thread writes it, UDP receive threads read it without a lock. The order
    makes that safe: the writer records a change (:meth:`record`) before it publishes
    the generation that names it, and a reader reads the published generation first and
    ignores entries past it. The other order let a reader see a generation the log could
    not yet explain, and empty its whole memo for one Service's change.
    """

    def __init__(self, size: int) -> None:
        self._entries: collections.deque[tuple[int, frozenset[Hashable] | None]] = (
            collections.deque(maxlen=size)
        )
        self._bound = 2 * size

    def record(self, generation: int, tokens: Iterable[Hashable] | None) -> None:
        """``generation`` (about to be published) touched ``tokens`` (None: anything)."""
        self._entries.append((generation, None if tokens is None else frozenset(tokens)))

    def since(self, seen: int, current: int) -> frozenset[Hashable] | None:
        """The tokens touched by generations ``seen``+1 to ``current`` (read before this
        call); None when the log cannot tell (a gap, a change of anything)."""
        if current <= seen:
            return frozenset()
        # From the newest back to ``seen``: a reader a few changes behind reads a few
        # entries, not the whole log (a copy of it per check cost 5% of a server under
        # 100 updates/s). Indexing from the right is atomic; an append meanwhile only
        # shifts the entries, so one may be read twice (harmless), none is skipped.
        entries = self._entries
        touched: set[Hashable] = set()
        numbers: set[int] = set()
        back = 1
        while back <= self._bound:  # bounded even if the writer never paused
            try:
                number, tokens = entries[-back]
            except IndexError:
                break
            back += 1
            if number > current:
                continue  # recorded, not yet published
            if number <= seen:
                break
            if tokens is None:
                return None
            numbers.add(number)
            touched.update(tokens)
        if len(numbers) != current - seen:
            return None  # a gap: a generation that was never recorded, or fell out
        return frozenset(touched)


@runtime_checkable
class FastObserver(Protocol):
    """An observer that sees fast answers without a Request and memo hits in bulk."""

    def observe_fast(
        self,
        server_label: str,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        query: Query,
        rcode: int,
        wire: bytes,
        duration: float,
        plugin: str,
    ) -> None: ...

    def memo_sink(
        self,
        server_label: str,
        zone: str,
        transport: Transport,
        family: int,
        query: Query,
        rcode: int,
        wire: bytes,
        plugin: str,
    ) -> tuple[Hashable, Sink]: ...


@runtime_checkable
class ExpressAnswerer(Protocol):
    """Answers its commonest first-sight questions from the datagram, before parsing."""

    name: str

    def answer_express(self, data: bytes, tcp: bool, max_udp: int) -> ExpressReply | None:
        """The reply to the query ``data`` as answer_fast() would give it (limit and
        payload from the query's EDNS, ``tcp`` and ``max_udp`` as reply_limit() computes
        them), or None: the general path will answer (it may be anything)."""
        ...


@runtime_checkable
class ExpressPassable(Protocol):
    """A fast answerer that can tell cheaply that it would answer nothing (a cache miss)."""

    def passes_express(self, lower: bytes, qtype: int, flags: int, do: bool) -> bool:
        """True only when answer_fast() of a class-IN query with this name (lower-case
        wire form), type, header flags and DO bit would return None."""
        ...


def changes_of(plugin: object) -> VersionedRecords | None:
    """``plugin`` as a versioned record plugin, if it is one."""
    return plugin if isinstance(plugin, VersionedRecords) else None
