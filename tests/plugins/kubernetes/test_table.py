"""AnswerTable on its own: Service names answered from the record, what is kept, what goes."""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
import pytest

from clusterdns.plugins.kubernetes import answers
from clusterdns.plugins.kubernetes.answers import AnswerTable
from clusterdns.plugins.kubernetes.config import KubernetesConfig
from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import ClusterModel, Kind
from clusterdns.wire import Query, parse_query
from tests.helpers.dnsclient import make_query
from tests.helpers.kubeapi import endpoint_slice, service

S = ".default.svc.cluster.local."


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


def test_no_name_is_stored_per_service() -> None:
    table = web_and_api()
    assert all(not name.endswith(S) for name in table.names)  # only the apex names
    assert not table.templates and not table.views


def test_positive_replies_are_kept_until_their_service_changes() -> None:
    table = web_and_api()
    for name in ("web" + S, "10-0-0-1.web" + S, "api" + S, "_http._tcp.api" + S):
        qtype = "SRV" if name.startswith("_") else "A"
        assert table.lookup(q(name, qtype)) is not None
    assert len(table.templates) == 4
    assert set(table.templated) == {("default", "web"), ("default", "api")}
    table.model.apply(
        Kind.ENDPOINTSLICES,
        "MODIFIED",
        msgspec.convert(endpoint_slice("web-a", "web", addresses=["10.0.0.2"]), api.EndpointSlice),
    )
    # web's replies are gone, api's stay.
    assert set(table.template_service.values()) == {("default", "api")}
    assert table.lookup(q("10-0-0-1.web" + S)) is not None  # NXDOMAIN now, in the memo
    assert table.outcome("10-0-0-2.web" + S, 1) is not None


@pytest.mark.parametrize(
    ("name", "negative"),
    [
        ("nope" + S, True),  # no such Service
        ("web.other.svc.cluster.local.", True),
        ("a.b.c.web" + S, True),  # deeper than any Service name
        ("web" + S, False),
        ("bogus.web" + S, False),  # the Service exists: outcome() decides (NXDOMAIN)
        ("default.svc.cluster.local.", False),  # a namespace
        ("svc.cluster.local.", False),
        ("ns.dns.cluster.local.", False),
        ("x.dns.cluster.local.", True),
        ("1-2-3-4.default.pod.cluster.local.", False),
        ("foo.cluster.local.", True),
    ],
)
def test_negative_on_the_wire(name: str, negative: bool) -> None:
    assert (web_and_api().negative(q(name)) is not None) is negative


def test_kept_replies_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "TEMPLATE_LIMIT", 10)
    monkeypatch.setattr(answers, "VIEW_LIMIT", 10)
    table = table_with(
        *(
            (Kind.SERVICES, service(f"s{i}", cluster_ip=f"10.96.1.{i}"), api.Service)
            for i in range(30)
        )
    )
    for i in range(30):
        assert table.lookup(q(f"s{i}" + S)) is not None
    assert len(table.templates) <= 10 and len(table.template_service) == len(table.templates)
    assert sum(len(keys) for keys in table.templated.values()) == len(table.templates)
    assert len(table.views) <= 10


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
    assert table.outcome(reverse, ptr) is None  # ip6.arpa is not one of this table's zones
    table = AnswerTable(
        KubernetesConfig(zones=("cluster.local.", "ip6.arpa.")),
        table.model,
        own_addresses=("127.0.0.1",),
    )
    table.deferring = False
    table.rebuild()
    for name, target in ((reverse, "fd00--1.web" + S), ("2" + reverse[1:], "web-1.web" + S)):
        outcome = table.outcome(name, ptr)
        assert outcome is not None and outcome.answer, name
        assert [r.target.to_text() for r in outcome.answer[0]] == [target]


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
def test_negative_on_the_wire_with_fallthrough(
    fallthrough: tuple[str, ...], on_the_wire: bool
) -> None:
    """The standard Corefile falls through for reverse zones only: the search-path NXDOMAINs
    of cluster.local stay on the fast path; a fallthrough covering the zone sends them to
    outcome(), which lets the next plugin answer."""
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
    assert (table.negative(q(name)) is not None) is on_the_wire
