"""The plugin contract: what setup receives and what a plugin object offers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import CorefileError, Directive, ServerBlock
from clusterdns.corefile.address import parse_server_key
from clusterdns.corefile.model import Token
from clusterdns.wire.build import Record

if TYPE_CHECKING:
    from clusterdns.core.process import InstanceServices, Process

log = logging.getLogger("clusterdns.core.plugin")


class Plugin:
    """Base class of every plugin.

    ``serve`` may answer (return a Reply it built), pass on (``return await
    next_handler(req)``), or wrap the rest of the chain (call next_handler and
    look at or change what it returned). A plugin that only configures the
    server (bind, health, ready, reload, ...) sets ``in_chain = False`` and is
    left out of the query path entirely.

    What a plugin offers beyond this (answering on the fast path, filtering fast
    replies, versioned records, observing fast answers) is a Protocol in core/fast.py,
    found once per block by core/block.py.
    """

    name: str = ""
    in_chain: bool = True
    # Plugins that watch finished replies (log, prometheus) set this and
    # implement observe(); it runs after the reply is encoded. One that is also a
    # FastObserver (core/fast.py) sees fast answers without a Request.
    observes: bool = False

    def observe(self, req: Request, rcode: int, wire: bytes, duration: float, plugin: str) -> None:
        """See one finished reply (its final bytes) and how long it took."""

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        return await next_handler(req)

    async def start(self) -> None:
        """Called once the whole configuration is set up, before it serves."""

    async def stop(self) -> None:
        """Called when the configuration is replaced or the server exits."""

    def ready(self) -> bool | None:
        """Readiness for the ``ready`` plugin: None means "I don't report"."""
        return None

    def adopt(self, previous: Plugin) -> None:
        """On reload, before start(): take over what ``previous`` (the same plugin in the
        same server block of the running configuration) has built, when the settings
        allow it, e.g. a synced cluster watch, so a reload does not re-list the cluster.
        ``previous.stop()`` runs after the swap and must then leave that alone."""


# A zone's records for a zone transfer, in batches as they are produced (CoreDNS's
# Transferer channel of []RR): the SOA first, every other record, the SOA again.
ZoneRecords = Iterable[Sequence[Record]]


@runtime_checkable
class Transferer(Protocol):
    """A plugin whose zones the ``transfer`` plugin may send out (CoreDNS's Transferer):
    kubernetes, k8s_external, file. Found by ``transfer`` among the plugins of its block."""

    name: str

    def transfer(self, zone: str, serial: int | None) -> ZoneRecords | None:
        """The records of ``zone`` (lower-case, absolute) for AXFR (``serial`` None) or IXFR
        (the client's serial: only the SOA when that is current, else the whole zone, as
        CoreDNS answers IXFR without a journal). None: not authoritative for ``zone``.
        Called on the event loop; the batches may be produced lazily."""
        ...


@dataclass
class TcpTimeouts:
    """TCP connection limits the ``timeouts`` plugin sets; None keeps the server's own."""

    read: float | None = None  # for a new connection's first query
    idle: float | None = None  # between later queries
    write: float | None = None  # accepted; replies are buffered, never a blocking write
    max_queries: int | None = None  # queries served on one connection before closing it


@dataclass
class BlockSettings:
    """Per-server-block knobs that configuration plugins set during setup."""

    bind_hosts: list[str] = field(default_factory=list)
    bind_except: list[str] = field(default_factory=list)
    max_udp_size: int = 4096
    metrics: bool = False
    tcp: TcpTimeouts = field(default_factory=TcpTimeouts)


class BlockView(Protocol):
    """What a plugin may see of the server block it runs in (``req.block``)."""

    server_label: str
    settings: BlockSettings
    plugins: list[Plugin]


@dataclass
class SetupContext:
    """What a plugin's setup function may use. Plugins never import the server."""

    block: ServerBlock
    zones: tuple[str, ...]
    port: int
    server_label: str
    settings: BlockSettings
    process: Process
    services: InstanceServices
    config_path: str | None
    _plugins: dict[str, Plugin] = field(default_factory=dict)

    def plugin(self, name: str) -> Plugin | None:
        """Another plugin of this server block (resolved after every setup ran)."""
        return self._plugins.get(name)

    def resolve_path(self, path: str) -> str:
        """A file a directive names (see :func:`resolve_path`)."""
        return resolve_path(path, self.config_path)


def resolve_path(path: str, config_path: str | None) -> str:
    """A file a directive names: as CoreDNS without ``root``, relative to the working
    directory; failing that, beside the Corefile (``config_path``) when it is found there."""
    if os.path.isabs(path) or os.path.exists(path) or config_path is None:
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), path)
    return beside if os.path.exists(beside) else path


class SetupFunction(Protocol):
    def __call__(self, directives: Sequence[Directive], ctx: SetupContext) -> Plugin: ...


def only_once(directives: Sequence[Directive]) -> Directive:
    """The single directive of a plugin that may appear once per server block."""
    if len(directives) > 1:
        second = directives[1]
        raise second.error("this plugin can only be used once per server block")
    return directives[0]


def parse_zones(
    directive: Directive, block_zones: Sequence[str], tokens: Sequence[Token] | None = None
) -> tuple[str, ...]:
    """A record plugin's ZONES arguments (``tokens``, default all the directive's
    arguments) as CoreDNS reads them (names or reverse CIDRs), else the block's zones.

    As CoreDNS's OriginsFromArgsOrServerBlock: an argument that is not a valid zone is
    dropped (we log a warning naming file:line where CoreDNS says nothing), and a scheme or
    port on a zone is ignored. Only when arguments were given and none is a zone is it an
    error: CoreDNS would then serve no zone at all (kubernetes refuses to start)."""
    zones: list[str] = []
    tokens = directive.args if tokens is None else tokens
    for token in tokens:
        try:
            addresses = parse_server_key(Token(token.text, token.file, token.line))
        except CorefileError as err:
            log.warning(
                "%s: %s:%d: invalid zone %r ignored: %s",
                directive.name, token.file, token.line, token.text, err.message,
            )  # fmt: skip
            continue
        for address in addresses:
            if address.port is not None or address.scheme != "dns":
                log.warning(
                    "%s: %s:%d: zone %r: only the name %s is used",
                    directive.name, token.file, token.line, token.text, address.zone,
                )  # fmt: skip
            if address.zone not in zones:
                zones.append(address.zone)
    if tokens and not zones:
        raise directive.error(
            "no valid zone in " + " ".join(repr(t.text) for t in tokens), tokens[0]
        )
    return tuple(zones) or tuple(block_zones)


def parse_duration(directive: Directive, text: str) -> float:
    """Go-style durations as CoreDNS accepts them: 5s, 100ms, 1m30s, 2h."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    if text.isdigit():
        # CoreDNS plugins such as cache and hosts take bare seconds.
        return float(text)
    total = 0.0
    rest = text
    if not rest:
        raise directive.error(f"invalid duration {text!r}")
    while rest:
        number = ""
        while rest and (rest[0].isdigit() or rest[0] == "."):
            number, rest = number + rest[0], rest[1:]
        unit = ""
        while rest and not (rest[0].isdigit() or rest[0] == "."):
            unit, rest = unit + rest[0], rest[1:]
        if not number or unit not in units:
            raise directive.error(f"invalid duration {text!r} (expected e.g. 5s, 100ms, 1m)")
        total += float(number) * units[unit]
    return total


def parse_int(
    directive: Directive, text: str, *, what: str, minimum: int = 0, maximum: int | None = None
) -> int:
    try:
        value = int(text)
    except ValueError:
        raise directive.error(f"{what} must be an integer, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise directive.error(f"{what} must be {bound}, got {value}")
    return value


class PluginError(Exception):
    """A plugin failed to answer (CoreDNS's "return rcode, err").

    The server replies with ``rcode``; the ``errors`` plugin logs it.
    """

    def __init__(self, plugin: str, message: str, *, rcode: int = 2) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.rcode = rcode
