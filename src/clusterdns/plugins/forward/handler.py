"""forward's query path: pick an upstream by policy, exchange, fail over, health-check."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import dns.rcode
from prometheus_client import Counter, Histogram

from clusterdns.core.explain import Rule, Why
from clusterdns.core.metrics import rcode_label
from clusterdns.core.plugin import Plugin, PluginError
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.forward.metrics import ForwardMetrics
from clusterdns.upstream import Upstream, UpstreamError, is_nodata, probe

log = logging.getLogger("clusterdns.forward")

# CoreDNS: a query is retried over the upstreams until 5 s have passed; each read waits 2 s.
DEFAULT_DEADLINE = 5.0
DEFAULT_TRY_TIMEOUT = 2.0
# CoreDNS's health-check client uses a 1 s timeout.
DEFAULT_PROBE_TIMEOUT = 1.0


class Policy(Enum):
    RANDOM = "random"
    ROUND_ROBIN = "round_robin"
    SEQUENTIAL = "sequential"


@dataclass
class HealthCheck:
    interval: float = 0.5
    recursion_desired: bool = True
    domain: str = "."


class Proxy:
    """One upstream plus its health: consecutive failures and the probe loop that clears them."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        metrics: ForwardMetrics,
        health: HealthCheck,
        max_fails: int,
        force_tcp: bool,
    ) -> None:
        self.upstream = upstream
        self.to = str(upstream.address)
        self.health = health
        self.max_fails = max_fails
        self.force_tcp = force_tcp
        self.fails = 0
        self.probe_timeout = DEFAULT_PROBE_TIMEOUT
        self._probing: asyncio.Task[None] | None = None
        self._metrics = metrics
        self._requests = metrics.requests.labels(self.to)
        self._hc_failures = metrics.healthcheck_failures.labels(self.to)
        self._proxy_hc_failures = metrics.proxy_healthcheck_failures.labels("forward", self.to)
        self._by_rcode: dict[int, tuple[Counter, Histogram, Histogram]] = {}

    def __repr__(self) -> str:
        return f"Proxy({self.to}, fails={self.fails})"

    @property
    def down(self) -> bool:
        return self.max_fails > 0 and self.fails >= self.max_fails

    def observe(self, rcode: int, duration: float) -> None:
        children = self._by_rcode.get(rcode)
        if children is None:
            label = rcode_label(rcode)
            m = self._metrics
            children = (
                m.responses.labels(self.to, label),
                m.duration.labels(self.to, label),
                m.proxy_duration.labels("forward", self.to, label),
            )
            self._by_rcode[rcode] = children
        children[0].inc()
        children[1].observe(duration)
        children[2].observe(duration)

    def count_request(self) -> None:
        self._requests.inc()

    def succeeded(self) -> None:
        self.fails = 0

    def failed(self) -> None:
        """An exchange failed: count it and make sure the health check is running."""
        if self.max_fails == 0 or self.health.interval <= 0:
            return  # nothing would ever bring it back up: never mark it down
        self.fails += 1
        self.kick()

    def kick(self) -> None:
        """Start the health-check loop unless it is already running."""
        if self._probing is not None and not self._probing.done():
            return
        self._probing = asyncio.ensure_future(self._probe_until_healthy())

    async def _probe_until_healthy(self) -> None:
        """CoreDNS's in-band health check: probe every interval until one succeeds."""
        while self.fails > 0:
            await asyncio.sleep(self.health.interval)
            ok = await probe(
                self.upstream,
                timeout=self.probe_timeout,
                domain=self.health.domain,
                recursion_desired=self.health.recursion_desired,
                force_tcp=self.force_tcp,
            )
            if ok:
                if self.down:
                    log.info("forward: upstream %s is healthy again", self.to)
                self.fails = 0
                return
            self._hc_failures.inc()
            self._proxy_hc_failures.inc()
            self.fails += 1
            if self.fails == self.max_fails:
                log.warning("forward: upstream %s is down after %d failures", self.to, self.fails)

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
            try:
                await self._probing
            except (asyncio.CancelledError, Exception):
                pass
        await self.upstream.close()


def _rcode_text(wire: bytes) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(wire[3] & 0xF))


def _zone_matches(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


@dataclass
class Stanza:
    """One ``forward FROM TO... { ... }`` directive."""

    origin: str
    proxies: list[Proxy]
    ignored: tuple[str, ...] = ()
    policy: Policy = Policy.RANDOM
    force_tcp: bool = False
    prefer_udp: bool = False
    max_concurrent: int = 0
    failover_rcodes: frozenset[int] = frozenset()
    next_rcodes: frozenset[int] = frozenset()
    next_on_nodata: bool = False
    # Failed exchanges (timeouts, connection errors) one query may cost before SERVFAIL;
    # 0: no cap but the deadline. setup sets CoreDNS's default, two per upstream.
    max_connect_attempts: int = 0
    # CoreDNS's failfast_all_unhealthy_upstreams. clusterdns fails fast either way (see the
    # README): kept so the setting is visible.
    failfast_all_unhealthy: bool = False
    deadline: float = DEFAULT_DEADLINE
    try_timeout: float = DEFAULT_TRY_TIMEOUT
    concurrent: int = 0
    _round_robin: itertools.count[int] = field(default_factory=itertools.count)

    def matches(self, name: str) -> bool:
        if not _zone_matches(name, self.origin):
            return False
        if name == self.origin:
            return True
        return not any(_zone_matches(name, zone) for zone in self.ignored)

    def ordered(self) -> Sequence[Proxy]:
        proxies = self.proxies
        if len(proxies) == 1 or self.policy is Policy.SEQUENTIAL:
            return proxies
        if self.policy is Policy.ROUND_ROBIN:
            start = next(self._round_robin) % len(proxies)
            return proxies[start:] + proxies[:start]
        return random.sample(proxies, len(proxies))


class Forward(Plugin):
    """Every forward stanza of a server block, tried in the order they were written."""

    def __init__(self, stanzas: list[Stanza], metrics: ForwardMetrics) -> None:
        self.stanzas = stanzas
        self.metrics = metrics

    @property
    def proxies(self) -> list[Proxy]:
        return [proxy for stanza in self.stanzas for proxy in stanza.proxies]

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        return await self._serve_from(0, req, next_handler)

    async def _serve_from(self, index: int, req: Request, next_handler: Handler) -> Reply:
        name = req.name
        for position in range(index, len(self.stanzas)):
            stanza = self.stanzas[position]
            if stanza.matches(name):
                return await self._serve_stanza(position, stanza, req, next_handler)
        return await next_handler(req)

    async def _serve_stanza(
        self, position: int, stanza: Stanza, req: Request, next_handler: Handler
    ) -> Reply:
        if stanza.max_concurrent and stanza.concurrent >= stanza.max_concurrent:
            self.metrics.max_concurrent_rejects.inc()
            raise PluginError(
                "forward",
                f"concurrent queries exceeded maximum {stanza.max_concurrent}",
                rcode=dns.rcode.REFUSED,
            )
        stanza.concurrent += 1
        try:
            wire, upstream = await self._exchange(stanza, req)
        finally:
            stanza.concurrent -= 1
        if (wire[3] & 0xF) in stanza.next_rcodes:
            # `next`: the following forward stanza (or plugin) gets a go at it.
            if req.why is not None:
                req.why.append(Why("forward", Rule.FORWARDED, f"{upstream} said "
                                   f"{_rcode_text(wire)}: next stanza"))  # fmt: skip
            return await self._serve_from(position + 1, req, next_handler)
        if stanza.next_on_nodata and is_nodata(wire) and self._has_stanza_after(position, req):
            # CoreDNS: only another forward takes over an empty NOERROR.
            if req.why is not None:
                req.why.append(Why("forward", Rule.FORWARDED, f"{upstream} said NODATA: "
                                   "next stanza"))  # fmt: skip
            return await self._serve_from(position + 1, req, next_handler)
        if req.why is not None:
            req.why.append(Why("forward", Rule.FORWARDED, f"upstream {upstream} "
                               f"(forward {stanza.origin})"))  # fmt: skip
        return Reply.of_wire(wire, plugin="forward")

    def _has_stanza_after(self, position: int, req: Request) -> bool:
        return any(s.matches(req.name) for s in self.stanzas[position + 1 :])

    async def _exchange(self, stanza: Stanza, req: Request) -> tuple[bytes, str]:
        """The upstream's reply and which upstream gave it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stanza.deadline
        order = stanza.ordered()
        last_error: Exception | None = None
        failover_reply: tuple[bytes, str] | None = None
        attempts_left = stanza.max_connect_attempts or -1  # -1: no cap
        while loop.time() < deadline and attempts_left != 0:
            healthy = [proxy for proxy in order if not proxy.down]
            if not healthy:
                break
            pass_started = loop.time()
            for proxy in healthy:
                if loop.time() >= deadline:
                    break
                if proxy.down:  # marked down by a concurrent query or its health check
                    continue
                proxy.count_request()
                started = time.perf_counter()
                try:
                    wire = await proxy.upstream.exchange(
                        req.query.data,
                        deadline=min(deadline, loop.time() + stanza.try_timeout),
                        force_tcp=stanza.force_tcp,
                        prefer_udp=stanza.prefer_udp,
                        client_proto=req.transport,
                    )
                except UpstreamError as err:
                    log.debug("forward: %s: %s", proxy.to, err)
                    last_error = err
                    proxy.failed()
                    attempts_left -= 1
                    if attempts_left == 0:
                        break  # max_connect_attempts: this query has cost enough
                    continue
                proxy.succeeded()
                rcode = wire[3] & 0xF
                proxy.observe(rcode, time.perf_counter() - started)
                if rcode in stanza.failover_rcodes:
                    failover_reply = (wire, proxy.to)
                    continue
                return wire, proxy.to
            if failover_reply is not None:
                # Every healthy upstream answered with a failover rcode: give the last one.
                return failover_reply
            if loop.time() - pass_started < 0.01:
                # Every upstream failed at once (ICMP unreachable): don't spin until the deadline.
                await asyncio.sleep(0.05)
        if failover_reply is not None:
            return failover_reply
        if last_error is None:
            # Every upstream is marked down: answer at once rather than spray queries at
            # upstreams the health check says are dead (CoreDNS picks one at random instead).
            self.metrics.healthcheck_broken.inc()
            raise PluginError("forward", "no healthy upstreams")
        raise PluginError("forward", str(last_error) or type(last_error).__name__)

    async def stop(self) -> None:
        for proxy in self.proxies:
            await proxy.close()
