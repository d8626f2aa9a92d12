"""The ``kubernetes`` plugin at run time: its source, its answer table, and the query path."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Hashable
from typing import Protocol

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core.memo import INFINITE
from clusterdns.core.plugin import SLOW, MemoTerms, Plugin, SlowType
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.kubernetes.answers import AnswerTable, Outcome, ptr_key
from clusterdns.plugins.kubernetes.config import KubernetesConfig
from clusterdns.plugins.kubernetes.names import ip_from_reverse
from clusterdns.sources.model import Change, ClusterModel, ServiceKey
from clusterdns.wire import AnswerTemplate, FormError, Query, skip_name

log = logging.getLogger("clusterdns.plugins.kubernetes")

PLUGIN = "kubernetes"
MEMO_LOG = 1024  # changes remembered for the reply memo; a memo further behind starts over
CNAME = dns.rdatatype.CNAME
PTR = dns.rdatatype.PTR
NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
# The reply memo's token for "the SOA serial moved" (negative answers carry it). No real
# Service key has an empty namespace; ptr_key() uses IPs, never this text.
SERIAL_TOKEN: ServiceKey = ("", "serial")


class Source(Protocol):
    async def run(self, model: ClusterModel) -> None: ...


class Kubernetes(Plugin):
    """Serves the cluster's names from an :class:`AnswerTable` kept current by ``source``."""

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
        self.table = AnswerTable(config, model, own_addresses=own_addresses)
        self._tasks: list[asyncio.Task[None]] = []
        self._deadline = 0.0
        self.last_change: float | None = None
        model.subscribe(self._on_change)
        # (generation, the Services a change touched, or None for "anything"), for the
        # reply memo: endpoint churn in one Service leaves the others' replies memoised.
        self._memo_log: collections.deque[tuple[int, frozenset[Hashable] | None]] = (
            collections.deque(maxlen=MEMO_LOG)
        )
        # Set by adopt(): the predecessor's running model and tasks, and the kinds it watched.
        self._adopted: Kubernetes | None = None
        self._adopted_tasks: list[asyncio.Task[None]] = []

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
                self.table = AnswerTable(self.config, model, own_addresses=self.own_addresses)
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
        serial = self.table.serial
        self.table.apply(Change(frozenset(), frozenset(), frozenset(), full=False))
        # No Service changed; the serial in negative answers may have.
        moved = frozenset({SERIAL_TOKEN}) if self.table.serial != serial else frozenset()
        self._memo_log.append((self.table.generation, moved))
        log.info(
            "kubernetes: synced with the cluster in %.3fs, %d services",
            loop.time() - started,
            self.model.service_count(),
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
        serial = self.table.serial
        self.table.apply(change)
        tokens: frozenset[Hashable] | None = None
        if not change.full and not change.namespaces:
            tokens = change.services | {ptr_key(ip) for ip in change.ips}
            if self.table.serial != serial:
                tokens |= {SERIAL_TOKEN}
        self._memo_log.append((self.table.generation, tokens))
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

    def fast(self, query: Query) -> AnswerTemplate | SlowType | None:
        """The core's fast path; may run in a UDP thread, so it only reads.

        A stored template when there is one, None for names outside our zones, and SLOW
        (the chain, on the event loop) for everything else: first sight of a name, waiting
        for the first sync, fall through.
        """
        table = self.table
        key = (query.qname_lower, query.qtype)
        if query.qname_lower in table.external_cnames and query.qtype != CNAME:
            return SLOW  # serve() chases the target through the server
        template = table.templates.get(key) or table.memo.get(key)
        if template is not None and (self.model.synced or not self._waiting()):
            return template
        if not table.ours(query):
            return None
        negative = table.negative(query)
        if negative is not None:
            return negative
        return SLOW

    def fast_memo(self, query: Query, result: object) -> MemoTerms | None:
        """Our fast answers are right for every client until the generation moves, which
        the reply memo watches; nothing else counts per hit.

        A positive answer at or under a Service's name (the Service, its endpoints, its
        SRV names) depends on that Service alone: its token is the Service's key; a positive
        PTR depends on its IP's owners, which the model reports per change (Change.ips); a
        negative answer under a Service's name on that Service and on the SOA serial (it
        moves at most once a second). Anything else (namespaces, pods, the apex, CNAMEs
        whose target may be another Service) goes with any change."""
        return INFINITE, (), self._depends_on(query, result)

    def _depends_on(self, query: Query, result: object) -> Hashable | None:
        if not isinstance(result, AnswerTemplate):
            return None
        wire = result.wire
        if len(wire) < 12:
            return None
        rcode = wire[3] & 0xF
        answers = (wire[6] << 8) | wire[7]
        authority = (wire[8] << 8) | wire[9]
        name = query.name.lower()
        if rcode == NOERROR and answers and not authority:
            try:
                at = skip_name(wire, skip_name(wire, 12) + 4)  # past the question, the owner
                rrtype = (wire[at] << 8) | wire[at + 1]
            except (FormError, IndexError):
                return None
            if rrtype == CNAME:
                return None
            if query.qtype == PTR:
                ip = ip_from_reverse(name)  # its owners' changes come with Change.ips
                return None if ip is None else ptr_key(ip)
            return self.table.service_key(name)
        if rcode in (NOERROR, NXDOMAIN) and not answers and authority:
            # NODATA or NXDOMAIN at or under a Service's name: that Service's existence
            # decides it, and the SOA it carries has the serial.
            key = self.table.service_key(name, any_depth=True)
            return None if key is None else frozenset((key, SERIAL_TOKEN))
        return None

    def memo_changes(self, since: int) -> frozenset[Hashable] | None:
        """The Services whose answers changed after generation ``since``, None if unknown
        (a full rebuild, a namespace change, or a gap in the log)."""
        current = self.table.generation
        touched: set[Hashable] = set()
        expected = since + 1
        # A copy taken in one step: the loop thread may append while a UDP thread reads.
        for generation, services in tuple(self._memo_log):
            if generation <= since:
                continue
            if generation != expected or services is None:
                return None
            touched.update(services)
            expected += 1
        if expected != current + 1:
            return None
        return frozenset(touched)

    def lookup(self, query: Query) -> AnswerTemplate | None:
        """The stored reply to ``query`` when it is fully determined, else None.

        Builds and memoises replies on first use, so call it from the event loop. None
        also while waiting for the first sync within ``startup_timeout``.
        """
        if self._waiting():
            return None
        return self.table.lookup(query)

    def outcome(self, name: str, qtype: int) -> Outcome | None:
        """What the dnspython path answers (None: not ours, or falls through)."""
        return self.table.outcome(name, qtype)

    def answer_message(self, req: Request, outcome: Outcome) -> dns.message.Message:
        response = req.make_response()
        response.set_rcode(dns.rcode.Rcode.make(outcome.rcode))
        response.answer = list(outcome.answer)
        response.authority = list(outcome.authority)
        response.additional = list(outcome.additional)
        return response

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        if not self.table.ours(query):
            return await next_handler(req)
        if self.table.deferring:
            remaining = self._deadline - time.monotonic()
            if remaining > 0:
                await self.model.wait_synced(remaining)
            if self.model.synced or time.monotonic() >= self._deadline:
                self._build_deferred()
        template = self.lookup(query)
        if template is not None:
            reply = Reply.of_template(template, plugin=PLUGIN)
        else:
            outcome = self.table.outcome(req.name, query.qtype)
            if outcome is None:
                return await next_handler(req)
            reply = Reply.of(self.answer_message(req, outcome), plugin=PLUGIN)
        if query.qname_lower in self.table.external_cnames and query.qtype != CNAME:
            return await self._chase_external(req, reply)
        return reply

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
        if found is None or found.rcode != dns.rcode.NOERROR:
            return reply
        extra = found.to_message()
        if extra is None:
            return reply
        message.answer.extend(extra.answer)
        message.id = req.query.id
        return Reply.of(message, plugin=PLUGIN)
