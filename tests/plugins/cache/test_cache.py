"""cache against a fake next plugin: keys, TTLs, ID/case patching, denial, capacity,
servfail, serve_stale, prefetch and generation invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from prometheus_client import CollectorRegistry

from clusterdns.core.block import Block
from clusterdns.core.fast import SLOW, FastReply
from clusterdns.core.plugin import BlockSettings, Plugin, PluginError
from clusterdns.core.request import Reply, Request
from clusterdns.plugins.cache import Cache, CacheConfig
from clusterdns.plugins.cache.metrics import metrics_for
from clusterdns.wire import AnswerTemplate, Query, parse_query
from clusterdns.wire.render import reply_limit

pytestmark = pytest.mark.timeout(10)

Answer = Callable[[dns.message.Message], Reply]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordPlugin(Plugin):
    """Stands in for kubernetes/hosts/file: zones, a generation, and canned replies."""

    def __init__(self, zones: tuple[str, ...]) -> None:
        self.zones = zones
        self.generation = 0

    def changes_since(self, generation: int) -> frozenset[str] | None:
        return None


class Upstream:
    """The next handler: counts calls and answers with whatever ``answer`` builds."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls = 0
        self.fail = False

    async def __call__(self, req: Request) -> Reply:
        self.calls += 1
        if self.fail:
            raise PluginError("forward", "no healthy upstreams")
        return self.answer(req.message())


def a_reply(*addresses: str, ttl: int = 300) -> Answer:
    def build(query: dns.message.Message) -> Reply:
        response = dns.message.make_response(query)
        name = query.question[0].name
        response.answer.append(dns.rrset.from_text_list(name, ttl, "IN", "A", list(addresses)))
        return Reply.of_wire(response.to_wire(), plugin="forward")

    return build


def rcode_reply(rcode: int, *, soa_ttl: int = 3600, minimum: int = 60) -> Answer:
    def build(query: dns.message.Message) -> Reply:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        if rcode in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR):
            response.authority.append(
                dns.rrset.from_text(
                    "example.org.",
                    soa_ttl,
                    "IN",
                    "SOA",
                    f"ns.example.org. admin.example.org. 1 7200 3600 1209600 {minimum}",
                )
            )
        return Reply.of_wire(response.to_wire(), plugin="forward")

    return build


def make_cache(config: CacheConfig | None = None, *plugins: Plugin) -> tuple[Cache, Block, Clock]:
    clock = Clock()
    cache = Cache(config or CacheConfig(), metrics_for(CollectorRegistry()), clock=clock)
    block = Block(
        zones=(".",), port=0, server_label="dns://:53", plugins=[cache, *plugins],
        settings=BlockSettings(), file="Corefile", line=1,
    )  # fmt: skip
    return cache, block, clock


def request(
    block: Block, name: str, rdtype: str = "A", *, qid: int = 1, do: bool = False, edns: bool = True
) -> Request:
    message = dns.message.make_query(name, rdtype, want_dnssec=do, use_edns=0 if edns else False)
    message.id = qid
    return Request(
        parse_query(message.to_wire()), transport="udp", client=("127.0.0.1", 5000),
        block=block, zone=".",
    )  # fmt: skip


async def ask(
    cache: Cache, block: Block, upstream: Upstream, name: str, **kw: object
) -> dns.message.Message:
    req = request(block, name, **kw)  # type: ignore[arg-type]
    reply = await cache.serve(req, upstream)
    assert reply.wire is not None
    return dns.message.from_wire(reply.wire)


def ttls(message: dns.message.Message) -> list[int]:
    return [rrset.ttl for section in (message.answer, message.authority) for rrset in section]


async def test_hit_decrements_ttl_and_keeps_the_answer() -> None:
    cache, block, clock = make_cache()
    upstream = Upstream(a_reply("192.0.2.1", "192.0.2.2", ttl=300))
    first = await ask(cache, block, upstream, "example.org.")
    assert ttls(first) == [300]
    clock.now += 10.5
    second = await ask(cache, block, upstream, "example.org.")
    assert upstream.calls == 1
    assert ttls(second) == [290]
    assert sorted(rd.to_text() for rd in second.answer[0]) == ["192.0.2.1", "192.0.2.2"]


async def test_each_client_gets_its_id_and_letter_case() -> None:
    cache, block, _ = make_cache()
    upstream = Upstream(a_reply("192.0.2.1"))
    await ask(cache, block, upstream, "ExAmPlE.org.", qid=111)
    reply = await ask(cache, block, upstream, "EXAMPLE.ORG.", qid=222)
    assert upstream.calls == 1
    assert reply.id == 222
    assert reply.question[0].name.to_text() == "EXAMPLE.ORG."
    assert reply.answer[0].name.to_text() == "EXAMPLE.ORG."  # owner compressed to the question


async def test_edns_mirrors_each_client() -> None:
    cache, block, _ = make_cache()
    upstream = Upstream(a_reply("192.0.2.1"))
    with_edns = await ask(cache, block, upstream, "example.org.", edns=True)
    without = await ask(cache, block, upstream, "example.org.", edns=False)
    assert with_edns.edns == 0
    assert without.edns == -1  # no OPT for a client that sent none
    assert upstream.calls == 1


async def test_do_bit_is_part_of_the_key() -> None:
    cache, block, _ = make_cache()
    upstream = Upstream(a_reply("192.0.2.1"))
    await ask(cache, block, upstream, "example.org.", do=False)
    await ask(cache, block, upstream, "example.org.", do=True)
    await ask(cache, block, upstream, "example.org.", do=True)
    assert upstream.calls == 2


async def test_ttl_is_capped_and_floored() -> None:
    cache, block, _ = make_cache(CacheConfig(success_ttl=30))
    high = Upstream(a_reply("192.0.2.1", ttl=86400))
    low = Upstream(a_reply("192.0.2.1", ttl=1))
    assert ttls(await ask(cache, block, high, "high.example.")) == [30]
    assert ttls(await ask(cache, block, low, "low.example.")) == [5]  # MINTTL default 5


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "cached_for"),
    [(3600, 60, 60), (30, 600, 30), (3600, 1, 5), (7200, 7200, 1800)],
    ids=["SOA minimum", "SOA TTL smaller", "floored at 5", "capped at 1800"],
)
async def test_denial_is_cached_by_soa_minimum(soa_ttl: int, minimum: int, cached_for: int) -> None:
    cache, block, clock = make_cache()
    upstream = Upstream(rcode_reply(dns.rcode.NXDOMAIN, soa_ttl=soa_ttl, minimum=minimum))
    first = await ask(cache, block, upstream, "missing.example.org.")
    assert first.rcode() == dns.rcode.NXDOMAIN
    assert ttls(first) == [cached_for]
    clock.now += cached_for - 0.5
    assert (await ask(cache, block, upstream, "missing.example.org.")).rcode() == dns.rcode.NXDOMAIN
    assert upstream.calls == 1
    clock.now += 1
    await ask(cache, block, upstream, "missing.example.org.")
    assert upstream.calls == 2
    assert len(cache.denial) == 1 and not cache.success


async def test_nodata_is_a_denial() -> None:
    cache, block, _ = make_cache()
    upstream = Upstream(rcode_reply(dns.rcode.NOERROR))
    reply = await ask(cache, block, upstream, "example.org.", rdtype="AAAA")  # type: ignore[arg-type]
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert len(cache.denial) == 1


@pytest.mark.parametrize(
    ("config", "calls_within", "calls_after"),
    [
        (CacheConfig(), 1, 2),
        (CacheConfig(servfail_ttl=0), 2, 3),
        (CacheConfig(servfail_ttl=30), 1, 1),
    ],
    ids=["servfail 5s default", "servfail 0 → not cached", "servfail 30s"],
)
async def test_servfail_is_cached_briefly(
    config: CacheConfig, calls_within: int, calls_after: int
) -> None:
    cache, block, clock = make_cache(config)
    upstream = Upstream(rcode_reply(dns.rcode.SERVFAIL))
    await ask(cache, block, upstream, "broken.example.")
    clock.now += 4
    await ask(cache, block, upstream, "broken.example.")
    assert upstream.calls == calls_within
    clock.now += 2
    await ask(cache, block, upstream, "broken.example.")
    assert upstream.calls == calls_after


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP])
async def test_other_errors_are_not_cached(rcode: int) -> None:
    cache, block, _ = make_cache()
    upstream = Upstream(rcode_reply(rcode))
    await ask(cache, block, upstream, "x.example.")
    await ask(cache, block, upstream, "x.example.")
    assert upstream.calls == 2


async def test_truncated_and_plugin_errors_are_not_cached() -> None:
    def truncated(query: dns.message.Message) -> Reply:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        return Reply.of_wire(response.to_wire(), plugin="forward")

    cache, block, _ = make_cache()
    upstream = Upstream(truncated)
    await ask(cache, block, upstream, "tc.example.")
    await ask(cache, block, upstream, "tc.example.")
    assert upstream.calls == 2
    failing = Upstream(a_reply("192.0.2.1"))
    failing.fail = True
    for _ in range(2):
        with pytest.raises(PluginError):
            await cache.serve(request(block, "down.example."), failing)
    assert failing.calls == 2


async def test_capacity_is_bounded() -> None:
    cache, block, _ = make_cache(CacheConfig(success_capacity=2))
    upstream = Upstream(a_reply("192.0.2.1"))
    for name in ("a.example.", "b.example.", "c.example."):
        await ask(cache, block, upstream, name)
    assert len(cache.success) == 2
    await ask(cache, block, upstream, "a.example.")  # evicted first: asked again
    assert upstream.calls == 4
    registry_value = cache.metrics.evictions.labels("dns://:53", "success", ".", "")._value.get()
    assert registry_value == 2


async def test_keepttl_serves_original_ttls() -> None:
    cache, block, clock = make_cache(CacheConfig(keepttl=True))
    upstream = Upstream(a_reply("192.0.2.1", ttl=300))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 100
    assert ttls(await ask(cache, block, upstream, "example.org.")) == [300]


async def test_only_configured_zones_are_cached() -> None:
    cache, block, _ = make_cache(CacheConfig(zones=("example.org.",)))
    upstream = Upstream(a_reply("192.0.2.1"))
    for _ in range(2):
        await cache.serve(request(block, "www.example.org."), upstream)
        await cache.serve(request(block, "www.example.com."), upstream)
    assert upstream.calls == 3


@pytest.mark.parametrize(
    ("config", "success_cached", "denial_cached"),
    [
        (CacheConfig(disable_success=(".",)), False, True),
        (CacheConfig(disable_denial=("example.org.",)), True, False),
        (CacheConfig(disable_denial=("example.com.",)), True, True),
    ],
    ids=["disable success", "disable denial in zone", "disable denial elsewhere"],
)
async def test_disable(config: CacheConfig, success_cached: bool, denial_cached: bool) -> None:
    cache, block, _ = make_cache(config)
    await ask(cache, block, Upstream(a_reply("192.0.2.1")), "www.example.org.")
    await ask(cache, block, Upstream(rcode_reply(dns.rcode.NXDOMAIN)), "no.example.org.")
    assert bool(cache.success) == success_cached
    assert bool(cache.denial) == denial_cached


async def test_template_and_message_replies_are_cached() -> None:
    def template(query: dns.message.Message) -> Reply:
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text("svc.cluster.local.", 5, "IN", "A", "10.0.0.1"))
        return Reply.of_template(AnswerTemplate.from_message(response), plugin="kubernetes")

    def message(query: dns.message.Message) -> Reply:
        response = dns.message.make_response(query)
        response.answer.append(
            dns.rrset.from_text(query.question[0].name, 5, "IN", "A", "10.0.0.2")
        )
        return Reply.of(response, plugin="hosts")

    cache, block, _ = make_cache()
    for build, name in ((template, "svc.cluster.local."), (message, "h.example.")):
        upstream = Upstream(build)
        first = await ask(cache, block, upstream, name)
        second = await ask(cache, block, upstream, name.upper())
        assert upstream.calls == 1
        assert first.answer[0][0] == second.answer[0][0]


async def test_lookup_is_the_synchronous_fast_path() -> None:
    cache, block, clock = make_cache()
    upstream = Upstream(a_reply("192.0.2.1", ttl=60))
    req = request(block, "example.org.", qid=7)
    assert cache.lookup(req) is None  # miss
    await cache.serve(req, upstream)
    clock.now += 20
    wire = cache.lookup(request(block, "Example.Org.", qid=9).query)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert (reply.id, reply.question[0].name.to_text(), reply.answer[0].ttl) == (
        9,
        "Example.Org.",
        40,
    )


async def test_serve_stale_answers_with_ttl_zero_and_refreshes() -> None:
    cache, block, clock = make_cache(CacheConfig(stale_up_to=3600))
    upstream = Upstream(a_reply("192.0.2.1", ttl=30))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 40
    upstream.fail = True
    stale = await ask(cache, block, upstream, "example.org.")
    assert ttls(stale) == [0]
    assert stale.answer[0][0].to_text() == "192.0.2.1"
    await asyncio.sleep(0.01)  # the background refresh ran, and failed
    assert upstream.calls == 2
    assert cache.metrics.served_stale.labels("dns://:53", ".", "")._value.get() == 1
    upstream.fail = False
    upstream.answer = a_reply("192.0.2.9", ttl=30)
    await ask(cache, block, upstream, "example.org.")  # stale again, refresh succeeds
    await asyncio.sleep(0.01)
    fresh = await ask(cache, block, upstream, "example.org.")
    assert fresh.answer[0][0].to_text() == "192.0.2.9"
    clock.now += 3700
    upstream.fail = True
    with pytest.raises(PluginError):  # past the stale window: gone
        await cache.serve(request(block, "example.org."), upstream)


async def test_serve_stale_verify_asks_first() -> None:
    cache, block, clock = make_cache(CacheConfig(stale_up_to=3600, verify_stale=True))
    upstream = Upstream(a_reply("192.0.2.1", ttl=30))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 40
    upstream.answer = a_reply("192.0.2.2", ttl=30)
    assert (await ask(cache, block, upstream, "example.org.")).answer[0][0].to_text() == "192.0.2.2"
    clock.now += 40
    upstream.answer = rcode_reply(dns.rcode.SERVFAIL)
    served = await ask(cache, block, upstream, "example.org.")
    assert served.answer[0][0].to_text() == "192.0.2.2"  # SERVFAIL does not replace it
    assert ttls(served) == [0]


async def test_serve_stale_response_ttl_and_failure_recheck() -> None:
    """serve_stale 1h immediate 30s 30s: stale answers carry TTL 30 (RFC 8767), and after a
    failed refresh the next 30 s of stale answers ask nobody."""
    config = CacheConfig(stale_up_to=3600, stale_ttl=30, stale_recheck=30)
    cache, block, clock = make_cache(config)
    upstream = Upstream(a_reply("192.0.2.1", ttl=30))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 40
    upstream.fail = True
    stale = await ask(cache, block, upstream, "example.org.")
    assert ttls(stale) == [30]
    await asyncio.sleep(0.01)  # the background refresh ran, and failed
    assert upstream.calls == 2
    clock.now += 10
    assert ttls(await ask(cache, block, upstream, "example.org.")) == [30]
    await asyncio.sleep(0.01)
    assert upstream.calls == 2  # within the recheck period: not asked again
    clock.now += 25
    upstream.fail = False
    await ask(cache, block, upstream, "example.org.")
    await asyncio.sleep(0.01)
    assert upstream.calls == 3  # the period is over: refreshed
    assert ttls(await ask(cache, block, upstream, "example.org.")) == [30 - 0]


async def test_serve_stale_verify_timeout_serves_stale_then_refreshes() -> None:
    """serve_stale 1h verify 50ms 30s: an upstream slower than 50 ms gets the stale entry
    served (TTL 30); its answer still refreshes the entry when it comes."""
    config = CacheConfig(stale_up_to=3600, verify_stale=True, verify_timeout=0.05, stale_ttl=30)
    cache, block, clock = make_cache(config)
    upstream = Upstream(a_reply("192.0.2.1", ttl=60))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 70
    fresh = a_reply("192.0.2.2", ttl=60)

    def slow(query: dns.message.Message) -> Reply:
        return fresh(query)

    class Slow(Upstream):
        async def __call__(self, req: Request) -> Reply:
            self.calls += 1
            await asyncio.sleep(0.2)
            return self.answer(req.message())

    slow_upstream = Slow(slow)
    served = await ask(cache, block, slow_upstream, "example.org.")
    assert served.answer[0][0].to_text() == "192.0.2.1"
    assert ttls(served) == [30]
    # While that verify is under way, another stale query does not ask again.
    await ask(cache, block, slow_upstream, "example.org.")
    assert slow_upstream.calls == 1
    await asyncio.sleep(0.3)
    refreshed = await ask(cache, block, slow_upstream, "example.org.")
    assert refreshed.answer[0][0].to_text() == "192.0.2.2"
    assert ttls(refreshed) == [60]


async def test_serve_stale_verify_timeout_fast_upstream_answers() -> None:
    config = CacheConfig(stale_up_to=3600, verify_stale=True, verify_timeout=1.0)
    cache, block, clock = make_cache(config)
    upstream = Upstream(a_reply("192.0.2.1", ttl=30))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 40
    upstream.answer = a_reply("192.0.2.2", ttl=30)
    assert (await ask(cache, block, upstream, "example.org.")).answer[0][0].to_text() == "192.0.2.2"


@pytest.mark.parametrize("prefer_positive", [True, False])
async def test_serve_stale_policy_prefer_positive(prefer_positive: bool) -> None:
    config = CacheConfig(stale_up_to=3600, verify_stale=True, prefer_positive=prefer_positive)
    cache, block, clock = make_cache(config)
    upstream = Upstream(a_reply("192.0.2.1", ttl=30))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 40
    upstream.answer = rcode_reply(dns.rcode.NXDOMAIN, soa_ttl=60, minimum=60)
    first = await ask(cache, block, upstream, "example.org.")
    calls = upstream.calls
    again = await ask(cache, block, upstream, "example.org.")
    if prefer_positive:
        # verify: only a positive answer replaces the stale positive one, which is kept
        # beside the denial and wins while it is within the stale window
        for reply in (first, again):
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.answer[0][0].to_text() == "192.0.2.1"
        clock.now += 3600
        gone = await ask(cache, block, upstream, "example.org.")
        assert gone.rcode() == dns.rcode.NXDOMAIN  # past the window: the denial
    else:
        # verify: NXDOMAIN is a usable reply; it replaces the entry
        assert first.rcode() == again.rcode() == dns.rcode.NXDOMAIN
        assert upstream.calls == calls  # the second from the cached denial


async def test_prefetch_refreshes_popular_entries_before_expiry() -> None:
    cache, block, clock = make_cache(CacheConfig(prefetch=2, prefetch_percentage=50))
    upstream = Upstream(a_reply("192.0.2.1", ttl=10))
    await ask(cache, block, upstream, "example.org.")
    clock.now += 1
    await ask(cache, block, upstream, "example.org.")  # hit 1, 9 s left
    assert upstream.calls == 1
    clock.now += 5
    upstream.answer = a_reply("192.0.2.2", ttl=10)
    served = await ask(cache, block, upstream, "example.org.")  # hit 2, 4 s left ≤ 50 %
    assert served.answer[0][0].to_text() == "192.0.2.1"
    await asyncio.sleep(0.01)
    assert upstream.calls == 2
    refreshed = await ask(cache, block, upstream, "example.org.")
    assert refreshed.answer[0][0].to_text() == "192.0.2.2"
    assert ttls(refreshed) == [10]
    assert cache.metrics.prefetch.labels("dns://:53", ".", "")._value.get() == 1


async def test_generation_change_invalidates_negative_and_positive_entries() -> None:
    records = RecordPlugin(("cluster.local.",))
    cache, block, _ = make_cache(None, records)
    upstream = Upstream(rcode_reply(dns.rcode.NXDOMAIN))
    name = "new-svc.default.svc.cluster.local."
    assert (await ask(cache, block, upstream, name)).rcode() == dns.rcode.NXDOMAIN
    await ask(cache, block, upstream, name)
    assert upstream.calls == 1
    # The service appears: the record plugin's data changes.
    records.generation += 1
    upstream.answer = a_reply("10.96.0.10", ttl=30)
    reply = await ask(cache, block, upstream, name)
    assert reply.rcode() == dns.rcode.NOERROR and upstream.calls == 2
    assert not cache.denial
    await ask(cache, block, upstream, name)
    assert upstream.calls == 2
    records.generation += 1
    upstream.answer = a_reply("10.96.0.11", ttl=30)
    assert (await ask(cache, block, upstream, name)).answer[0][0].to_text() == "10.96.0.11"


async def test_generation_only_touches_names_in_the_plugins_zones() -> None:
    records = RecordPlugin(("cluster.local.",))
    cache, block, _ = make_cache(None, records)
    upstream = Upstream(a_reply("192.0.2.1"))
    await ask(cache, block, upstream, "example.org.")
    records.generation += 1
    await ask(cache, block, upstream, "example.org.")
    assert upstream.calls == 1


async def test_generation_read_before_asking_next() -> None:
    """Data that changes while the next plugin answers must not be stamped as current."""
    records = RecordPlugin(("cluster.local.",))
    cache, block, _ = make_cache(None, records)
    answer = a_reply("10.0.0.1")

    def racing(query: dns.message.Message) -> Reply:
        reply = answer(query)
        records.generation += 1  # the watch delivered an update meanwhile
        return reply

    upstream = Upstream(racing)
    await ask(cache, block, upstream, "svc.cluster.local.")
    upstream.answer = answer
    await ask(cache, block, upstream, "svc.cluster.local.")
    assert upstream.calls == 2


async def test_every_covering_record_plugin_stamps_the_entry() -> None:
    """hosts at '.' with fallthrough in front of kubernetes: either may change the answer."""
    hosts = RecordPlugin((".",))
    kubernetes = RecordPlugin(("cluster.local.",))
    cache, block, _ = make_cache(None, hosts, kubernetes)
    upstream = Upstream(a_reply("10.0.0.1"))
    await ask(cache, block, upstream, "svc.cluster.local.")
    hosts.generation += 1
    await ask(cache, block, upstream, "svc.cluster.local.")
    assert upstream.calls == 2


def test_metrics_register_once_per_registry() -> None:
    registry = CollectorRegistry()
    assert metrics_for(registry) is metrics_for(registry)
    assert metrics_for(CollectorRegistry()) is not metrics_for(registry)


def fast(cache: Cache, query: Query) -> bytes | object:
    """The cache's fast answer within a UDP limit for the query: its bytes, or None/SLOW."""
    result = cache.answer_fast(query, reply_limit(query, tcp=False, max_udp=4096), 4096)
    return result.wire if isinstance(result, FastReply) else result


async def test_fast_hook_serves_fresh_hits_only() -> None:
    cache, block, clock = make_cache(CacheConfig(zones=("example.org.",)))
    upstream = Upstream(a_reply("192.0.2.1", ttl=60))
    assert fast(cache, request(block, "www.example.com.").query) is None  # not our zone
    assert fast(cache, request(block, "www.example.org.").query) is SLOW  # block not seen yet
    await cache.serve(request(block, "www.example.org."), upstream)
    # A miss: the next fast hook (a record plugin's table) or else the chain decides.
    assert fast(cache, request(block, "other.example.org.").query) is None
    clock.now += 10
    wire = fast(cache, request(block, "WWW.example.org.", qid=77).query)
    assert isinstance(wire, bytes)
    reply = dns.message.from_wire(wire)
    assert (reply.id, reply.question[0].name.to_text(), reply.answer[0].ttl) == (
        77,
        "WWW.example.org.",
        50,
    )
    clock.now += 60
    assert fast(cache, request(block, "www.example.org.").query) is SLOW  # expired


async def test_fast_hook_leaves_oversized_udp_replies_to_the_chain() -> None:
    many = [f"192.0.2.{i}" for i in range(1, 60)]
    cache, block, _ = make_cache()
    upstream = Upstream(a_reply(*many))
    await cache.serve(request(block, "big.example.", edns=True), upstream)
    await cache.serve(request(block, "big.example.", edns=False), upstream)
    assert isinstance(fast(cache, request(block, "big.example.", edns=True).query), bytes)
    assert fast(cache, request(block, "big.example.", edns=False).query) is SLOW  # > 512 bytes


async def test_generation_change_is_seen_by_the_fast_hook() -> None:
    records = RecordPlugin(("cluster.local.",))
    cache, block, _ = make_cache(None, records)
    await cache.serve(
        request(block, "svc.cluster.local."), Upstream(rcode_reply(dns.rcode.NXDOMAIN))
    )
    assert isinstance(fast(cache, request(block, "svc.cluster.local.").query), bytes)
    records.generation += 1
    assert fast(cache, request(block, "svc.cluster.local.").query) is None  # stale: a miss
