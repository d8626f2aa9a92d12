"""The ``kubernetes`` plugin at run time: its source, its answer table, and the query path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from time import monotonic
from typing import Protocol

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core.explain import ListedName, Rule, Why
from clusterdns.core.fast import (
    INFINITE,
    SERIAL_SLACK,
    SLOW,
    ChangeLog,
    ExpressReply,
    FastReply,
    FastResult,
)
from clusterdns.core.metadata import Values
from clusterdns.core.plugin import Plugin, ZoneRecords
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.kubernetes.answers import (
    AnswerTable,
    import_token,
    namespace_token,
    pod_token,
    ptr_key,
)
from clusterdns.plugins.kubernetes.config import KubernetesConfig
from clusterdns.plugins.kubernetes.metadata import kubernetes_metadata
from clusterdns.plugins.kubernetes.names import endpoint_label
from clusterdns.plugins.kubernetes.transfer import zone_records
from clusterdns.sources.model import Change, ClusterModel
from clusterdns.wire import Query

log = logging.getLogger("clusterdns.plugins.kubernetes")

PLUGIN = "kubernetes"
MEMO_LOG = 1024  # changes remembered for the reply memo; a memo further behind starts over
CNAME = dns.rdatatype.CNAME
IN = 1
SERVFAIL = dns.rcode.SERVFAIL
REFUSED = dns.rcode.REFUSED
# Zone transfers are the transfer plugin's; what reaches us is refused (as CoreDNS).
XFR_TYPES = frozenset({int(dns.rdatatype.AXFR), int(dns.rdatatype.IXFR)})


class Source(Protocol):
    async def run(self, model: ClusterModel) -> None: ...


class Kubernetes(Plugin):
    """Serves the cluster's names from an :class:`AnswerTable` kept current by ``source``.

    A FastAnswerer and VersionedRecords (core/fast.py)."""

    name = PLUGIN

    def __init__(
        self,
        config: KubernetesConfig,
        model: ClusterModel,
        source: Source,
        *,
        own_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> None:
        self.config = config
        self.model = model
        self.source = source
        self.own_addresses = own_addresses
        self.table = self._table_for(model)
        self._tasks: list[asyncio.Task[None]] = []
        self._deadline = 0.0
        self.last_change: float | None = None
        model.subscribe(self._on_change)
        # The Services each change touched, for the reply memo: endpoint churn in one
        # Service leaves the others' replies memoised.
        self._memo_log = ChangeLog(MEMO_LOG)
        # Set by adopt(): the predecessor's running model and tasks, and the kinds it watched.
        self._adopted: Kubernetes | None = None
        self._adopted_tasks: list[asyncio.Task[None]] = []

    def _table_for(self, model: ClusterModel) -> AnswerTable:
        table = AnswerTable(self.config, model, own_addresses=self.own_addresses)
        table.serial_slack = SERIAL_SLACK  # read here: tests shorten it
        return table

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones this plugin answers for (the cache stamps entries under them)."""
        return self.config.zones

    @property
    def generation(self) -> int:
        """Bumped whenever any answer may have changed (the cache plugin watches this)."""
        return self.table.generation

    # --- lifecycle -------------------------------------------------------------------------

    def adopt(self, previous: Plugin) -> None:
        """Reload with the same settings: keep the predecessor's synced model and watch."""
        assert isinstance(previous, Kubernetes)
        if previous.config != self.config or previous.own_addresses != self.own_addresses:
            return
        if not previous._tasks or previous._adopted is not None:
            return
        self._adopted, self._adopted_tasks = previous, previous._tasks
        previous._tasks = []

    async def start(self) -> None:
        self._deadline = time.monotonic() + self.config.startup_timeout
        if self._adopted is not None:
            previous, tasks = self._adopted, self._adopted_tasks
            self._adopted, self._adopted_tasks = None, []
            model = previous.model
            # Plugins started before us (autopath) may have asked our fresh model for
            # more kinds than the adopted watch has: then the fresh model it is.
            if self.model.kinds <= model.kinds:
                self.model.unsubscribe(self._on_change)
                model.unsubscribe(previous._on_change)
                self.model, self.source = model, previous.source
                model.subscribe(self._on_change)
                self.table = self._table_for(model)
                self.table.deferring = False
                self.table.rebuild()
                self._tasks = tasks
                log.info(
                    "kubernetes: reload kept the running watch (%d services)",
                    self.model.service_count(),
                )
                return
            for task in tasks:
                task.cancel()
        self.table.rebuild()
        self._tasks = [
            asyncio.ensure_future(self._run_source()),
            asyncio.ensure_future(self._announce_sync()),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("kubernetes: source failed while stopping")

    def ready(self) -> bool | None:
        return self.model.synced and not self.table.deferring

    def metadata(self, req: Request) -> Values:
        """The metadata labels of ``req`` (core/metadata.py; kubernetes/metadata.py)."""
        return kubernetes_metadata(self.config, self.model, req.name, req.client[0])

    async def _run_source(self) -> None:
        try:
            await self.source.run(self.model)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Sources retry on their own; reaching here is a bug. Keep serving what we have.
            log.exception("kubernetes: source stopped")

    async def _announce_sync(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        synced = await self.model.wait_synced(self.config.startup_timeout)
        # Given up waiting (or synced without a change to say so): build what we have.
        self._build_deferred()
        if not synced:
            log.warning(
                "kubernetes: starting server with unsynced kubernetes api after %gs",
                self.config.startup_timeout,
            )
            await self.model.wait_synced()
        # Answers that were SERVFAIL before the sync are now NXDOMAIN: let caches know.
        self._memo_log.record(self.table.generation + 1, ())
        self.table.apply(Change(frozenset(), frozenset(), frozenset(), full=False))
        imports = ""
        if self.config.multicluster_zones:
            imports = f", {sum(1 for _ in self.model.service_imports())} service imports"
        log.info(
            "kubernetes: synced with the cluster in %.3fs, %d services%s",
            loop.time() - started,
            self.model.service_count(),
            imports,
        )

    def _build_deferred(self) -> None:
        """The initial lists are in: build every name once (the table ignored the changes
        until now, rather than rebuilding per kind and page of the lists)."""
        if self.table.deferring:
            self.table.deferring = False
            self.table.rebuild()

    def _on_change(self, change: Change) -> None:
        if self.table.deferring:
            if self.model.synced:
                self._build_deferred()  # synchronously, so no query sees a synced empty table
            return
        tokens: frozenset[Hashable] | None = None
        if not change.full and not change.namespaces:
            tokens = (
                change.services
                | {namespace_token(ns) for ns, _ in change.named}
                | {ptr_key(ip) for ip in change.ips}
                | {pod_token(ip) for ip in change.pod_ips}
                | {import_token(ns, name) for ns, name in change.imports}
                | {import_token(ns, "") for ns, _ in change.imports}
            )
        self._memo_log.record(self.table.generation + 1, tokens)  # before it is published
        self.table.apply(change)
        self.last_change = time.monotonic()
        log.debug(
            "kubernetes: applied change (%d services, %d namespaces, %d pod ips), generation %d",
            len(change.services),
            len(change.namespaces),
            len(change.pod_ips),
            self.table.generation,
        )

    # --- queries ---------------------------------------------------------------------------

    def _waiting(self) -> bool:
        """Before the first sync and within ``startup_timeout`` of start: hold queries."""
        return self.table.deferring and time.monotonic() < self._deadline

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """The core's fast path (core/fast.py); may run in a UDP thread, so it only reads.

        Every reply the model determines is written on the wire here, first sight
        included; SLOW (the chain, on the event loop) only before the first sync, for
        another class than IN, and for an ExternalName whose target must be looked up
        through the server. None for names outside our zones and names that fall through.
        """
        table = self.table
        lower = query.qname_lower
        offsets = query.label_offsets
        found = table.zone_of(lower, offsets)
        if found is None:
            return None
        if table.deferring or query.qclass != IN or query.qtype in XFR_TYPES:
            return SLOW
        quick = table.quick(query, found, limit, payload)
        if quick is not None:
            wire, depends, carries_soa = quick
            return FastReply(wire, monotonic() + SERIAL_SLACK if carries_soa else INFINITE, depends)
        answer = table.decide(lower, offsets, query.qtype, found, query.qname_wire)
        if answer is None:
            return None
        if answer.chase is not None or answer.rcode == SERVFAIL:
            return SLOW
        until = monotonic() + SERIAL_SLACK if answer.carries_soa else INFINITE
        return FastReply(answer.to_wire(query, limit, payload), until, answer.depends)

    def answer_express(self, data: bytes, tcp: bool, max_udp: int) -> ExpressReply | None:
        """answer_fast() of the commonest questions, from the datagram (core/fast.py)."""
        return self.table.express(data, tcp, max_udp)

    def list_records(self, select: str | None) -> list[ListedName]:
        """Every name this plugin answers, with its records (core/explain.py RecordLister)."""
        from clusterdns.plugins.kubernetes.listing import list_names

        return list_names(self.table, select)

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        """The dependency tokens (Service keys, PTR IPs) touched after
        ``generation``; None if unknown (a full rebuild, a namespace change, a gap)."""
        return self._memo_log.since(generation, self.table.generation)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        if not self.table.ours(query.qname_lower, query.label_offsets):
            return await next_handler(req)
        if query.qtype in XFR_TYPES:
            return Reply.error(REFUSED, plugin=PLUGIN)
        if self.table.deferring:
            remaining = self._deadline - time.monotonic()
            if remaining > 0:
                await self.model.wait_synced(remaining)
            if self.model.synced or time.monotonic() >= self._deadline:
                self._build_deferred()
        answer = self.table.decide(
            query.qname_lower,
            query.label_offsets,
            query.qtype,
            asked=query.qname_wire,
            why=req.why,
        )
        if answer is None:
            return await next_handler(req)
        wire = answer.to_wire(query, 65535, req.block.settings.max_udp_size)
        reply = Reply.of_wire(wire, plugin=PLUGIN)
        if answer.chase is not None:
            return await self._chase_external(req, reply)
        return reply

    def endpoint_label(self, ip: str, hostname: str | None, pod_name: str | None) -> str:
        """The first label of an endpoint's name under this plugin's settings (k8s_external
        names endpoints the same way)."""
        return endpoint_label(ip, hostname, pod_name, pod_names=self.config.endpoint_pod_names)

    def transfer(self, zone: str, serial: int | None) -> ZoneRecords | None:
        """Transferer (core/plugin.py), for the transfer plugin: see transfer.py."""
        return zone_records(self.table, zone, serial)

    async def _chase_external(self, req: Request, reply: Reply) -> Reply:
        """An ExternalName answer: add the target's records, looked up through the server
        (cache, forward...) as CoreDNS's upstream does; stub resolvers don't chase CNAMEs."""
        message = reply.to_message()
        if message is None or not message.answer:
            return reply
        last = message.answer[-1]
        if last.rdtype != CNAME:
            return reply
        target = last[0].target.to_text()
        found = await req.lookup(target, req.qtype)
        if req.why is not None:
            outcome = (
                "no answer"
                if found is None
                else f"{dns.rcode.to_text(dns.rcode.Rcode.make(found.rcode))} from "
                f"{found.plugin or 'the server'}"
            )
            req.why.append(Why(PLUGIN, Rule.EXTERNAL_NAME, f"{target} looked up: {outcome}"))
        if found is None or found.rcode != dns.rcode.NOERROR:
            return reply
        extra = found.to_message()
        if extra is None:
            return reply
        message.answer.extend(extra.answer)
        message.id = req.query.id
        return Reply.of(message, plugin=PLUGIN)
