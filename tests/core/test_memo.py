"""The UDP reply memo: same bytes as the fast path, every hit counted, nothing stale."""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import pytest_asyncio
from prometheus_client import generate_latest

from clusterdns.core import memo as memo_module
from clusterdns.core.fast import INFINITE, ChangeLog
from clusterdns.core.lifecycle import App
from clusterdns.core.memo import ReplyMemo
from clusterdns.core.process import Process
from clusterdns.core.server import ServerOptions
from clusterdns.plugins.kubernetes import handler as k8s_handler
from tests.core.test_server import _udp_raw
from tests.helpers.dnsclient import make_query, query
from tests.helpers.kubeapi import KubeAPIServer, pod, service
from tests.helpers.responder import Responder
from tests.plugins.kubernetes.cluster import ROWS, Case, objects, write_manifests

pytestmark = pytest.mark.timeout(30)

ZONES = "cluster.local in-addr.arpa ip6.arpa"


def standard(source: str, *, log: bool = False) -> str:
    """The standard Kubernetes Corefile's query path, on port 0."""
    return (
        ".:0 {\n"
        + ("    log\n" if log else "")
        + f"    kubernetes {ZONES} {{\n        {source}\n        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n    }\n"
        "    prometheus 127.0.0.1:0\n    cache 30\n    loadbalance\n}\n"
    )


@asynccontextmanager
async def served(
    tmp_path: Path, text: str, *, mode: str = "batch", memo: int = 1000
) -> AsyncIterator[tuple[App, int]]:
    """``text`` served in this loop until ready; yields the app and its DNS port."""
    path = tmp_path / f"Corefile-{mode}-{memo}"
    path.write_text(text)
    app = App(
        config_path=str(path),
        process=Process(),
        options=ServerOptions(udp_mode=mode, reply_memo=memo),
    )
    await app.start()
    try:
        assert app.instance is not None and await app.instance.wait_ready(10)
        yield app, port_of(app)
    finally:
        await app.shutdown()


def port_of(app: App) -> int:
    return (
        app.server.bound_port("*", 0)
        if ("*", 0) in app.server.listeners
        else next(app.server.bound_port(h, p) for (h, p) in app.server.listeners)
    )


def metric(app: App, name: str, **labels: str) -> float:
    text = generate_latest(app.process.metrics_registry()).decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def without_serial(wire: bytes) -> bytes:
    """``wire`` with its SOA's serial zeroed, in the answer (an SOA query) or the authority
    section (the last occurrence of its four bytes: the SOA's RDATA comes after the
    question)."""
    message = dns.message.from_wire(wire)
    for rrset in (*message.answer, *message.authority):
        if rrset.rdtype == dns.rdatatype.SOA:
            serial = struct.pack("!I", rrset[0].serial)
            head, found, tail = wire.rpartition(serial)
            assert found
            return head + bytes(4) + tail
    return wire


async def ask_raw(port: int, qname: str, qtype: str, qid: int, payload: int | None = 1232) -> bytes:
    message = make_query(qname, qtype, payload=payload)
    message.id = qid
    return await _udp_raw(port, message.to_wire())


@asynccontextmanager
async def on_api(
    tmp_path: Path, mode: str = "batch"
) -> AsyncIterator[tuple[KubeAPIServer, App, int]]:
    """The test cluster in the Kubernetes API test server, served by the standard Corefile."""
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        async with served(tmp_path, standard(f"endpoint {api.url}"), mode=mode) as (app, port):
            yield api, app, port


@pytest_asyncio.fixture
async def cluster_dir(tmp_path: Path) -> Path:
    return write_manifests(tmp_path / "manifests")


# --- the memo on its own ------------------------------------------------------------------


class Owner:
    """A VersionedRecords that cannot say what changed."""

    name = "owner"
    zones = ("example.",)

    def __init__(self) -> None:
        self.generation = 1

    def changes_since(self, since: int) -> frozenset[str] | None:
        return None


def test_memo_empties_when_the_configuration_or_a_generation_moves() -> None:
    memo = ReplyMemo(10)
    plugin, config = Owner(), object()
    memo.check(config, [plugin])
    memo.put(b"q", b"r", INFINITE, ())
    memo.check(config, [plugin])
    assert b"q" in memo.entries
    plugin.generation += 1
    memo.check(config, [plugin])
    assert not memo.entries
    memo.put(b"q", b"r", INFINITE, ())
    memo.check(config, [plugin])
    assert b"q" in memo.entries, "the new generation is the one watched now"
    memo.check(object(), [plugin])
    assert not memo.entries


class Tracker(Owner):
    """A record plugin that says which tokens each generation changed."""

    def __init__(self) -> None:
        super().__init__()
        self.log = ChangeLog(16)

    def change(self, tokens: set[str] | None) -> None:
        self.log.record(self.generation + 1, tokens)
        self.generation += 1

    def changes_since(self, since: int) -> frozenset[Hashable] | None:
        return self.log.since(since, self.generation)


# (generations recorded with their tokens, the published generation, since, expected)
CHANGE_LOG_ROWS = [
    ([(2, {"a"}), (3, {"b"})], 3, 1, {"a", "b"}),
    ([(2, {"a"}), (3, {"b"})], 3, 2, {"b"}),
    ([(2, {"a"}), (3, {"b"})], 3, 3, set()),
    # Recorded, not yet published: the reader must not take the record for a gap.
    ([(2, {"a"}), (3, {"b"})], 2, 1, {"a"}),
    ([(2, {"a"})], 1, 1, set()),
    ([(2, {"a"}), (3, None)], 3, 1, None),  # a change of anything
    ([(3, {"b"})], 3, 1, None),  # generation 2 is not in the log (a rebuild, or evicted)
    ([(2, {"a"})], 3, 1, None),  # published without a record
]


@pytest.mark.parametrize(("recorded", "published", "since", "expected"), CHANGE_LOG_ROWS)
def test_a_change_log_names_what_a_run_of_generations_touched(
    recorded: list[tuple[int, set[str] | None]],
    published: int,
    since: int,
    expected: set[str] | None,
) -> None:
    log = ChangeLog(16)
    for generation, tokens in recorded:
        log.record(generation, tokens)
    assert log.since(since, published) == (None if expected is None else frozenset(expected))


def test_a_change_log_forgets_the_oldest() -> None:
    log = ChangeLog(2)
    for generation in (2, 3, 4):
        log.record(generation, {str(generation)})
    assert log.since(2, 4) == frozenset({"3", "4"})
    assert log.since(1, 4) is None, "generation 2 fell out: the reader starts over"


def test_a_change_drops_only_what_depends_on_it() -> None:
    memo = ReplyMemo(10)
    plugin, config = Tracker(), object()
    memo.check(config, [plugin])
    memo.put(b"svc-a", b"r", INFINITE, (), plugin, frozenset({"a"}))
    memo.put(b"svc-b", b"r", INFINITE, (), plugin, frozenset({"b"}))
    memo.put(b"nxdomain", b"r", INFINITE, ())
    plugin.change({"b"})
    memo.check(config, [plugin])
    assert set(memo.entries) == {b"svc-a"}, "b's and the untied entries go, a's stays"
    memo.put(b"svc-b", b"r2", INFINITE, (), plugin, frozenset({"b"}))
    plugin.change(set())
    plugin.change({"a"})
    memo.check(config, [plugin])
    assert set(memo.entries) == {b"svc-b"}, "several generations at once"
    plugin.change(None)
    memo.check(config, [plugin])
    assert not memo.entries, "a change the plugin cannot describe drops everything"


def test_an_entry_tied_to_several_tokens_goes_with_any_of_them() -> None:
    memo = ReplyMemo(10)
    plugin, config = Tracker(), object()
    memo.check(config, [plugin])
    for key in (b"nx-a", b"nx-b"):
        memo.put(key, b"r", INFINITE, (), plugin, frozenset({key.decode()[3:], "serial"}))
    plugin.change({"a"})
    memo.check(config, [plugin])
    assert set(memo.entries) == {b"nx-b"}
    plugin.change({"serial"})
    memo.check(config, [plugin])
    assert not memo.entries
    assert not any(memo._groups.values()), "no key left behind in another group"


def test_a_full_memo_keeps_a_reply_on_second_sight(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room, every reply is kept. Full, a question's first sight is only remembered
    (a hash in a two-way table) and its second one keeps the reply, so a stream that never
    repeats cannot push the rest out; two questions sharing a slot pair both get in."""
    monkeypatch.setattr(memo_module, "_SEEN_SLOTS", 1 << 10)
    monkeypatch.setattr(memo_module, "_SEEN_MASK", (1 << 10) - 2)
    memo = ReplyMemo(2)
    assert memo.admits(b"q0")
    for key in (b"a", b"b"):
        memo.put(key, b"r", INFINITE, ())
    assert [memo.admits(b"q1"), memo.admits(b"q1"), memo.admits(b"q1")] == [False, True, True]
    assert not any(memo.admits(b"unique-%d" % i) for i in range(100))
    # Questions whose hashes share a pair of slots, asked alternately: both remembered.
    mask = memo_module._SEEN_MASK
    first = b"x0"
    others = [
        b"x%d" % i
        for i in range(1, 20000)
        if (hash(b"x%d" % i) | 1) & mask == (hash(first) | 1) & mask
    ]
    assert others, "some key shares the slot pair"
    other = others[0]
    assert [memo.admits(first), memo.admits(other), memo.admits(first), memo.admits(other)] == [
        False, False, True, True,
    ]  # fmt: skip
    assert not ReplyMemo(0).admits(b"q1") and not ReplyMemo(0).admits(b"q1")


def test_memo_is_bounded_and_evicts_oldest_first() -> None:
    memo = ReplyMemo(16)
    for i in range(40):
        memo.put(b"%d" % i, b"r", INFINITE, ())
    assert len(memo.entries) == 16, "one out for each one in: full, never emptied in bulk"
    assert list(memo.entries) == [b"%d" % i for i in range(24, 40)], "the oldest went first"
    off = ReplyMemo(0)
    off.put(b"q", b"r", INFINITE, ())
    assert not off.entries


def test_churn_keeps_the_eviction_queue_bounded_and_in_order() -> None:
    """Entries dropped by changes and kept again leave their old places in the eviction
    queue behind: the queue stays within a bound, and a full memo still evicts an old
    entry, never the one just kept, and never more than one per new entry."""
    limit = 64
    memo = ReplyMemo(limit)
    plugin, config = Tracker(), object()
    memo.check(config, [plugin])
    for round_ in range(200):
        for n in range(limit):
            memo.put(b"svc-%d" % n, b"r%d" % round_, INFINITE, (), plugin, frozenset({n % 8}))
        plugin.change({round_ % 8})  # one group of eight goes, as endpoint churn drops it
        memo.check(config, [plugin])
        assert len(memo._order) <= 2 * limit + 1024
        assert len(memo.entries) == limit - limit // 8
    for n in range(limit, limit + 10):
        memo.put(b"new-%d" % n, b"r", INFINITE, (), plugin, frozenset({"new"}))
        assert b"new-%d" % n in memo.entries
        assert len(memo.entries) <= limit
    assert sum(len(members) - 1 for members in memo._groups.values()) == len(memo.entries)


def test_flush_hands_each_tally_its_new_hits_once() -> None:
    seen: list[tuple[int, float]] = []
    memo = ReplyMemo(10)
    memo.put(b"a", b"r", INFINITE, (("k", lambda n, s: seen.append((n, s))),))
    memo.put(b"b", b"r", INFINITE, (("k", lambda n, s: seen.append((n, s))),))
    for key in (b"a", b"b", b"a"):
        memo.entries[key][2][0] += 1
    memo.hits, memo.hit_seconds = 3, 0.003
    memo.flush()
    memo.flush()
    assert seen == [(3, pytest.approx(0.001))], "entries with one accounting share one tally"


def test_first_sights_counted_through_tallies_share_the_time() -> None:
    """A first sight admitted to the memo is counted through its entry's tally (not by the
    observers): its time is shared out with the hits', one average per served query."""
    seen: list[tuple[int, float]] = []
    memo = ReplyMemo(10)
    tally = memo.tally_of((("k", lambda n, s: seen.append((n, s))),))
    memo.put_tallied(b"a", b"r", INFINITE, tally)
    tally.count[0] += 1  # the first sight
    memo.counted += 1
    memo.entries[b"a"][2][0] += 3  # three hits
    memo.hits, memo.hit_seconds = 3, 0.004
    memo.flush()
    assert seen == [(4, pytest.approx(0.001))]
    assert memo.hits == 3, "the memo-hit metric counts hits only"


# --- through the server ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "thread", "loop"])
async def test_memo_hits_are_the_fast_path_bytes_for_every_spec_case(
    tmp_path: Path, cluster_dir: Path, mode: str
) -> None:
    """Every row of the kubernetes record table, asked three times: the later answers
    (memo hits) equal, byte for byte after the ID, what a server without memo sends."""
    text = standard(f"manifests {cluster_dir}")
    async with (
        served(tmp_path, text, mode=mode) as (with_memo, memo_port),
        served(tmp_path, text, mode=mode, memo=0) as (without, plain_port),
    ):
        for app in (with_memo, without):
            plugin = next(p for p in app.instance.plugins() if p.name == "kubernetes")  # type: ignore[union-attr]
            assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
        sent = memoisable = 0
        cases: list[Case] = [param.values[0] for param in ROWS]
        for case in cases:
            replies = [await ask_raw(memo_port, case.qname, case.qtype, qid) for qid in (1, 2, 3)]
            plain = await ask_raw(plain_port, case.qname, case.qtype, 3)
            sent += 3
            assert [r[:2] for r in replies] == [b"\x00\x01", b"\x00\x02", b"\x00\x03"]
            # The two servers' SOA serials (their last change, in seconds) may differ.
            replies, plain = [without_serial(r) for r in replies], without_serial(plain)
            parsed = [dns.message.from_wire(b"\0\0" + r[2:]) for r in (*replies, plain)]
            # loadbalance rotates multi-record answers: the same records, maybe reordered.
            assert all(p == parsed[-1] for p in parsed), case
            if not any(len(rrset) > 1 for rrset in parsed[-1].answer):
                assert replies[2][2:] == plain[2:], case
                if parsed[-1].rcode() != dns.rcode.SERVFAIL:  # SERVFAIL: fell through
                    memoisable += 1
        hits = metric(with_memo, "clusterdns_reply_memo_hits_total")
        # The second and third of three identical questions come from the memo.
        assert hits >= memoisable > len(cases) / 2
        assert metric(without, "clusterdns_reply_memo_hits_total") == 0
        # Every query is counted once, memo hit or not.
        assert metric(with_memo, "coredns_dns_requests_total", proto="udp") == sent
        assert metric(with_memo, "coredns_dns_responses_total") == sent
        assert metric(with_memo, "coredns_dns_request_duration_seconds_count") == sent


@pytest.mark.parametrize("mode", ["batch", "thread"])
async def test_first_sights_keep_their_time(tmp_path: Path, cluster_dir: Path, mode: str) -> None:
    """Never-seen questions only (no memo hit in any batch): they are counted through their
    tallies, and their time still reaches coredns_dns_request_duration_seconds."""
    async with served(tmp_path, standard(f"manifests {cluster_dir}"), mode=mode) as (app, port):
        for n in range(40):
            await query(port, f"x{n}.testns.svc.cluster.local.", "A")
        assert metric(app, "coredns_dns_request_duration_seconds_count") == 40
        assert metric(app, "coredns_dns_request_duration_seconds_sum") > 0
        assert metric(app, "clusterdns_reply_memo_hits_total") == 0


async def test_letter_case_and_edns_are_part_of_the_key(tmp_path: Path, cluster_dir: Path) -> None:
    async with served(tmp_path, standard(f"manifests {cluster_dir}")) as (app, port):
        name = "svc1.testns.svc.cluster.local."
        for _ in range(4):
            await query(port, name, "A")
        mixed = await query(port, "SvC1.TestNS.svc.Cluster.local.", "A")
        assert str(mixed.question[0].name) == "SvC1.TestNS.svc.Cluster.local."
        assert str(mixed.answer[0].name) == "SvC1.TestNS.svc.Cluster.local."
        for _ in range(3):
            plain = dns.message.from_wire(await ask_raw(port, name, "A", 7, payload=None))
            assert plain.edns < 0, "no OPT asked, none answered"
            with_opt = dns.message.from_wire(await ask_raw(port, name, "A", 8, payload=1400))
            assert with_opt.edns == 0
        # Some of those came from the memo (a reply is kept the second time its exact
        # question comes): memo answers, not only the fast path.
        assert metric(app, "clusterdns_reply_memo_hits_total") >= 3


async def test_a_logging_block_sees_every_query(tmp_path: Path, cluster_dir: Path) -> None:
    async with served(tmp_path, standard(f"manifests {cluster_dir}", log=True)) as (app, port):
        for _ in range(4):
            await query(port, "svc1.testns.svc.cluster.local.", "A")
        assert metric(app, "clusterdns_reply_memo_hits_total") == 0
        assert metric(app, "coredns_dns_requests_total") == 4


@pytest.mark.parametrize("mode", ["batch", "thread", "loop"])
async def test_no_stale_answer_after_a_cluster_change(tmp_path: Path, mode: str) -> None:
    async with on_api(tmp_path, mode) as (api, app, port):
        name = "svc1.testns.svc.cluster.local."
        for _ in range(8):  # the sync's own announcement may empty the memo once
            reply = await query(port, name, "A")
            assert reply.rcode() == dns.rcode.NOERROR
        assert metric(app, "clusterdns_reply_memo_hits_total") >= 3
        (svc1,) = [
            o for o in objects()
            if o["kind"] == "Service" and o["metadata"]["name"] == "svc1"
            and o["metadata"]["namespace"] == "testns"
        ]  # fmt: skip
        api.delete(svc1)
        for _ in range(200):
            reply = await query(port, name, "A")
            if reply.rcode() == dns.rcode.NXDOMAIN:
                break
            await asyncio.sleep(0.01)
        assert reply.rcode() == dns.rcode.NXDOMAIN
        # And it stays gone: nothing in a memo brings the old answer back.
        for _ in range(5):
            assert (await query(port, name, "A")).rcode() == dns.rcode.NXDOMAIN


async def test_reload_drops_memoised_answers(tmp_path: Path, cluster_dir: Path) -> None:
    async with served(tmp_path, standard(f"manifests {cluster_dir}")) as (app, port):
        name = "svc1.testns.svc.cluster.local."
        for _ in range(3):
            assert (await query(port, name, "A")).answer[0].ttl == 5
        path = Path(app.config_path)  # type: ignore[arg-type]
        path.write_text(standard(f"manifests {cluster_dir}\n        ttl 7"))
        assert await app.reload()
        for _ in range(3):
            assert (await query(port, name, "A")).answer[0].ttl == 7


async def test_cache_hits_are_memoised_until_the_ttl_ticks(tmp_path: Path) -> None:
    async with Responder() as upstream:
        text = (
            ".:0 {\n    prometheus 127.0.0.1:0\n    cache 30\n"
            f"    forward . 127.0.0.1:{upstream.port}\n}}\n"
        )
        async with served(tmp_path, text) as (app, port):
            ttls = [(await query(port, "example.org.", "A")).answer[0].ttl for _ in range(4)]
            assert upstream.count() == 1
            assert metric(app, "clusterdns_reply_memo_hits_total") >= 1
            await asyncio.sleep(1.2)
            later = (await query(port, "example.org.", "A")).answer[0].ttl
            assert later < min(ttls), "a memoised cache hit expires when its TTL ticks"
            # The cache's own counters see memo hits as hits.
            assert metric(app, "coredns_cache_hits_total", type="success") == 4
            assert metric(app, "coredns_cache_requests_total") >= 4


async def test_tcp_has_its_own_memo(tmp_path: Path, cluster_dir: Path) -> None:
    """Over TCP nothing is truncated: the same question memoised over UDP with a small
    buffer must not answer a TCP client, and the other way round."""
    async with served(tmp_path, standard(f"manifests {cluster_dir}")) as (app, port):
        name = "_http._tcp.hdls1.testns.svc.cluster.local."
        over_udp = [await query(port, name, "SRV", payload=None) for _ in range(3)]
        over_tcp = [await query(port, name, "SRV", tcp=True, payload=None) for _ in range(3)]
        assert all(r.flags & dns.flags.TC for r in over_udp) or all(
            len(r.answer[0]) == len(over_tcp[0].answer[0]) for r in over_udp
        )
        assert all(not r.flags & dns.flags.TC for r in over_tcp)
        assert [len(r.answer[0]) for r in over_tcp] == [5, 5, 5]
        small = "svc1.testns.svc.cluster.local."
        before = metric(app, "clusterdns_reply_memo_hits_total")
        for _ in range(4):
            assert (await query(port, small, "A", tcp=True)).answer[0][0].address == "10.0.0.1"
        # First sight builds the reply, the second memoises it, the rest are hits.
        assert metric(app, "clusterdns_reply_memo_hits_total") - before >= 2
        assert metric(app, "coredns_dns_requests_total", proto="tcp") == 7


async def test_cluster_answers_behind_the_cache_keep_their_ttl(
    tmp_path: Path, cluster_dir: Path
) -> None:
    """kubernetes keeps its replies ready: the cache in front does not store them (a hit
    would be no faster and its TTL ticking would expire the memo entry every second)."""
    async with served(tmp_path, standard(f"manifests {cluster_dir}")) as (app, port):
        ttls = []
        for _ in range(4):
            ttls.append((await query(port, "svc1.testns.svc.cluster.local.", "A")).answer[0].ttl)
            await asyncio.sleep(0.6)
        assert ttls == [5, 5, 5, 5]
        assert metric(app, "coredns_cache_entries", type="success") == 0
        assert metric(app, "clusterdns_reply_memo_hits_total") >= 1


async def test_churn_in_one_service_keeps_the_others_memoised(tmp_path: Path) -> None:
    async with on_api(tmp_path) as (api, app, port):
        one, two = "svc1.testns.svc.cluster.local.", "svc2.other.svc.cluster.local."
        ptr_one, ptr_two = "1.0.0.10.in-addr.arpa.", "2.0.0.10.in-addr.arpa."
        for _ in range(3):
            await query(port, one, "A")
            await query(port, two, "A")
            await query(port, ptr_one, "PTR")
            assert str((await query(port, ptr_two, "PTR")).answer[0][0].target) == two
        (svc2,) = [
            o for o in objects()
            if o["kind"] == "Service" and o["metadata"]["name"] == "svc2"
        ]  # fmt: skip
        svc2["spec"]["clusterIP"] = "10.0.0.99"
        api.update(svc2)
        for _ in range(200):
            if (await query(port, two, "A")).answer[0][0].address == "10.0.0.99":
                break
            await asyncio.sleep(0.01)
        assert (await query(port, two, "A")).answer[0][0].address == "10.0.0.99"
        before = metric(app, "clusterdns_reply_memo_hits_total")
        assert (await query(port, one, "A")).answer[0][0].address == "10.0.0.1"
        assert str((await query(port, ptr_one, "PTR")).answer[0][0].target) == one
        after = metric(app, "clusterdns_reply_memo_hits_total")
        assert after == before + 2, "svc1's memoised replies outlived svc2's change"
        # The PTR of the IP svc2 gave up is gone (not ours: it falls through to nothing,
        # SERVFAIL), the new one answers.
        assert not (await query(port, ptr_two, "PTR")).answer
        new_ptr = "99.0.0.10.in-addr.arpa."
        assert str((await query(port, new_ptr, "PTR")).answer[0][0].target) == two


async def test_negatives_outlive_changes_elsewhere_for_a_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change anywhere moves the zone's SOA serial (the second of the last change); a
    memoised NXDOMAIN elsewhere keeps its old serial for at most SERIAL_SLACK seconds
    rather than being dropped (and recomputed) with every change."""
    slack = 4.0
    monkeypatch.setattr(k8s_handler, "SERIAL_SLACK", slack)
    async with on_api(tmp_path) as (api, app, port):
        missing = "nope.testns.svc.cluster.local."

        def serial(reply: dns.message.Message) -> int:
            return int(reply.authority[0][0].serial)

        first = serial(await query(port, missing, "A"))
        await query(port, missing, "A")  # kept now
        # Kept by now at the latest (taken after the answers: on a loaded machine the
        # first one may take a while, and its slack starts when it is built).
        built = asyncio.get_running_loop().time()
        await asyncio.sleep(1.1)  # the next change lands in a later second
        (svc2,) = [
            o for o in objects()
            if o["kind"] == "Service" and o["metadata"]["name"] == "svc2"
        ]  # fmt: skip
        svc2["spec"]["clusterIP"] = "10.0.0.98"
        api.update(svc2)
        two = "svc2.other.svc.cluster.local."
        for _ in range(200):
            if (await query(port, two, "A")).answer[0][0].address == "10.0.0.98":
                break
            await asyncio.sleep(0.01)
        before = metric(app, "clusterdns_reply_memo_hits_total")
        assert serial(await query(port, missing, "A")) == first
        assert metric(app, "clusterdns_reply_memo_hits_total") == before + 1
        # Past the slack: built again, with the new serial.
        await asyncio.sleep(max(0.0, built + slack + 0.2 - asyncio.get_running_loop().time()))
        assert serial(await query(port, missing, "A")) > first


async def test_a_memoised_nxdomain_goes_when_its_service_appears(tmp_path: Path) -> None:
    async with on_api(tmp_path) as (api, app, port):
        name = "late.testns.svc.cluster.local."
        search = "late.testns.svc.cluster.local.testns.svc.cluster.local."
        before = metric(app, "clusterdns_reply_memo_hits_total")
        for _ in range(5):
            assert (await query(port, name, "A")).rcode() == dns.rcode.NXDOMAIN
            assert (await query(port, search, "A")).rcode() == dns.rcode.NXDOMAIN
        # Kept on second sight: the third to fifth of each come from the memo.
        assert metric(app, "clusterdns_reply_memo_hits_total") - before >= 4
        api.create(service("late", "testns", cluster_ip="10.0.0.77"))
        for _ in range(200):
            reply = await query(port, name, "A")
            if reply.rcode() == dns.rcode.NOERROR:
                break
            await asyncio.sleep(0.01)
        assert reply.answer[0][0].address == "10.0.0.77"
        for _ in range(3):
            assert (await query(port, name, "A")).answer[0][0].address == "10.0.0.77"


async def test_endpoint_churn_keeps_the_namespaces_nxdomains_memoised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search path's misses in a namespace (one group for all of them) go when a
    Service is created or deleted there, not when a Service's endpoints change: a busy
    namespace would otherwise recompute all of them with every readiness flip."""
    monkeypatch.setattr(k8s_handler, "SERIAL_SLACK", LONG_SLACK)
    async with on_api(tmp_path) as (api, app, port):
        search = "svc2.other.svc.cluster.local.testns.svc.cluster.local."
        for _ in range(3):
            assert (await query(port, search, "A")).rcode() == dns.rcode.NXDOMAIN
        await _flip_an_endpoint(api, port)
        before = metric(app, "clusterdns_reply_memo_hits_total")
        assert (await query(port, search, "A")).rcode() == dns.rcode.NXDOMAIN
        assert metric(app, "clusterdns_reply_memo_hits_total") == before + 1
        # A Service deleted in the namespace: the misses there are built again.
        (svc1,) = [
            o for o in objects()
            if o["kind"] == "Service" and o["metadata"]["name"] == "svc1"
        ]  # fmt: skip
        api.delete(svc1)
        one = "svc1.testns.svc.cluster.local."
        for _ in range(200):
            if (await query(port, one, "A")).rcode() == dns.rcode.NXDOMAIN:
                break
            await asyncio.sleep(0.01)
        before = metric(app, "clusterdns_reply_memo_hits_total")
        assert (await query(port, search, "A")).rcode() == dns.rcode.NXDOMAIN
        assert metric(app, "clusterdns_reply_memo_hits_total") == before


# A negative answer's replay slack long enough that a loaded machine cannot outlast it
# between building an answer and asking again (these tests are about dependencies).
LONG_SLACK = 60.0


async def _flip_an_endpoint(api: KubeAPIServer, port: int) -> None:
    """One EndpointSlice update (an endpoint of hdls1 not ready), waited for."""
    (hdls1,) = [
        o for o in objects()
        if o["kind"] == "EndpointSlice" and o["metadata"]["name"] == "hdls1-v4"
    ]  # fmt: skip
    name = "hdls1.testns.svc.cluster.local."
    ready = len((await query(port, name, "A")).answer[0])
    hdls1["endpoints"][0]["conditions"]["ready"] = False
    api.update(hdls1)
    for _ in range(200):
        if len((await query(port, name, "A")).answer[0]) == ready - 1:
            break
        await asyncio.sleep(0.01)
    assert len((await query(port, name, "A")).answer[0]) == ready - 1


@pytest.mark.parametrize(
    ("name", "rcode"),
    [
        # pods insecure: the answer is the name itself.
        ("10-244-0-9.testns.pod.cluster.local.", dns.rcode.NOERROR),
        # The search path's last try for an external name: no cluster state makes it exist.
        ("api.example.com.cluster.local.", dns.rcode.NXDOMAIN),
    ],
)
async def test_answers_only_a_namespace_changes_outlive_churn(
    tmp_path: Path, name: str, rcode: dns.rcode.Rcode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers whose only dependency is what drops everything (a namespace's coming or
    going, a relist) stay memoised through endpoint churn."""
    monkeypatch.setattr(k8s_handler, "SERIAL_SLACK", LONG_SLACK)
    async with on_api(tmp_path) as (api, app, port):
        for _ in range(3):
            assert (await query(port, name, "A")).rcode() == rcode
        await _flip_an_endpoint(api, port)
        before = metric(app, "clusterdns_reply_memo_hits_total")
        assert (await query(port, name, "A")).rcode() == rcode
        assert metric(app, "clusterdns_reply_memo_hits_total") == before + 1


async def test_a_verified_pod_name_follows_its_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``pods verified`` the answer rests on the Pods with the IP: endpoint churn
    keeps it, a Pod taking the IP replaces the memoised NXDOMAIN (before its slack ends:
    the change drops it)."""
    monkeypatch.setattr(k8s_handler, "SERIAL_SLACK", LONG_SLACK)
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        text = standard(f"endpoint {api.url}").replace("pods insecure", "pods verified")
        async with served(tmp_path, text) as (app, port):
            name = "10-244-0-9.testns.pod.cluster.local."
            for _ in range(3):
                assert (await query(port, name, "A")).rcode() == dns.rcode.NXDOMAIN
            await _flip_an_endpoint(api, port)
            before = metric(app, "clusterdns_reply_memo_hits_total")
            assert (await query(port, name, "A")).rcode() == dns.rcode.NXDOMAIN
            assert metric(app, "clusterdns_reply_memo_hits_total") == before + 1
            api.create(pod("web-9", "testns", ip="10.244.0.9"))
            for _ in range(200):
                reply = await query(port, name, "A")
                if reply.rcode() == dns.rcode.NOERROR:
                    break
                await asyncio.sleep(0.01)
            assert reply.answer[0][0].address == "10.244.0.9"


@pytest.mark.parametrize("mode", ["batch", "thread"])
async def test_a_failing_memo_check_does_not_stop_the_receive_thread(
    tmp_path: Path, cluster_dir: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(tmp_path, standard(f"manifests {cluster_dir}"), mode=mode) as (_, port):
        real = ReplyMemo.check
        failures = [2]

        def flaky(self: ReplyMemo, owner: object, generations: object) -> None:
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("injected")
            real(self, owner, generations)  # type: ignore[arg-type]

        monkeypatch.setattr(ReplyMemo, "check", flaky)
        for _ in range(2):  # each lost to the injected failure
            with pytest.raises(dns.exception.Timeout):
                await query(port, "svc1.testns.svc.cluster.local.", "A", timeout=0.3)
        reply = await query(port, "svc1.testns.svc.cluster.local.", "A")
        assert reply.answer[0][0].address == "10.0.0.1"


def test_a_change_log_read_while_written_misses_nothing() -> None:
    """A reader scans from the newest entry back while the writer may append: each
    append shifts the entries under it, so it reads one twice rather than skipping one."""
    log = ChangeLog(8)
    for generation in range(2, 9):
        log.record(generation, {str(generation)})
    entries = log._entries
    real_getitem = type(entries).__getitem__
    appended = []

    class Racing(collections.deque):  # type: ignore[type-arg]
        def __getitem__(self, index: int) -> object:
            if len(appended) < 3:  # the writer appends between the reader's steps
                generation = 9 + len(appended)
                appended.append(generation)
                self.append((generation, frozenset({str(generation)})))
            return real_getitem(self, index)

    log._entries = Racing(entries, maxlen=8)
    assert log.since(4, 8) == frozenset({"5", "6", "7", "8"})


@pytest.mark.parametrize(
    ("first", "again", "dropped_with"),
    [
        (frozenset({"ns"}), frozenset({"ns"}), "ns"),  # a negative rebuilt after its slack
        (frozenset({"ns"}), frozenset({"svc"}), "svc"),  # now tied to something else
        (None, frozenset({"ns"}), "ns"),
        (frozenset({"ns"}), None, "anything"),  # tied to nothing: any change drops it
        (frozenset({"ns", "svc"}), frozenset({"ns", "svc"}), "svc"),
    ],
)
def test_a_reply_kept_again_is_in_its_new_groups_once(
    first: frozenset[str] | None, again: frozenset[str] | None, dropped_with: str
) -> None:
    memo = ReplyMemo(10_000)
    plugin, config = Tracker(), object()
    memo.check(config, [plugin])
    for n in range(500):  # others in the same groups: a namespace's misses
        memo.put(b"other-%d" % n, b"r", INFINITE, (), plugin, first)
    for tail in (b"r1", b"r2", b"r3"):
        memo.put(b"key", tail, INFINITE, (), plugin, again if tail != b"r1" else first)
    assert memo.entries[b"key"][0] == b"r3"
    assert sum(members.count(b"key") for members in memo._groups.values()) == len(
        again if again is not None else (None,)
    ), "in each of its groups exactly once"
    if again is not None:
        plugin.change({"ns"} if dropped_with != "ns" else {"svc"})
        memo.check(config, [plugin])
        assert (b"key" in memo.entries) == (dropped_with == "ns" or "ns" not in again)
    plugin.change({dropped_with})
    memo.check(config, [plugin])
    assert b"key" not in memo.entries
