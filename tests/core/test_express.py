"""The express tier (core/dispatch.py): first sights answered from the datagram by the
block's ExpressAnswerer must be exactly what the general fast path answers, keeps in the
memo and counts; where a block has anything the tier does not model, it stands aside."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.core.dispatch import Dispatcher, _express_of
from clusterdns.core.fast import INFINITE, FastReply
from clusterdns.core.memo import ReplyMemo
from clusterdns.plugins.cache.handler import Cache
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.wire import DropQuery, FormError, parse_query
from clusterdns.wire.query import read_plain
from clusterdns.wire.render import reply_limit
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import ROWS, write_manifests

module_loop = pytest.mark.asyncio(loop_scope="module")

# kubeadm's Corefile, as the tier meets it in most clusters.
STANDARD = """.:0 {{
    errors
    health 127.0.0.1:0
    ready 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {folder}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus 127.0.0.1:0
    forward . 127.0.0.1:9
    cache 30
    loop
    reload
    loadbalance
}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    folder = write_manifests(tmp_path_factory.mktemp("express"))
    async with running_server(STANDARD.format(folder=folder)) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[union-attr]
        yield running


def dispatcher_of(server: RunningServer) -> Dispatcher:
    listener = next(iter(server.app.server.listeners.values()))  # type: ignore[union-attr]
    return listener.dispatcher  # type: ignore[no-any-return]


# --- read_plain agrees with parse_query --------------------------------------------------------

label = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", min_size=1, max_size=20
)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    name = ".".join(draw(st.lists(label, min_size=0, max_size=8))) + "."
    qtype = draw(st.sampled_from(["A", "AAAA", "SRV", "PTR", "TXT", "ANY", "AXFR"]))
    edns = draw(st.sampled_from([None, 0, 1]))
    query = dns.message.make_query(
        name,
        qtype,
        use_edns=edns if edns is not None else False,
        payload=draw(st.sampled_from([512, 1232, 4096, 65535])),
        want_dnssec=draw(st.booleans()) and edns is not None,
    )
    query.id = draw(st.integers(0, 0xFFFF))
    query.flags = dns.flags.Flag(draw(st.sampled_from([0, 0x0100, 0x0010, 0x0110, 0x8000])))
    if draw(st.booleans()):
        query.set_opcode(dns.opcode.NOTIFY)
    if edns is not None and draw(st.booleans()):
        query.use_edns(0, options=[dns.edns.GenericOption(65001, b"x")])
    wire = query.to_wire()
    mutation = draw(st.sampled_from(["none", "trailing", "cut", "class", "flip"]))
    if mutation == "trailing":
        wire += b"\x00"
    elif mutation == "cut":
        wire = wire[: draw(st.integers(0, len(wire)))]
    elif mutation == "class":
        end = 12 + len(dns.name.from_text(name).to_wire())
        wire = (
            wire[: end + 2]
            + struct.pack("!H", draw(st.sampled_from([1, 3, 255])))
            + wire[end + 4 :]
        )
    elif mutation == "flip":
        index = draw(st.integers(0, max(0, len(wire) - 1)))
        wire = wire[:index] + bytes([wire[index] ^ draw(st.integers(1, 255))]) + wire[index + 1 :]
    return wire


@settings(max_examples=600, deadline=None)
@given(queries())
def test_read_plain_agrees_with_parse_query(data: bytes) -> None:
    plain = read_plain(data)
    if plain is None:
        return
    try:
        query = parse_query(data)
    except (DropQuery, FormError) as err:
        raise AssertionError(f"read_plain accepted what parse_query refuses: {err}") from None
    msg_id, flags, name_end, offsets, qtype, question_end, payload, do = plain
    assert (msg_id, flags, qtype) == (query.id, query.flags, query.qtype)
    assert query.opcode == 0 and query.qclass == 1
    assert data[12:name_end] == query.qname_wire and offsets == query.label_offsets
    assert question_end == query.question_end
    if payload is None:
        assert query.edns is None
    else:
        assert query.edns is not None
        assert (payload, do, query.edns.version, query.edns.options) == (
            query.edns.payload, query.edns.do, 0, b"",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("a response", lambda w: w[:2] + bytes([w[2] | 0x80]) + w[3:]),
        ("opcode NOTIFY", lambda w: w[:2] + bytes([w[2] | 0x20]) + w[3:]),
        ("two questions", lambda w: w[:4] + b"\x00\x02" + w[6:]),
        ("a byte after the OPT", lambda w: w + b"\x00"),
        ("EDNS version 1", lambda w: w[:-5] + b"\x01" + w[-4:]),
        ("class CH", lambda w: w[:-13] + b"\x00\x03" + w[-11:]),
        ("an OPT with an option", lambda w: w[:-2] + b"\x00\x04\xfd\xe9\x00\x00"),
        ("a compressed name", lambda w: w[:12] + b"\xc0\x0c" + w[-15:]),
    ],
)
def test_read_plain_leaves_the_rest_to_parse_query(what: str, edit: object) -> None:
    wire = dns.message.make_query("svc1.testns.svc.cluster.local.", "A", use_edns=0).to_wire()
    assert read_plain(wire) is not None
    changed = edit(wire)  # type: ignore[operator]
    assert changed != wire
    assert read_plain(changed) is None, what


def test_read_plain_reads_the_usual_queries() -> None:
    """Not a tier that never answers: the queries stub resolvers send are plain."""
    for use_edns in (False, 0):
        wire = dns.message.make_query("mysql.default.svc.cluster.local.", "A", use_edns=use_edns)
        assert read_plain(wire.to_wire()) is not None


# --- the plugin's express answers are its fast answers -----------------------------------------


def _variants(qname: str, qtype: str, rng: random.Random) -> list[tuple[bytes, bool]]:
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in qname)
    out = []
    for name in (qname, mixed):
        for edns, payload, do in ((False, 512, False), (0, 1232, False), (0, 4096, True)):
            query = dns.message.make_query(
                name, qtype, use_edns=edns, payload=payload, want_dnssec=do
            )
            query.id = rng.randrange(0x10000)
            query.flags = dns.flags.Flag(rng.choice([0, 0x0100, 0x0110]))
            for tcp in (False, True):
                out.append((query.to_wire(), tcp))
    return out


def _same_as_fast(plugin: Kubernetes, data: bytes, tcp: bool, max_udp: int = 1232) -> bool:
    """Assert answer_express(data) is None or answer_fast()'s reply; True if it answered."""
    express = plugin.answer_express(data, tcp, max_udp)
    if express is None:
        return False
    query = parse_query(data)
    fast = plugin.answer_fast(query, reply_limit(query, tcp=tcp, max_udp=max_udp), max_udp)
    assert isinstance(fast, FastReply), (query.name, fast)
    wire, until, depends, lower, qtype, do = express
    assert wire == fast.wire, query.name
    assert depends == fast.depends
    assert (until == INFINITE) == (fast.until == INFINITE)
    assert (lower, qtype) == (query.qname_lower, query.qtype)
    assert do == (query.edns is not None and query.edns.do)
    return True


@module_loop
async def test_express_answers_are_the_fast_answers_for_every_row(server: RunningServer) -> None:
    plugin = server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    rng = random.Random(7)
    answered = set()
    for param in ROWS:
        case = param.values[0]
        for data, tcp in _variants(case.qname, case.qtype, rng):
            if _same_as_fast(plugin, data, tcp):
                answered.add((case.qname, case.qtype, case.rcode))
    # The rows it is for: ClusterIP A/AAAA, NXDOMAIN below <ns>.svc, one-owner PTR, SRV
    # of a named port of a single-stack ClusterIP Service.
    assert ("svc1.testns.svc.cluster.local.", "A", "NOERROR") in answered
    assert ("_http._tcp.svc1.testns.svc.cluster.local.", "SRV", "NOERROR") in answered
    assert ("_http._tcp.svc6.testns.svc.cluster.local.", "SRV", "NOERROR") in answered
    assert ("1.0.0.10.in-addr.arpa.", "PTR", "NOERROR") in answered
    assert ("2.0.0.172.in-addr.arpa.", "PTR", "NOERROR") in answered
    assert ("svc6.testns.svc.cluster.local.", "AAAA", "NOERROR") in answered
    assert any(rcode == "NXDOMAIN" for _, _, rcode in answered)


@module_loop
@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["svc1", "svc6", "hdls1", "svc-dual-stack", "external", "nope", "x", "svcempty"]
    ),
    st.sampled_from(["testns", "other", "missing"]),
    st.one_of(
        st.lists(label, max_size=3),
        st.sampled_from([["_http", "_tcp"], ["_HTTP", "_Tcp"], ["_http", "_udp"], ["_dns"]]),
    ),
    st.sampled_from(["A", "AAAA", "SRV", "TXT", "MX"]),
    st.integers(0, 2**32),
)
async def test_express_agrees_on_generated_names(
    server: RunningServer, name: str, namespace: str, prefix: list[str], qtype: str, seed: int
) -> None:
    plugin = server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    qname = ".".join([*prefix, name, namespace, "svc", "cluster", "local", ""])
    for data, tcp in _variants(qname, qtype, random.Random(seed))[::3]:
        _same_as_fast(plugin, data, tcp, max_udp=random.Random(seed).choice([512, 1232, 4096]))


# --- the tier in the dispatcher ----------------------------------------------------------------


def _mix(count: int, rng: random.Random) -> list[bytes]:
    names = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            name, qtype = (
                rng.choice(["svc1", "SVC1", "sVc6", "svc-dual-stack"])
                + ".testns.svc.cluster.local.",
                rng.choice(["A", "AAAA"]),
            )
        elif kind == 1:
            name, qtype = f"x{rng.getrandbits(32):x}.testns.svc.cluster.local.", "A"
        elif kind == 2:
            name, qtype = f"api{n}.example.com.testns.svc.cluster.local.", "AAAA"
        else:
            name, qtype = "_http._tcp.svc1.testns.svc.cluster.local.", "SRV"
        query = dns.message.make_query(name, qtype, use_edns=rng.choice([False, 0]), payload=1232)
        query.id = n & 0xFFFF
        names.append(query.to_wire())
    return names


@module_loop
@pytest.mark.parametrize("memo_size", [10_000, 40], ids=["memo with room", "full memo"])
async def test_the_tier_keeps_and_counts_what_the_general_path_would(
    server: RunningServer, memo_size: int
) -> None:
    """The same questions through prepare() with the tier and with it switched off: the
    same replies, the same memo entries (keys, replies, lifetimes), the same counts; with a
    full memo, the same second-sight admissions."""
    dispatcher = dispatcher_of(server)
    mux = dispatcher.mux
    assert _express_of(mux) is not None, "the standard Corefile has an express route"
    wires = _mix(400, random.Random(3))
    wires += wires[::7]  # some asked again: kept on their second sight once full
    client = ("127.0.0.1", 5300)
    memos = []
    answered = 0
    general = Dispatcher._answer_express

    def counting(*args: object) -> bytes | None:
        nonlocal answered
        wire = general(*args)  # type: ignore[arg-type]
        answered += wire is not None
        return wire

    dispatcher._answer_express = counting  # type: ignore[method-assign]
    for express in (True, False):
        memo = ReplyMemo(memo_size)
        replies = []
        for data in wires:
            if not express:
                dispatcher._express = (mux, None)
            replies.append(dispatcher.prepare(data, "udp", client, memo))
        dispatcher._express = (None, None)
        memos.append((memo, replies))
    del dispatcher._answer_express
    assert answered > 200, "most of the mix went the express way"
    (with_tier, replies_with), (without, replies_without) = memos
    assert replies_with == replies_without
    assert all(isinstance(r, bytes) for r in replies_with)
    assert list(with_tier.entries) == list(without.entries)
    for key, entry in with_tier.entries.items():
        other = without.entries[key]
        assert entry[0] == other[0]
        assert (entry[1] == INFINITE) == (other[1] == INFINITE)
    assert with_tier.counted == without.counted == len(wires) - with_tier.hits
    counts = [sorted(t.count[0] for t in m.tallies.values()) for m in (with_tier, without)]
    assert counts[0] == counts[1]


@module_loop
async def test_zone_transfers_are_left_to_the_chain(server: RunningServer) -> None:
    """AXFR and IXFR are refused by the chain (or served by transfer), never answered here."""
    plugin = server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    for qtype in ("AXFR", "IXFR"):
        for name in ("cluster.local.", "nosuch.testns.svc.cluster.local."):
            wire = dns.message.make_query(name, qtype).to_wire()
            assert plugin.answer_express(wire, True, 1232) is None


@module_loop
async def test_a_cached_name_is_left_to_the_cache(server: RunningServer) -> None:
    cache = server.plugin("cache")
    assert isinstance(cache, Cache)
    query = parse_query(dns.message.make_query("svc1.testns.svc.cluster.local.", "A").to_wire())
    assert cache.passes_express(query.qname_lower, query.qtype, query.flags, False)
    cache.success[Cache.key(query)] = object()  # type: ignore[assignment]
    try:
        assert not cache.passes_express(query.qname_lower, query.qtype, query.flags, False)
    finally:
        del cache.success[Cache.key(query)]


@pytest.mark.parametrize(
    "extra",
    [
        "acl {\n        allow net 127.0.0.0/8\n    }",  # a gate before it
        "log",  # an observer that needs every Request
        "autopath @kubernetes",  # a step it cannot see through
        "nsid clusterdns",  # an edit of its replies
    ],
)
@module_loop
async def test_the_tier_stands_aside(tmp_path: Path, extra: str) -> None:
    folder = write_manifests(tmp_path / "m")
    text = STANDARD.format(folder=folder).replace("    errors\n", f"    errors\n    {extra}\n")
    async with running_server(text) as running:
        assert _express_of(dispatcher_of(running).mux) is None


@module_loop
async def test_two_blocks_stand_aside(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m")
    text = STANDARD.format(folder=folder) + "example.org:0 {\n    whoami\n}\n"
    async with running_server(text) as running:
        for listener in running.app.server.listeners.values():  # type: ignore[union-attr]
            assert _express_of(listener.dispatcher.mux) is None
