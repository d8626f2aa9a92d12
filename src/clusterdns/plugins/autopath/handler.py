"""The ``autopath`` plugin at run time: spot a search-path query, walk the rest of the path."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.core.fast import SLOW, FastAnswerer, FastReply, FastResult
from clusterdns.core.plugin import Plugin, PluginError, SetupContext
from clusterdns.core.registry import COREDNS_ORDER
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.plugins.autopath.config import AutoPathConfig
from clusterdns.plugins.autopath.searchpath import join, suffix_wire
from clusterdns.sources.model import ClusterModel, Kind
from clusterdns.wire import DropQuery, FormError, Query, parse_query, text_to_wire

if TYPE_CHECKING:
    from prometheus_client import Counter

    from clusterdns.plugins.autopath.metrics import AutoPathMetrics

log = logging.getLogger("clusterdns.plugins.autopath")

PLUGIN: Final = "autopath"
NOERROR: Final = 0
SERVFAIL: Final = 2
NXDOMAIN: Final = 3
SVC_LABEL: Final = b"\x03svc"
# What glibc's res_nsearch does with each search element's reply: NXDOMAIN, NODATA and
# SERVFAIL try the next element; any other error ends the search. autopath walks the same
# way, so its answer is the one the client would have found itself.
KEEP_SEARCHING: Final = frozenset({NOERROR, NXDOMAIN, SERVFAIL})

# What a search-path query is: (namespace the name claims or None, where the first search
# element starts in the question name, the wire suffixes of the remaining elements).
Plan = tuple[str | None, int, tuple[bytes, ...]]


def answer_count(reply: Reply) -> int:
    if reply.template is not None:
        return int(reply.template.ancount)
    if reply.message is not None:
        return sum(len(rrset) for rrset in reply.message.answer)
    if reply.wire is not None and len(reply.wire) >= 8:
        return (reply.wire[6] << 8) | reply.wire[7]
    return 0


def found(reply: Reply) -> bool:
    """A name that exists with data: NOERROR with at least one answer record."""
    return reply.written and reply.rcode == NOERROR and answer_count(reply) > 0


def found_fast(result: bytes) -> bool:
    return len(result) >= 12 and result[3] & 0xF == NOERROR and (result[6] | result[7]) > 0


class AutoPath(Plugin):
    """Server-side search path completion; see README.md."""

    def __init__(
        self,
        config: AutoPathConfig,
        ctx: SetupContext,
        metrics: AutoPathMetrics,
        *,
        directive: Directive,
    ) -> None:
        self.config = config
        self._ctx = ctx
        self._metrics = metrics
        self._directive = directive
        self._zones = frozenset(text_to_wire(zone) for zone in config.zones)
        self._success: Counter | None = None
        self._downstream: tuple[FastAnswerer, ...] = ()
        # A fixed search list (RESOLV-CONF): its first element and the wire of the rest.
        self._first = b""
        self._tails: tuple[bytes, ...] = ()
        if config.search is not None:
            self._first = suffix_wire(config.search[0])
            self._tails = tuple(suffix_wire(s) for s in (*config.search[1:], ""))
        # @kubernetes: per cluster zone (wire), the wire of [svc.ZONE, ZONE, host..., ""].
        self._kube_tails: dict[bytes, tuple[bytes, ...]] = {}
        self._namespace_of: Callable[[str], str | None] = lambda ip: None
        self.model: ClusterModel | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Every plugin of the block is set up by now, and the ones after us (kubernetes
        # among them) start after us: the place to ask for the Pod IP index.
        ctx = self._ctx
        self._success = self._metrics.success.labels(ctx.server_label)
        self._downstream = self._hooks_after_me()
        if self.config.plugin is not None:
            self._attach(self.config.plugin)

    def _hooks_after_me(self) -> tuple[FastAnswerer, ...]:
        hooks: list[FastAnswerer] = []
        for name in COREDNS_ORDER[COREDNS_ORDER.index(PLUGIN) + 1 :]:
            plugin = self._ctx.plugin(name)
            if plugin is None or not plugin.in_chain:
                continue
            if not isinstance(plugin, FastAnswerer):
                break
            hooks.append(plugin)
        return tuple(hooks)

    def _attach(self, name: str) -> None:
        plugin = self._ctx.plugin(name)
        model = getattr(plugin, "model", None)
        kube_config = getattr(plugin, "config", None)
        zones = getattr(plugin, "zones", None) or getattr(kube_config, "zones", None)
        if plugin is None or not isinstance(model, ClusterModel) or zones is None:
            raise self._directive.error(f"autopath: @{name}, but no {name} plugin in this block")
        if self.config.coredns_compatible:
            if str(getattr(kube_config, "pods", "")) != "verified":
                raise self._directive.error(
                    "autopath: coredns_compatible needs 'pods verified' in the kubernetes plugin"
                )
        else:
            require = getattr(plugin, "require_pod_ips", None)
            if callable(require):
                require()
            else:
                model.require(Kind.POD_IPS)
        self.model = model
        # Through the plugin, not the model object: on reload the kubernetes plugin may
        # adopt its predecessor's running model after we started.
        self._namespace_of = lambda ip: plugin.model.pod_namespace(ip)  # type: ignore[attr-defined]
        host = self.config.host_search
        self._kube_tails = {
            text_to_wire(zone): tuple(suffix_wire(s) for s in (join("svc", zone), zone, *host, ""))
            for zone in zones
        }

    # --- which queries -----------------------------------------------------------------------

    def plan(self, query: Query) -> Plan | None:
        """Is ``query`` the first query of a search-path walk? Reads only the name."""
        lower = query.qname_lower
        offsets = query.label_offsets
        zones = self._zones
        if not any(lower[offset:] in zones for offset in offsets):
            return None
        if self.config.search is not None:
            first = self._first
            for offset in offsets[1:]:
                if lower[offset:] == first:
                    return (None, offset, self._tails)
            return None
        kube_tails = self._kube_tails
        for index, offset in enumerate(offsets):
            tails = kube_tails.get(lower[offset:])
            if tails is None:
                continue
            # <base>.<namespace>.svc.<zone>., the base one label or more
            if index < 3 or lower[offsets[index - 1] : offset] != SVC_LABEL:
                return None
            start = offsets[index - 2]
            namespace = lower[start + 1 : offsets[index - 1]].decode("ascii", "replace")
            return (namespace, start, tails)
        return None

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """Not a search-path query: None, the rest of the fast path decides. One whose own
        name has an answer: that answer, as serve() would return it (never memoised:
        autopath's answers may depend on who asks). Else the chain."""
        if self.plan(query) is None:
            return None
        for hook in self._downstream:
            result = hook.answer_fast(query, limit, payload)
            if result is None:
                continue
            if isinstance(result, FastReply) and found_fast(result.wire):
                return FastReply(result.wire, until=0.0)
            return SLOW
        return SLOW

    # --- queries -----------------------------------------------------------------------------

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        plan = self.plan(req.query)
        if plan is None:
            return await next_handler(req)
        namespace, start, tails = plan
        if namespace is not None and self._namespace_of(req.client[0]) != namespace:
            # Not a Pod of the namespace the name carries: not its search path.
            reply = await next_handler(req)
            if not found(reply):
                # A Pod of that namespace would get a shortcut here instead: the
                # answer depends on who asks, so a cache must not keep it.
                req.meta["client_specific"] = True
            return reply
        first = await next_handler(req)
        if found(first) or first.rcode not in KEEP_SEARCHING:
            return first
        req.meta["client_specific"] = True
        query = req.query
        base = query.qname_wire[:start]
        head, rest = query.data[:12], query.data[query.question_end - 4 :]
        for tail in tails:
            qname = base + tail
            if len(qname) > 255:
                continue
            try:
                sub = req.replace(parse_query(head + qname + rest))
            except (FormError, DropQuery):
                continue
            try:
                reply = await next_handler(sub)
            except PluginError:
                continue  # as SERVFAIL: the client would try the next element
            if found(reply):
                return self._renamed(req, reply)
            if reply.rcode not in KEEP_SEARCHING:
                break
        # Nothing found: the client's own name's reply, and the client walks on itself.
        return first

    def _renamed(self, req: Request, reply: Reply) -> Reply:
        """``reply`` (to another name) as the answer to ``req``: the question restored and a
        CNAME from the asked name to the found one first (CoreDNS's cnamer)."""
        message = reply.to_message()
        assert message is not None
        query = req.query
        asked = dns.name.from_text(query.original_name)
        for rrset in message.answer:
            if rrset.name != asked:  # dnspython compares names case-insensitively
                cname = dns.rrset.from_text(asked, rrset.ttl, "IN", "CNAME", rrset.name.to_text())
                message.answer.insert(0, cname)
                break
        message.question = [
            dns.rrset.RRset(
                asked,
                dns.rdataclass.RdataClass.make(query.qclass),
                dns.rdatatype.RdataType.make(query.qtype),
            )
        ]
        # The reply depends on who asked: a cache keyed on the name alone must not keep it.
        req.meta["client_specific"] = True
        if self._success is not None:
            self._success.inc()
        return Reply.of(message, plugin=PLUGIN)
