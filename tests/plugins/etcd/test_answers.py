"""The etcd plugin's answers from an in-memory store: answer_fast and serve against a
dnspython oracle byte for byte, leases, change tracking, readiness, setup errors."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.fast import SERIAL_SLACK, SLOW, FastAnswerer, FastReply, VersionedRecords
from clusterdns.core.request import Reply, Request
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.etcd import Etcd, EtcdConfig
from clusterdns.plugins.etcd import handler as handler_module
from clusterdns.plugins.etcd.handler import SERIAL_TOKEN, ancestors
from clusterdns.plugins.etcd.records import RecordError, decode, domain, group, key_path
from clusterdns.plugins.etcd.setup import parse_config
from clusterdns.sources.etcd.store import EtcdEntry
from clusterdns.wire import parse_query
from clusterdns.wire.render import reply_limit
from tests.plugins.etcd.cases import EXTERNAL, KEYS, ROWS, ZONES, Case, oracle, rrset_from_text
from tests.plugins.etcd.cases import SEED_VALUE as SEED
from tests.plugins.etcd.fakestore import FakeStore

ZONE_LIST = tuple(zone + "." for zone in ZONES.split())
MAX_UDP = 4096


def make_plugin(
    entries: dict[str, str] | None = None,
    *,
    synced: bool = True,
    clock: Callable[[], float] | None = None,
    **options: object,
) -> tuple[Etcd, FakeStore]:
    store = FakeStore(KEYS if entries is None else entries, clock=clock)
    zones = options.pop("zones", ZONE_LIST)
    config = EtcdConfig(zones=zones, **options)  # type: ignore[arg-type]
    plugin = Etcd(config, store)
    if synced:
        store.sync()
    return plugin, store


@dataclass
class _Settings:
    max_udp_size: int = MAX_UDP


@dataclass
class _Block:
    settings: _Settings = field(default_factory=_Settings)


def make_request(wire: bytes, *, transport: str = "udp") -> Request:
    query = parse_query(wire)
    req = Request(query, transport=transport, client=("127.0.0.1", 5353), block=_Block(), zone=".")  # type: ignore[arg-type]

    async def lookup(_req: Request, name: str, qtype: int) -> Reply | None:
        text = EXTERNAL.get((name, dns.rdatatype.to_text(qtype)))
        if text is None:
            return None
        lookup_query = dns.message.make_query(name, qtype)
        response = dns.message.make_response(lookup_query)
        response.answer.append(rrset_from_text(text))
        return Reply.of(response, plugin="hosts")

    req.lookup_via = lookup
    return req


async def _next(req: Request) -> Reply:
    return Reply.error(dns.rcode.REFUSED, plugin="next")


def client_query(case: Case, *, edns: bool, do: bool = False, case_mix: bool = False):
    name = case.qname
    if case_mix:
        name = "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
    if edns:
        flags = dns.flags.DO if do else 0
        query = dns.message.make_query(name, case.qtype, use_edns=0, payload=1232, ednsflags=flags)
    else:
        query = dns.message.make_query(name, case.qtype)
    query.id = 4242
    return query


VARIANTS = [
    pytest.param({"edns": False}, id="no EDNS"),
    pytest.param({"edns": True, "do": True}, id="EDNS+DO"),
    pytest.param({"edns": True, "case_mix": True}, id="EDNS 0x20"),
]


def test_protocols() -> None:
    plugin, _ = make_plugin()
    assert isinstance(plugin, FastAnswerer)
    assert isinstance(plugin, VersionedRecords)
    assert plugin.zones == ZONE_LIST


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", ROWS)
def test_answer_fast_matches_oracle(case: Case, variant: dict[str, bool]) -> None:
    plugin, _ = make_plugin()
    query = client_query(case, **variant)
    wire = query.to_wire()
    parsed = parse_query(wire)
    limit = reply_limit(parsed, tcp=False, max_udp=MAX_UDP)
    result = plugin.answer_fast(parsed, limit, MAX_UDP)
    if not case.fast:
        assert result is SLOW
        return
    assert isinstance(result, FastReply), result
    expected = oracle(query, case, plugin.serial, limit=limit, payload=MAX_UDP)
    assert result.wire == expected, (
        dns.message.from_wire(result.wire).to_text()
        + "\n---- expected ----\n"
        + dns.message.from_wire(expected).to_text()
    )
    reply = dns.message.from_wire(result.wire)
    if reply.authority and reply.authority[0].rdtype == dns.rdatatype.SOA:
        # A negative answer: its SOA serial may lag by at most SERIAL_SLACK.
        assert result.until <= time.monotonic() + SERIAL_SLACK
    else:
        assert result.until == math.inf
    # The second time comes from the kept outcome: the same bytes.
    again = plugin.answer_fast(parsed, limit, MAX_UDP)
    assert isinstance(again, FastReply) and again.wire == result.wire


@pytest.mark.parametrize("variant", VARIANTS[:2])
@pytest.mark.parametrize("case", ROWS)
async def test_serve_gives_the_same_reply(case: Case, variant: dict[str, bool]) -> None:
    """The chain path (serve) answers every row, the fast path's ones with its bytes."""
    plugin, _ = make_plugin()
    query = client_query(case, **variant)
    req = make_request(query.to_wire())
    reply = await plugin.serve(req, _next)
    assert reply.wire is not None and reply.plugin == "etcd"
    limit = reply_limit(req.query, tcp=False, max_udp=MAX_UDP)
    expected = oracle(query, case, plugin.serial, limit=limit, payload=MAX_UDP)
    assert reply.wire == expected, (
        dns.message.from_wire(reply.wire).to_text()
        + "\n---- expected ----\n"
        + dns.message.from_wire(expected).to_text()
    )


BIG = next(p.values[0] for p in ROWS if p.values[0].qname.startswith("big."))
LONG = next(p.values[0] for p in ROWS if p.values[0].qname.startswith("long.text"))
NS = next(p.values[0] for p in ROWS if p.values[0].qtype == "NS" and p.values[0].answer)


@pytest.mark.parametrize(
    ("case", "edns", "limit"),
    [
        pytest.param(BIG, False, 512, id="40 A records, 512 bytes: TC"),
        pytest.param(BIG, True, 600, id="40 A records, EDNS 600: TC"),
        pytest.param(BIG, False, 65535, id="40 A records over TCP"),
        pytest.param(NS, False, 100, id="NS with glue cut"),
        pytest.param(LONG, False, 200, id="long TXT does not fit at all"),
    ],
)
def test_truncation_matches_oracle(case: Case, edns: bool, limit: int) -> None:
    plugin, _ = make_plugin()
    query = client_query(case, edns=edns)
    parsed = parse_query(query.to_wire())
    result = plugin.answer_fast(parsed, limit, MAX_UDP)
    assert isinstance(result, FastReply)
    assert len(result.wire) <= limit
    expected = oracle(query, case, plugin.serial, limit=limit, payload=MAX_UDP)
    assert result.wire == expected
    message = dns.message.from_wire(result.wire)
    assert bool(message.flags & dns.flags.TC) == (limit < 65535)


def test_names_outside_the_zones_are_not_ours() -> None:
    plugin, _ = make_plugin()
    query = parse_query(dns.message.make_query("example.com.", "A").to_wire())
    assert plugin.answer_fast(query, 512, MAX_UDP) is None


def test_before_the_first_list() -> None:
    plugin, store = make_plugin(synced=False)
    assert plugin.ready() is False
    query = parse_query(dns.message.make_query("mysql-service.default.kube.local.", "A").to_wire())
    assert plugin.answer_fast(query, 512, MAX_UDP) is SLOW
    store.sync()
    assert plugin.ready() is True
    assert isinstance(plugin.answer_fast(query, 512, MAX_UDP), FastReply)


async def test_serve_before_the_first_list_is_servfail() -> None:
    plugin, _ = make_plugin(synced=False)
    req = make_request(dns.message.make_query("mysql-service.default.kube.local.", "A").to_wire())
    reply = await plugin.serve(req, _next)
    assert reply.rcode == dns.rcode.SERVFAIL and not reply.written


def _answer(plugin: Etcd, name: str, qtype: str = "A") -> FastReply:
    query = parse_query(dns.message.make_query(name, qtype).to_wire())
    result = plugin.answer_fast(query, 65535, MAX_UDP)
    assert isinstance(result, FastReply)
    return result


def _records(result: FastReply) -> list[str]:
    message = dns.message.from_wire(result.wire, one_rr_per_rrset=True)
    return sorted(
        f"{rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in message.answer
        for rdata in rrset
    )


def test_changes_drop_only_what_they_touch() -> None:
    plugin, store = make_plugin()
    seed = _answer(plugin, "mysql-service.default.svc.kube.local.")
    other = _answer(plugin, "a.server1.prod.region1.skydns.test.")
    missing = _answer(plugin, "new.default.svc.kube.local.")
    assert dns.message.from_wire(missing.wire).rcode() == dns.rcode.NXDOMAIN
    assert seed.depends is not None and other.depends is not None and missing.depends is not None
    # Only the apex SOA answer rests on the serial; a negative answer's SOA may lag it.
    assert SERIAL_TOKEN not in missing.depends and SERIAL_TOKEN not in seed.depends
    assert missing.until <= time.monotonic() + SERIAL_SLACK and seed.until == math.inf
    apex = _answer(plugin, "kube.local.", "SOA")
    assert apex.depends is not None and SERIAL_TOKEN in apex.depends
    before = plugin.generation
    store.put("/skydns/local/kube/svc/default/mysql-service/beef", '{"host":"10.254.0.2"}')
    assert plugin.generation == before + 1
    changed = plugin.changes_since(before)
    assert changed is not None
    assert seed.depends & changed  # the seed's answer went
    assert not (other.depends & changed)  # another name's stayed
    assert _records(_answer(plugin, "mysql-service.default.svc.kube.local.")) == [
        "30 A 10.254.162.44",
        "300 A 10.254.0.2",
    ]
    store.put("/skydns/local/kube/svc/default/new/x", '{"host":"10.254.0.3"}')
    changed = plugin.changes_since(before)
    assert changed is not None and missing.depends <= changed
    assert _records(_answer(plugin, "new.default.svc.kube.local.")) == ["300 A 10.254.0.3"]
    store.delete("/skydns/local/kube/svc/default/new/x")
    gone = _answer(plugin, "new.default.svc.kube.local.")
    assert dns.message.from_wire(gone.wire).rcode() == dns.rcode.NXDOMAIN
    # A full relist: anything may have changed.
    store.sync()
    assert plugin.changes_since(before) is None
    assert plugin.changes_since(plugin.generation) == frozenset()


def test_ancestors() -> None:
    assert ancestors("/skydns/local/kube/svc") == {
        "/skydns/local/kube/svc",
        "/skydns/local/kube",
        "/skydns/local",
        "/skydns",
        "/",
    }
    assert key_path("mysql-service.default.svc.kube.local.", "/skydns") == (
        "/skydns/local/kube/svc/default/mysql-service"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("remaining", "own", "ttl"),
    [
        pytest.param(100.4, 0, 100, id="lease 100s left → 100"),
        pytest.param(10.0, 0, 30, id="lease 10s left → min-lease-ttl 30"),
        pytest.param(200000.0, 0, 86400, id="lease longer than a day → max-lease-ttl"),
        pytest.param(100.0, 60, 60, id="value's ttl smaller → 60"),
        pytest.param(100.4, 600, 100, id="lease smaller than the value's ttl"),
        pytest.param(0.5, 0, 300, id="under a second left: as if no lease (CoreDNS)"),
    ],
)
def test_lease_ttl(monkeypatch: pytest.MonkeyPatch, remaining: float, own: int, ttl: int) -> None:
    clock = Clock()
    monkeypatch.setattr("clusterdns.plugins.etcd.handler.time.monotonic", clock)
    entries = {"/skydns/test/skydns/leased": f'{{"host":"10.0.0.7","ttl":{own}}}'}
    plugin, store = make_plugin(entries, clock=clock, synced=False)
    plugin.answers.clock = clock
    store.leases[7] = clock.now + remaining
    store.put("/skydns/test/skydns/leased", entries["/skydns/test/skydns/leased"], lease=7)
    store.sync()
    result = _answer(plugin, "leased.skydns.test.")
    assert _records(result) == [f"{ttl} A 10.0.0.7"]
    assert result.until > clock.now


def test_lease_ttl_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr("clusterdns.plugins.etcd.handler.time.monotonic", clock)
    plugin, store = make_plugin({}, clock=clock, synced=False, min_lease_ttl=5)
    plugin.answers.clock = clock
    store.leases[9] = clock.now + 42.25
    store.put("/skydns/test/skydns/leased", '{"host":"10.0.0.7"}', lease=9)
    store.sync()
    first = _answer(plugin, "leased.skydns.test.")
    assert _records(first) == ["42 A 10.0.0.7"]
    assert first.until == pytest.approx(clock.now + 0.25)  # the next second boundary
    clock.now += 0.3
    assert _records(_answer(plugin, "leased.skydns.test.")) == ["41 A 10.0.0.7"]
    clock.now += 40.0  # 1.95 s left: clamped to min-lease-ttl 5 until under a second
    clamped = _answer(plugin, "leased.skydns.test.")
    assert _records(clamped) == ["5 A 10.0.0.7"]
    assert clamped.until == pytest.approx(clock.now + 0.95)


def test_unknown_lease_is_looked_at_again_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr("clusterdns.plugins.etcd.handler.time.monotonic", clock)
    plugin, store = make_plugin({}, clock=clock, synced=False)
    plugin.answers.clock = clock
    store.put("/skydns/test/skydns/leased", '{"host":"10.0.0.7"}', lease=11)
    store.sync()
    first = _answer(plugin, "leased.skydns.test.")
    assert _records(first) == ["300 A 10.0.0.7"]
    assert first.until == pytest.approx(clock.now + 1.0)
    store.leases[11] = clock.now + 77.5  # the store fetched it
    clock.now += 1.0
    assert _records(_answer(plugin, "leased.skydns.test.")) == ["76 A 10.0.0.7"]


async def test_fallthrough_goes_to_the_chain() -> None:
    plugin, _ = make_plugin(fallthrough=Fallthrough(["kube.local."]))
    query = dns.message.make_query("nope.kube.local.", "A")
    parsed = parse_query(query.to_wire())
    assert plugin.answer_fast(parsed, 512, MAX_UDP) is SLOW
    reply = await plugin.serve(make_request(query.to_wire()), _next)
    assert reply.plugin == "next"
    # Only NXDOMAIN falls through; and only in its zones.
    assert isinstance(_answer(plugin, "mysql-service.default.svc.kube.local.", "AAAA"), FastReply)
    nx = _answer(plugin, "doesnotexist.skydns.test.")
    assert dns.message.from_wire(nx.wire).rcode() == dns.rcode.NXDOMAIN


def test_group_of_the_shortest_key() -> None:
    from clusterdns.plugins.etcd.records import Service

    def s(key: str, group_name: str) -> Service:
        return Service(key=key, host="10.0.0.1", group=group_name)

    same = [s("/a/b/x", "g1"), s("/a/b/c/y", "g1")]
    assert group(same) == same
    assert group([s("/a/b/x", "g1"), s("/a/b/c/y", "g2")]) == [s("/a/b/x", "g1")]
    # Two at the shortest depth disagree: everything answers.
    mixed = [s("/a/b/x", "g1"), s("/a/b/y", "g2")]
    assert group(mixed) == mixed


# --- setup ---------------------------------------------------------------------------------


def _directive(text: str):
    (block,) = parse(text, filename="Corefile").blocks
    return next(d for d in block.directives if d.name == "etcd")


def test_setup_parses_coredns_syntax(caplog: pytest.LogCaptureFixture) -> None:
    text = """skydns.local 10.0.0.0/24 {
    etcd skydns.local 10.0.0.0/24 {
        path /skydns/
        endpoint http://127.0.0.1:2379 127.0.0.1:4001
        credentials root secret
        tls cert.pem key.pem ca.pem
        min-lease-ttl 1m
        max-lease-ttl 1h
        fallthrough in-addr.arpa
        stubzones
        debug
        upstream 8.8.8.8
    }
}
"""
    with caplog.at_level(logging.WARNING):
        config = parse_config(_directive(text), ("skydns.local.",))
    assert config.zones == ("skydns.local.", "0.0.10.in-addr.arpa.")
    assert config.path == "/skydns" and config.prefix == "/skydns/"
    assert config.endpoints == ("http://127.0.0.1:2379", "http://127.0.0.1:4001")
    assert config.credentials == ("root", "secret")
    assert config.tls == ("cert.pem", "key.pem", "ca.pem")
    assert (config.min_lease_ttl, config.max_lease_ttl) == (60, 3600)
    assert config.fallthrough == Fallthrough(["in-addr.arpa."])
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("clusterdns")]
    assert len(warnings) == 3
    assert all(w.startswith("etcd: corefile:") for w in (w.lower() for w in warnings))
    assert all(w.split(": ", 2)[2] == w.split(": ", 2)[2].lower() for w in warnings)
    assert any("stubzones is ignored" in w for w in warnings)


def test_setup_defaults() -> None:
    config = parse_config(_directive("kube.local {\n    etcd\n}\n"), ("kube.local.",))
    assert config == EtcdConfig(zones=("kube.local.",))
    assert config.endpoints == ("http://localhost:2379",)
    assert (config.min_lease_ttl, config.max_lease_ttl) == (30, 86400)


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        pytest.param("credentials root", 3, "credentials requires 2 arguments", id="credentials"),
        pytest.param("path", 3, "expected 1 argument", id="path without value"),
        pytest.param("endpoint", 3, "expected at least 1 argument", id="endpoint without URL"),
        pytest.param("endpoint ftp://x", 3, "http:// or https://", id="endpoint scheme"),
        pytest.param("min-lease-ttl soon", 3, "invalid duration", id="min-lease-ttl"),
        pytest.param("max-lease-ttl -5s", 3, "non-negative", id="negative max-lease-ttl"),
        pytest.param("tls a b c d", 3, "expected 0..3 arguments", id="tls with 4 arguments"),
        pytest.param("nonsense", 3, "unknown property 'nonsense'", id="unknown property"),
    ],
)
def test_setup_errors_name_file_and_line(body: str, line: int, message: str) -> None:
    text = f"kube.local {{\n    etcd {{\n        {body}\n    }}\n}}\n"
    with pytest.raises(CorefileError) as caught:
        parse_config(_directive(text), ("kube.local.",))
    assert str(caught.value).startswith(f"Corefile:{line}: etcd: "), str(caught.value)
    assert message in str(caught.value)


def test_setup_only_once() -> None:
    from clusterdns.core.instance import build_instance
    from clusterdns.core.process import Process

    text = "kube.local {\n    etcd\n    etcd\n}\n"
    with pytest.raises(CorefileError, match=r"Corefile:3: etcd: .*only be used once"):
        build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)


# --- values as Go's encoding/json decodes them into msg.Service ------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(SEED, {"host": "10.254.162.44", "weight": 10, "ttl": 30}, id="the seed"),
        pytest.param(
            '{"Host":"10.0.0.1","TTL":5}',
            {"host": "10.0.0.1", "ttl": 5},
            id="field names fold case",
        ),
        pytest.param(
            '{"host":"x.example","extra":[1]}', {"host": "x.example"}, id="unknown fields ignored"
        ),
        pytest.param("null", {"host": ""}, id="null is the zero value"),
        pytest.param('{"host":null,"port":null}', {"host": "", "port": 0}, id="null fields"),
        pytest.param('{"text":"hi","mail":true}', {"text": "hi", "mail": True}, id="text and mail"),
        pytest.param('{"host":"::ffff:10.0.0.1"}', {"host_type": 1}, id="IPv4-mapped IPv6 is A"),
        pytest.param('{"host":"fe80::1%eth0"}', {"host_type": 5}, id="zoned IPv6 is a name"),
        pytest.param('{"host":"010.0.0.1"}', {"host_type": 5}, id="leading zeros are a name"),
        pytest.param('{"host":"a.example","text":"t"}', {"host_type": 16}, id="name and text: TXT"),
        pytest.param('{"priority":0}', {"priority": 10}, id="priority 0 becomes 10"),
    ],
)
def test_decode(value: str, expected: dict[str, object]) -> None:
    service = decode("/skydns/k", value.encode())
    for name, wanted in expected.items():
        assert getattr(service, name) == wanted


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not json", id="not JSON"),
        pytest.param("[1]", id="an array"),
        pytest.param('"text"', id="a string"),
        pytest.param('{"port":"80"}', id="port as a string"),
        pytest.param('{"port":80.5}', id="port not whole"),
        pytest.param('{"ttl":-1}', id="negative ttl"),
        pytest.param('{"ttl":4294967296}', id="ttl past uint32"),
        pytest.param('{"mail":"yes"}', id="mail not a bool"),
        pytest.param('{"host":5}', id="host not a string"),
    ],
)
def test_decode_rejects(value: str) -> None:
    with pytest.raises(RecordError):
        decode("/skydns/k", value.encode())


def test_path_at_the_root_of_the_keyspace() -> None:
    """``path /``: keys are the reversed names themselves, and the root zone's reads are
    dropped by any change."""
    plugin, store = make_plugin({"/local/kube/web": '{"host":"10.0.0.1"}'}, zones=(".",), path="")
    assert _records(_answer(plugin, "web.kube.local.")) == ["300 A 10.0.0.1"]
    root = _answer(plugin, ".", "A")
    assert _records(root) == ["300 A 10.0.0.1"]
    before = plugin.generation
    store.put("/local/kube/api", '{"host":"10.0.0.2"}')
    changed = plugin.changes_since(before)
    assert root.depends is not None and changed is not None and root.depends & changed
    assert _records(_answer(plugin, ".", "A")) == ["300 A 10.0.0.1", "300 A 10.0.0.2"]


def test_answers_stay_right_while_a_thread_reads() -> None:
    """A UDP thread answering while the loop applies changes never keeps an outcome
    computed from keys that changed under it."""
    import threading
    import time

    class SlowStore(FakeStore):
        """Reads that let the writer in between reading and answering."""

        def get(self, key: str) -> EtcdEntry | None:
            found = super().get(key)
            time.sleep(0.0002)
            return found

    store = SlowStore({})
    plugin = Etcd(EtcdConfig(zones=ZONE_LIST), store)
    store.sync()
    names = [f"n{i}.skydns.test." for i in range(20)]
    queries = [parse_query(dns.message.make_query(n, "A").to_wire()) for n in names]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for query in queries:
                plugin.answer_fast(query, 512, MAX_UDP)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        round_ = 0
        while time.monotonic() < deadline:
            round_ += 1
            for i in range(20):
                store.put(f"/skydns/test/skydns/n{i}", f'{{"host":"10.0.{round_ % 250}.{i}"}}')
                time.sleep(0.0001)
    finally:
        stop.set()
        thread.join(5)
    for i, name in enumerate(names):
        assert _records(_answer(plugin, name)) == [f"300 A 10.0.{round_ % 250}.{i}"]


# --- properties -----------------------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z0-9_]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@settings(max_examples=300, deadline=None)
def test_decode_only_raises_record_error(value: bytes) -> None:
    try:
        service = decode("/skydns/k", value)
    except RecordError:
        return
    assert service.key == "/skydns/k"


@given(st.lists(_LABEL, min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_key_path_and_domain_are_inverse(labels: list[str]) -> None:
    name = ".".join(labels) + "."
    assert domain(key_path(name, "/skydns"), "/skydns") == name


@given(st.binary(min_size=1, max_size=60).filter(lambda b: b"\x00" not in b))
@settings(max_examples=100, deadline=None)
def test_any_question_gets_one_reply_or_none(label: bytes) -> None:
    """Arbitrary labels (escapes, dots, binary) under our zones give a reply or go to the
    chain; they never raise."""
    plugin, _ = make_plugin()
    name = dns.name.Name((label[:63], b"skydns", b"test", b""))
    query = parse_query(dns.message.make_query(name, "A").to_wire())
    result = plugin.answer_fast(query, 512, MAX_UDP)
    assert result is SLOW or isinstance(result, FastReply)


async def test_a_large_subtree_is_worked_out_off_the_udp_thread() -> None:
    """SkyDNS answers a parent name with every record below it: its first answer is left to
    the chain (the event loop), which keeps it, so the next question is fast again."""
    entries = {f"/skydns/local/kube/svc/big/s{i:04d}": f'{{"host":"10.9.{i // 250}.{i % 250 + 1}"}}'
               for i in range(handler_module.LARGE_SUBTREE + 10)}  # fmt: skip
    plugin, _ = make_plugin(entries)
    wire = dns.message.make_query("big.svc.kube.local.", "A").to_wire()
    parsed = parse_query(wire)
    assert plugin.answer_fast(parsed, 65535, MAX_UDP) is SLOW
    small = parse_query(dns.message.make_query("s0001.big.svc.kube.local.", "A").to_wire())
    assert isinstance(plugin.answer_fast(small, 512, MAX_UDP), FastReply), "a small name is not"
    reply = await plugin.serve(make_request(wire, transport="tcp"), _next)
    message = reply.to_message()
    assert message is not None
    assert sum(len(rrset) for rrset in message.answer) == len(entries)
    kept = plugin.answer_fast(parsed, 65535, MAX_UDP)
    assert isinstance(kept, FastReply), "worked out once, then answered on the fast path"


def test_kept_outcomes_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit the oldest kept outcome makes room for each new one (no bulk drop), and
    the index of paths forgets it too."""
    monkeypatch.setattr(handler_module, "OUTCOME_LIMIT", 3)
    plugin, _ = make_plugin()
    names = [f"n{i}.skydns.test." for i in range(5)]
    for name in names:
        _answer(plugin, name)
    kept = list(plugin._outcomes)
    assert [q[0] for q in kept] == [dns.name.from_text(n).to_wire() for n in names[2:]]
    indexed = set().union(*plugin._index.values()) if plugin._index else set()
    assert indexed <= set(kept), "no path still points at a forgotten question"
