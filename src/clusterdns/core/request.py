"""What a plugin receives (Request) and what it returns (Reply)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import dns.flags
import dns.message
import dns.rcode

from clusterdns.wire import AnswerTemplate, FormError, Query

if TYPE_CHECKING:
    from clusterdns.core.block import Block
    from clusterdns.core.explain import Why

Transport = Literal["udp", "tcp"]


class Request:
    """One query as it travels the plugin chain.

    The decoded ``query`` is shared and never mutated; a plugin that wants to
    ask something else (rewrite) makes a new Request with :meth:`replace`.
    """

    __slots__ = (
        "_message", "block", "client", "lookup_via", "meta", "query", "transport", "why", "zone",
    )  # fmt: skip

    def __init__(
        self,
        query: Query,
        *,
        transport: Transport,
        client: tuple[str, int],
        block: Block,
        zone: str,
    ) -> None:
        self.query = query
        self.transport = transport
        self.client = client
        self.block = block
        self.zone = zone
        self.meta: dict[str, Any] = {}
        self._message: dns.message.Message | None = None
        # Set by the dispatcher: resolves another name through this listener's blocks.
        self.lookup_via: Callable[[Request, str, int], Awaitable[Reply | None]] | None = None
        # Set to a list only when the question is being explained (core/explain.py): the
        # plugins that decide append why; None for every real query.
        self.why: list[Why] | None = None

    async def lookup(self, name: str, qtype: int) -> Reply | None:
        """Ask the server itself for ``name``/``qtype`` (all blocks of this listener, whole
        chains: cache, forward...), as CoreDNS's upstream lookups do. None when no block
        serves the name or lookups nest too deep."""
        if self.lookup_via is None:
            return None
        return await self.lookup_via(self, name, qtype)

    @property
    def name(self) -> str:
        """Lower-case absolute question name."""
        return self.query.name

    @property
    def qtype(self) -> int:
        return self.query.qtype

    @property
    def qclass(self) -> int:
        return self.query.qclass

    @property
    def family(self) -> int:
        """1 for IPv4 clients, 2 for IPv6 (the label CoreDNS's metrics use)."""
        return 2 if ":" in self.client[0] else 1

    @property
    def do(self) -> bool:
        edns = self.query.edns
        return edns is not None and edns.do

    def message(self) -> dns.message.Message:
        """The query decoded by dnspython (costly: only off the hot path)."""
        if self._message is None:
            try:
                self._message = dns.message.from_wire(
                    self.query.data, ignore_trailing=True, one_rr_per_rrset=True
                )
            except Exception as err:  # dnspython raises many types for bad input
                raise FormError(f"query rejected by full decoder: {err}") from err
        return self._message

    def make_response(self, *, authoritative: bool = True) -> dns.message.Message:
        """An empty reply to this query, question echoed in the client's letter case."""
        response = dns.message.make_response(self.message(), recursion_available=False)
        response.use_edns(False)
        if authoritative:
            response.flags |= dns.flags.AA
        return response

    def replace(self, query: Query) -> Request:
        """A copy of this request asking ``query`` instead (metadata is shared)."""
        clone = Request(
            query, transport=self.transport, client=self.client, block=self.block, zone=self.zone
        )
        clone.meta = self.meta
        clone.lookup_via = self.lookup_via
        clone.why = self.why
        return clone


class Reply:
    """A plugin's answer. Exactly one of message, template or wire is set, or none
    for an error reply that the server writes itself (CoreDNS's "rcode, nothing
    written" contract), or ``drop`` for no reply at all (acl's drop).

    ``more``: further complete messages (the query's ID included) that follow this one
    on the same TCP connection, produced as they are sent (a zone transfer); UDP never
    gets them."""

    __slots__ = ("drop", "message", "more", "plugin", "rcode", "template", "wire")

    def __init__(
        self,
        rcode: int,
        *,
        plugin: str,
        message: dns.message.Message | None = None,
        template: AnswerTemplate | None = None,
        wire: bytes | None = None,
        more: AsyncGenerator[bytes, None] | None = None,
    ) -> None:
        self.rcode = rcode
        self.plugin = plugin
        self.message = message
        self.template = template
        self.wire = wire
        self.more = more
        self.drop = False

    @classmethod
    def dropped(cls, *, plugin: str) -> Reply:
        """No reply: the client hears nothing (CoreDNS: success with nothing written)."""
        reply = cls(0, plugin=plugin)
        reply.drop = True
        return reply

    @classmethod
    def error(cls, rcode: int, *, plugin: str = "") -> Reply:
        return cls(rcode, plugin=plugin)

    @classmethod
    def of(cls, message: dns.message.Message, *, plugin: str) -> Reply:
        return cls(message.rcode(), plugin=plugin, message=message)

    @classmethod
    def of_template(cls, template: AnswerTemplate, *, plugin: str) -> Reply:
        return cls(template.rcode, plugin=plugin, template=template)

    @classmethod
    def of_wire(cls, wire: bytes, *, plugin: str) -> Reply:
        """A complete reply from elsewhere (an upstream); its ID is rewritten on the way out."""
        return cls(wire[3] & 0xF, plugin=plugin, wire=wire)

    @property
    def written(self) -> bool:
        return self.message is not None or self.template is not None or self.wire is not None

    def to_message(self) -> dns.message.Message | None:
        """A private dnspython copy of the reply, for plugins that edit answers."""
        if self.message is not None:
            return dns.message.from_wire(self.message.to_wire(max_size=65535))
        if self.template is not None:
            return dns.message.from_wire(self.template.wire)
        if self.wire is not None:
            return dns.message.from_wire(self.wire)
        return None

    def __repr__(self) -> str:
        return (
            f"Reply({dns.rcode.to_text(dns.rcode.Rcode.make(self.rcode))}, plugin={self.plugin!r})"
        )


Handler = Callable[[Request], Awaitable[Reply]]
