"""AnswerTable on its own: Service names answered from the record, what is kept, what goes."""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.message
import msgspec
import pytest

from clusterdns.plugins.kubernetes import answers
from clusterdns.plugins.kubernetes.answers import AnswerTable
from clusterdns.plugins.kubernetes.config import KubernetesConfig
from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import ClusterModel, Kind, Service
from clusterdns.wire import Query, name_to_text, parse_query, text_to_wire
from clusterdns.wire.names import ipv4_from_reverse, label_offsets
from tests.helpers.dnsclient import make_query
from tests.helpers.kubeapi import endpoint_slice, service

S = ".default.svc.cluster.local."
NOERROR, NXDOMAIN = 0, 3


def q(name: str, qtype: str = "A") -> Query:
    return parse_query(make_query(name, qtype).to_wire())


def table_with(*objs: tuple[Kind, dict[str, Any], type[Any]]) -> AnswerTable:
    model = ClusterModel(kinds={Kind.SERVICES, Kind.ENDPOINTSLICES})
    table = AnswerTable(
        KubernetesConfig(zones=("cluster.local.", "in-addr.arpa.")),
        model,
        own_addresses=("127.0.0.1",),
    )
    model.subscribe(table.apply)
    for kind in (Kind.SERVICES, Kind.ENDPOINTSLICES):
        model.replace_all(kind, [msgspec.convert(o, t) for k, o, t in objs if k is kind])
    table.deferring = False
    table.rebuild()
    return table


def web_and_api() -> AnswerTable:
    return table_with(
        (Kind.SERVICES, service("web", cluster_ip="None"), api.Service),
        (
            Kind.ENDPOINTSLICES,
            endpoint_slice("web-a", "web", addresses=["10.0.0.1"]),
            api.EndpointSlice,
        ),
        (Kind.SERVICES, service("api", cluster_ip="10.96.0.5"), api.Service),
    )


def decide(table: AnswerTable, name: str, qtype: str = "A") -> answers.Answer | None:
    query = q(name, qtype)
    return table.decide(query.qname_lower, query.label_offsets, query.qtype)


def test_nothing_is_stored_per_name() -> None:
    table = web_and_api()
    for name in ("web" + S, "10-0-0-1.web" + S, "api" + S, "nope" + S):
        assert decide(table, name) is not None
    # Only the apex names of each zone: replies are decided from the model every time.
    # (The express index maps names to the model's own Service objects: no replies.)
    assert all(not name_to_text(name).endswith(S) for name in table.names)
    assert not hasattr(table, "templates") and not hasattr(table, "memo")
    assert all(isinstance(v, Service) for v in table._express_names.values())


def express_answer(table: AnswerTable, name: str, qtype: str = "A") -> dns.message.Message | None:
    """table.express() of a query for ``name``, decoded; None when it leaves it."""
    got = table.express(make_query(name, qtype).to_wire(), False, 1232)
    return None if got is None else dns.message.from_wire(got[0])


def addresses(reply: dns.message.Message | None) -> list[str]:
    assert reply is not None
    return [rdata.address for rrset in reply.answer for rdata in rrset]


API_NAME = b"\x03api\x07default\x03svc\x07cluster\x05local\x00"
API_SRV = b"\x05_http\x04_tcp" + API_NAME


def ptr_targets(reply: dns.message.Message | None) -> list[str]:
    assert reply is not None
    return [rdata.target.to_text() for rrset in reply.answer for rdata in rrset]


def no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the label walk (read_plain) fail: what express() still answers, it answered
    from the name found whole."""

    def walked(data: bytes) -> None:
        raise AssertionError("the label walk ran")

    monkeypatch.setattr(answers, "read_plain", walked)


def test_the_express_names_follow_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service's A, SRV and PTR questions are found by their whole name in one lookup
    (no label walk); what is answered is still the model's: a new ClusterIP at once, a
    deleted Service NXDOMAIN, a Service turned headless left to the general path, a
    recreated one found again, and the old reverse name gone with its IP."""
    table = web_and_api()
    svc = table.model.service("default", "api")
    assert table._express_names[API_NAME] is svc
    assert API_SRV not in table._express_names  # found through API_NAME
    assert not any(k.startswith(b"\x03web") for k in table._express_names)  # headless
    with monkeypatch.context() as patched:
        no_walk(patched)
        assert addresses(express_answer(table, "API" + S)) == ["10.96.0.5"]
        srv = express_answer(table, "_http._TCP.api" + S, "SRV")
        assert srv is not None and [r.port for rrset in srv.answer for r in rrset] == [80]
        assert addresses(_additional(srv)) == ["10.96.0.5"]
        ptr = express_answer(table, "5.0.96.10.in-addr.arpa.", "PTR")
        assert ptr_targets(ptr) == ["api" + S]

    def put(event: str, cluster_ip: str) -> None:
        obj = msgspec.convert(service("api", cluster_ip=cluster_ip), api.Service)
        table.model.apply(Kind.SERVICES, event, obj)

    put("MODIFIED", "10.96.0.6")
    assert addresses(express_answer(table, "api" + S)) == ["10.96.0.6"]
    assert express_answer(table, "5.0.96.10.in-addr.arpa.", "PTR") is None  # no owner now
    assert ptr_targets(express_answer(table, "6.0.96.10.in-addr.arpa.", "PTR")) == ["api" + S]
    put("DELETED", "10.96.0.6")
    assert API_NAME not in table._express_names
    gone = express_answer(table, "api" + S)
    assert gone is not None and gone.rcode() == NXDOMAIN
    put("ADDED", "None")
    assert API_NAME not in table._express_names
    assert express_answer(table, "api" + S) is None  # headless: decide() answers it
    put("MODIFIED", "10.96.0.7")
    assert addresses(express_answer(table, "api" + S)) == ["10.96.0.7"]


def _additional(reply: dns.message.Message) -> dns.message.Message:
    """A message whose answer section is ``reply``'s additional one."""
    copy = dns.message.Message()
    copy.answer = reply.additional
    return copy


@pytest.mark.parametrize(
    ("ports", "asked", "express"),
    [
        ([("http", 80, "TCP")], "_http._tcp", True),
        ([("http", 80, "TCP")], "_HTTP._Tcp", True),
        ([("http", 80, "TCP"), ("http", 80, "UDP")], "_http._udp", True),
        # Two ports of one name and protocol: two SRV records, written by decide().
        ([("http", 80, "TCP"), ("HTTP", 81, "TCP")], "_http._tcp", False),
        ([("http", 80, "TCP")], "_dns._udp", False),  # no such port: NXDOMAIN, by decide()
        ([("http", 80, "TCP")], "_http", False),  # one label only
        ([("http", 80, "TCP")], "_x._y._http._tcp", False),  # too many
    ],
)
def test_srv_names_found_through_the_service_name(
    ports: list[tuple[str, int, str]], asked: str, express: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """express() answers ``_<port>._<proto>.<svc>`` SRV by looking up what follows the
    two labels; the reply is quick()'s (which walks the labels)."""
    table = table_with(
        (Kind.SERVICES, service("api", cluster_ip="10.96.0.5", ports=ports), api.Service)
    )
    wire = make_query(f"{asked}.api{S}", "SRV").to_wire()
    query = parse_query(wire)
    found = table.zone_of(query.qname_lower, query.label_offsets)
    assert found is not None
    walked = table.quick(query, found, 1232, 1232)
    if express:
        no_walk(monkeypatch)  # answered through the Service's name, not by the walk
    got = table.express(wire, False, 1232)
    assert (got is not None) is express
    assert (None if walked is None else walked[0]) == (None if got is None else got[0])


ALL = {API_NAME}


@pytest.mark.parametrize(
    ("zones", "indexed"),
    [
        (("cluster.local.", "in-addr.arpa."), ALL),
        ((".", "cluster.local.", "in-addr.arpa."), ALL),
        # A zone inside cluster.local takes some of its names (zone_of() prefers it):
        # quick() answers those differently, so nothing of cluster.local is indexed.
        (("cluster.local.", "default.svc.cluster.local.", "in-addr.arpa."), set()),
        (("cluster.local.", "in-addr.arpa.", "96.10.in-addr.arpa."), {API_NAME}),
    ],
)
def test_no_index_for_a_zone_holding_another(zones: tuple[str, ...], indexed: set[bytes]) -> None:
    model = web_and_api().model
    table = AnswerTable(KubernetesConfig(zones=zones), model, own_addresses=("127.0.0.1",))
    table.deferring = False
    table.rebuild()
    assert set(table._express_names) & ALL == indexed
    for name, qtype in (
        ("api" + S, "A"),
        ("_http._tcp.api" + S, "SRV"),
        ("5.0.96.10.in-addr.arpa.", "PTR"),
    ):
        wire = make_query(name, qtype).to_wire()
        query = parse_query(wire)
        found = table.zone_of(query.qname_lower, query.label_offsets)
        walked = None if found is None else table.quick(query, found, 1232, 1232)
        express = table.express(wire, False, 1232)
        assert (None if walked is None else walked[0]) == (None if express is None else express[0])


@pytest.mark.parametrize(
    "name",
    [
        "5.0.96.10.in-addr.arpa.",
        "0.0.0.0.in-addr.arpa.",
        "255.255.255.255.in-addr.arpa.",
        "05.0.96.10.in-addr.arpa.",  # a leading zero: not canonical
        "256.0.96.10.in-addr.arpa.",
        "1000.0.96.10.in-addr.arpa.",
        "0.96.10.in-addr.arpa.",  # three octets
        "1.5.0.96.10.in-addr.arpa.",  # five
        "a.0.96.10.in-addr.arpa.",
        "5.0.96.10.in-addr.arpa.example.",
    ],
)
def test_reverse_names_read_as_ipv4_from_reverse_reads_them(name: str) -> None:
    """express() reads an IPv4 reverse name with one regular expression; it takes exactly
    the names (and gives exactly the IPs) ipv4_from_reverse() does."""
    wire = text_to_wire(name)
    match = answers._V4_REVERSE.fullmatch(wire)
    walked = ipv4_from_reverse(wire, label_offsets(wire))
    if match is None:
        assert walked is None
    else:
        octets = [group[1:].decode() for group in reversed(match.groups())]
        assert ".".join(octets) == walked


def test_a_stale_index_entry_costs_the_walk_never_a_wrong_answer() -> None:
    table = web_and_api()
    key = API_NAME
    old = table._express_names[key]
    table.model.apply(
        Kind.SERVICES,
        "MODIFIED",
        msgspec.convert(service("api", cluster_ip="10.96.0.9"), api.Service),
    )
    table._express_names[key] = old  # as if the change had not reached the index yet
    assert addresses(express_answer(table, "api" + S)) == ["10.96.0.9"]


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("class CH", lambda w: w[:-2] + b"\x00\x03"),
        ("a response", lambda w: w[:2] + bytes((w[2] | 0x80,)) + w[3:]),
        ("another opcode", lambda w: w[:2] + bytes((w[2] | 0x10,)) + w[3:]),
        ("two questions", lambda w: w[:4] + b"\x00\x02" + w[6:]),
        ("bytes after the question", lambda w: w + b"\x00"),
        ("a name cut short", lambda w: w[:-5]),
    ],
)
def test_an_indexed_name_in_an_unusual_query_is_left_alone(what: str, edit: Any) -> None:
    """The index finds the name; the rest of the datagram is checked as read_plain()
    checks it, and anything unusual goes to the general path (parse_query)."""
    table = web_and_api()
    wire = make_query("api" + S, "A").to_wire()
    assert table.express(wire, False, 1232) is not None
    assert table.express(edit(wire), False, 1232) is None, what


def test_answers_follow_the_model_at_once() -> None:
    table = web_and_api()
    before = decide(table, "10-0-0-1.web" + S)
    assert before is not None and before.rcode == NOERROR and len(before.answer) == 1
    generation = table.generation
    table.model.apply(
        Kind.ENDPOINTSLICES,
        "MODIFIED",
        msgspec.convert(endpoint_slice("web-a", "web", addresses=["10.0.0.2"]), api.EndpointSlice),
    )
    assert table.generation > generation
    gone = decide(table, "10-0-0-1.web" + S)
    assert gone is not None and gone.rcode == NXDOMAIN
    new = decide(table, "10-0-0-2.web" + S)
    assert new is not None and new.rcode == NOERROR


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "depends", "carries_soa"),
    [
        ("web" + S, "A", NOERROR, {("default", "web")}, False),
        ("10-0-0-1.web" + S, "A", NOERROR, {("default", "web")}, False),
        ("web" + S, "AAAA", NOERROR, {("default", "web")}, True),  # NODATA carries the SOA
        ("bogus.web" + S, "A", NXDOMAIN, {("default", "web")}, True),
        ("a.b.c.web" + S, "A", NXDOMAIN, {("default", "web")}, True),  # too deep
        # No such Service: any Service created in the namespace drops it.
        ("nope" + S, "A", NXDOMAIN, {("default", "")}, True),
        ("web.other.svc.cluster.local.", "A", NXDOMAIN, {("other", "")}, True),
        ("_http._tcp.api" + S, "SRV", NOERROR, {("default", "api")}, False),
        ("default.svc.cluster.local.", "A", NOERROR, None, True),  # a namespace: any change
        ("svc.cluster.local.", "A", NOERROR, None, True),
        ("ns.dns.cluster.local.", "A", NOERROR, None, False),
        # Names the schema does not define: only a change of everything (set()) alters them.
        ("x.dns.cluster.local.", "A", NXDOMAIN, set(), True),
        ("foo.cluster.local.", "A", NXDOMAIN, set(), True),
        ("api.example.com.cluster.local.", "A", NXDOMAIN, set(), True),
        ("10-0-0-9.default.pod.cluster.local.", "A", NXDOMAIN, set(), True),  # pods disabled
        ("1.0.0.10.in-addr.arpa.", "PTR", NOERROR, {("", "10.0.0.1")}, False),
        ("9.9.9.10.in-addr.arpa.", "PTR", NXDOMAIN, {("", "10.9.9.9")}, True),
    ],
)
def test_decisions_and_what_they_depend_on(
    name: str, qtype: str, rcode: int, depends: set[object] | None, carries_soa: bool
) -> None:
    """What each answer depends on, for the reply memo: a Service's names on that Service,
    a PTR on its IP, names no cluster state defines on nothing but a change of everything,
    the rest on any change; and which carry the SOA (replayed for a
    bounded time only, since the SOA's serial moves with any change)."""
    answer = decide(web_and_api(), name, qtype)
    assert answer is not None and answer.rcode == rcode
    assert answer.depends == (None if depends is None else frozenset(depends))
    assert answer.carries_soa == carries_soa
    assert bool(answer.authority) == carries_soa


def test_ptr_from_the_reverse_index() -> None:
    table = table_with(
        (Kind.SERVICES, service("web", cluster_ip="None"), api.Service),
        (
            Kind.ENDPOINTSLICES,
            endpoint_slice(
                "web-6",
                "web",
                address_type="IPv6",
                addresses=["fd00::1", "fd00::2"],
                hostnames={"fd00::2": "web-1"},
            ),
            api.EndpointSlice,
        ),
    )
    ptr = 12
    reverse = ipaddress.ip_address("fd00::1").reverse_pointer + "."
    assert table.decide_text(reverse, ptr) is None  # ip6.arpa is not one of this table's zones
    table = AnswerTable(
        KubernetesConfig(zones=("cluster.local.", "ip6.arpa.")),
        table.model,
        own_addresses=("127.0.0.1",),
    )
    table.deferring = False
    table.rebuild()
    for name, target in ((reverse, "fd00--1.web" + S), ("2" + reverse[1:], "web-1.web" + S)):
        answer = table.decide_text(name, ptr)
        assert answer is not None and answer.answer, name
        assert [name_to_text(r[3][0]) for r in answer.answer] == [target]


def test_pod_names_kept_only_when_asked() -> None:
    data = endpoint_slice("web-a", "web", addresses=["10.0.0.1"])
    data["endpoints"][0]["targetRef"] = {"kind": "Pod", "name": "web-0"}
    for keep, expected in ((False, None), (True, "web-0")):
        model = ClusterModel(kinds={Kind.ENDPOINTSLICES}, pod_names=keep)
        model.replace_all(Kind.ENDPOINTSLICES, [msgspec.convert(data, api.EndpointSlice)])
        (endpoint,) = model.endpoints("default", "web")
        assert endpoint.pod_name == expected


@pytest.mark.parametrize(
    ("fallthrough", "zone", "may"),
    [
        (None, "cluster.local.", False),
        ((), "cluster.local.", True),  # `fallthrough`: every name
        (("in-addr.arpa.", "ip6.arpa."), "cluster.local.", False),  # the standard Corefile
        (("in-addr.arpa.",), "in-addr.arpa.", True),
        (("local.",), "cluster.local.", True),  # a parent zone
        (("x.cluster.local.",), "cluster.local.", True),  # a part of the zone
        ((".",), "cluster.local.", True),
        (("example.org.",), "cluster.local.", False),
        (("cluster.local.",), ".", True),
    ],
)
def test_which_zones_may_fall_through(
    fallthrough: tuple[str, ...] | None, zone: str, may: bool
) -> None:
    assert answers._may_fall_through(fallthrough, zone) is may


@pytest.mark.parametrize(
    ("fallthrough", "on_the_wire"),
    [
        (("in-addr.arpa.", "ip6.arpa."), True),
        ((), False),
        (("cluster.local.",), False),
    ],
)
def test_negative_with_fallthrough(fallthrough: tuple[str, ...], on_the_wire: bool) -> None:
    """The standard Corefile falls through for reverse zones only: the search-path NXDOMAINs
    of cluster.local stay on the fast path; a fallthrough covering the zone sends them to
    the next plugin."""
    from clusterdns.core.fallthrough import Fallthrough

    model = web_and_api().model
    table = AnswerTable(
        KubernetesConfig(
            zones=("cluster.local.", "in-addr.arpa."), fallthrough=Fallthrough(fallthrough)
        ),
        model,
        own_addresses=("127.0.0.1",),
    )
    table.deferring = False
    table.rebuild()
    name = "web.other.svc.cluster.local.default.svc.cluster.local."
    answer = decide(table, name)
    # None: the next plugin answers (the query falls through).
    assert (answer is not None and answer.rcode == NXDOMAIN) is on_the_wire


@pytest.mark.parametrize(
    ("targets", "asked", "expected"),
    [
        # An ExternalName naming itself: its CNAME once.
        ({"a": "a"}, "a", ["a"]),
        # Two that name each other: each CNAME once, from either end.
        ({"a": "b", "b": "a"}, "a", ["a", "b"]),
        ({"a": "b", "b": "a"}, "b", ["b", "a"]),
        # A chain into a ClusterIP Service: followed to the address.
        ({"a": "b", "b": "c"}, "a", ["a", "b", "c"]),
    ],
    ids=["self", "pair from a", "pair from b", "chain"],
)
def test_external_name_loops_answer_each_cname_once(
    targets: dict[str, str], asked: str, expected: list[str]
) -> None:
    """CoreDNS stops following ExternalNames at the first CNAME it already has."""
    objs: list[tuple[Kind, dict[str, Any], type[Any]]] = [
        (
            Kind.SERVICES,
            service(name, type="ExternalName", external_name=target + S, ports=()),
            api.Service,
        )
        for name, target in targets.items()
    ]
    objs.append((Kind.SERVICES, service("c", cluster_ip="10.96.0.9"), api.Service))
    answer = decide(table_with(*objs), asked + S)
    assert answer is not None and answer.rcode == NOERROR
    owners = [name_to_text(owner).split(".")[0] for owner, _type, _ttl, _rdata in answer.answer]
    assert owners == expected
