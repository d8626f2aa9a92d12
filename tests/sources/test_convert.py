"""API JSON → slim record conversions, table-driven."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clusterdns.sources.convert import (
    canonical_ip,
    to_endpoints,
    to_namespace,
    to_pod,
    to_service,
    to_slice_endpoints,
    to_slice_entries,
)
from clusterdns.sources.kube import objects as api
from clusterdns.sources.records import Endpoint, Namespace, Pod, Service, ServicePort
from tests.helpers.kubeapi import endpoint_slice, endpoints, namespace, pod, service


def decode(obj: dict[str, Any], type_: type[Any]) -> Any:
    """Through real JSON bytes, as the API client gets them."""
    return msgspec.json.decode(msgspec.json.encode(obj), type=type_)


HTTP = (ServicePort("http", 80, "TCP"),)

SERVICE_CASES = [
    pytest.param(
        service("web", cluster_ip="10.96.0.20"),
        Service("default", "web", "ClusterIP", ("10.96.0.20",), False, None, HTTP, False, ()),
        id="clusterIP only",
    ),
    pytest.param(
        service("web", cluster_ip="None", selector={"app": "web"}),
        Service("default", "web", "ClusterIP", (), True, None, HTTP, False, ()),
        id="clusterIP None → headless (the selector is not kept)",
    ),
    pytest.param(
        service(
            "dual",
            cluster_ip="10.96.0.21",
            cluster_ips=["10.96.0.21", "fd00:10:96:0:0::15"],
            labels={"b": "2", "a": "1"},
        ),
        Service(
            "default",
            "dual",
            "ClusterIP",
            ("10.96.0.21", "fd00:10:96::15"),
            False,
            None,
            HTTP,
            False,
            (("a", "1"), ("b", "2")),
        ),
        id="dual-stack clusterIPs, canonical IPv6, sorted labels",
    ),
    pytest.param(
        service("search", type="ExternalName", external_name="www.example.com.", ports=()),
        Service("default", "search", "ExternalName", (), False, "www.example.com", (), False, ()),
        id="ExternalName",
    ),
    pytest.param(
        service(
            "dns",
            "kube-system",
            cluster_ip="10.96.0.10",
            ports=[("dns", 53, "UDP")],
            publish_not_ready=True,
        ),
        Service(
            "kube-system",
            "dns",
            "ClusterIP",
            ("10.96.0.10",),
            False,
            None,
            (ServicePort("dns", 53, "UDP"),),
            True,
            (),
        ),
        id="publishNotReadyAddresses, UDP port",
    ),
    pytest.param(
        {"metadata": {"name": "bare", "namespace": "x"}, "spec": {"ports": [{"port": 8080}]}},
        Service(
            "x",
            "bare",
            "ClusterIP",
            (),
            False,
            None,
            (ServicePort("", 8080, "TCP"),),
            False,
            (),
        ),
        id="defaults: unnamed TCP port, no clusterIP",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), SERVICE_CASES)
def test_to_service(obj: dict[str, Any], expected: Service) -> None:
    assert to_service(decode(obj, api.Service)) == expected


def _ep(
    ip: str, ready: bool = True, hostname: str | None = None, ports: tuple[ServicePort, ...] = HTTP
) -> Endpoint:
    return Endpoint((ip,), ready, hostname, None, ports)


SLICE_CASES = [
    pytest.param(
        endpoint_slice(
            "web-a", "web", addresses=[("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)]
        ),
        ("web", (_ep("10.0.0.1"), _ep("10.0.0.2", ready=False), _ep("10.0.0.3"))),
        id="ready true/false/nil (nil → ready)",
    ),
    pytest.param(
        endpoint_slice(
            "web-6",
            "web",
            address_type="IPv6",
            addresses=["fd00:0:0::1"],
            hostnames={"fd00:0:0::1": "web-0"},
        ),
        ("web", (_ep("fd00::1", hostname="web-0"),)),
        id="IPv6 canonical, hostname",
    ),
    pytest.param(
        endpoint_slice("ext", "ext", address_type="FQDN", addresses=["db.example.com"]),
        ("ext", ()),
        id="FQDN slice → no endpoints",
    ),
    pytest.param(
        {
            "metadata": {"name": "orphan", "namespace": "default"},
            "endpoints": [{"addresses": ["10.0.0.9"]}],
        },
        (None, (Endpoint(("10.0.0.9",), True, None, None, ()),)),
        id="no service-name label, no ports",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), SLICE_CASES)
def test_to_slice_endpoints(
    obj: dict[str, Any], expected: tuple[str | None, tuple[Endpoint, ...]]
) -> None:
    assert to_slice_endpoints(decode(obj, api.EndpointSlice)) == expected


def test_slice_target_ref() -> None:
    obj = endpoint_slice("web-a", "web", addresses=["10.0.0.1"])
    obj["endpoints"][0].update(
        nodeName="node-1", targetRef={"kind": "Pod", "name": "web-0", "namespace": "default"}
    )
    _, (ep,) = to_slice_endpoints(decode(obj, api.EndpointSlice))
    assert ep.pod_name == "web-0"
    # Stored without Pod names (no endpoint_pod_names): a bare IP.
    assert to_slice_entries(decode(obj, api.EndpointSlice), pod_names=False)[2] == ("10.0.0.1",)
    obj["endpoints"][0]["targetRef"]["kind"] = "Node"
    _, (ep,) = to_slice_endpoints(decode(obj, api.EndpointSlice))
    assert ep.pod_name is None


def test_legacy_endpoints_not_ready_addresses() -> None:
    obj = endpoints(
        "web", ready=["10.0.0.1"], not_ready=["10.0.0.2"], ports=[("http", 8080, "TCP")]
    )
    ports = (ServicePort("http", 8080, "TCP"),)
    assert to_endpoints(decode(obj, api.Endpoints)) == (
        _ep("10.0.0.1", ports=ports),
        _ep("10.0.0.2", ready=False, ports=ports),
    )


POD_CASES = [
    pytest.param(pod("a", ip="10.244.0.5"), Pod("default", "a", ("10.244.0.5",), True), id="ready"),
    pytest.param(
        pod("a", ip="10.244.0.5", ready=False),
        Pod("default", "a", ("10.244.0.5",), False),
        id="not ready",
    ),
    pytest.param(pod("a"), Pod("default", "a", (), True), id="no IP yet"),
    pytest.param(
        {
            "metadata": {"name": "a", "namespace": "n"},
            "status": {"phase": "Running", "podIP": "10.1.1.1"},
        },
        Pod("n", "a", ("10.1.1.1",), True),
        id="Running without conditions → ready",
    ),
    pytest.param(
        {
            "metadata": {"name": "a", "namespace": "n"},
            "status": {"phase": "Succeeded", "podIP": "10.1.1.1"},
        },
        Pod("n", "a", (), False),
        id="finished pod owns no IP",
    ),
    pytest.param(
        {
            "metadata": {"name": "a", "namespace": "n"},
            "status": {"podIP": "10.1.1.1", "podIPs": [{"ip": "10.1.1.1"}, {"ip": "fd00::0:1"}]},
        },
        Pod("n", "a", ("10.1.1.1", "fd00::1"), False),
        id="dual-stack podIPs",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), POD_CASES)
def test_to_pod(obj: dict[str, Any], expected: Pod) -> None:
    assert to_pod(decode(obj, api.Pod)) == expected


def test_to_namespace() -> None:
    assert to_namespace(decode(namespace("shared", {"team": "x"}), api.Namespace)) == Namespace(
        "shared", (("team", "x"),)
    )


def test_namespaces_and_ports_are_shared() -> None:
    a = to_service(decode(service("web", "some-namespace", cluster_ip="10.96.0.20"), api.Service))
    b = to_pod(decode(pod("p", "some-namespace", ip="10.96.0.20"), api.Pod))
    assert a.namespace is b.namespace
    assert a.ports is to_service(decode(service("api", cluster_ip="10.96.0.21"), api.Service)).ports


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::1", "::1"),
        ("0:0::1", "::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("FD00::A", "fd00::a"),
        ("nope", None),
    ],
)
def test_canonical_ip(text: str, expected: str | None) -> None:
    assert canonical_ip(text) == expected


def _with_external(obj: dict[str, Any], ips: list[str], ingress: list[dict[str, str]]) -> Any:
    if ips:
        obj["spec"]["externalIPs"] = ips
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": ingress}}
    return obj


EXTERNAL_CASES = [
    pytest.param([], [], (), id="neither → ()"),
    pytest.param(
        ["192.0.2.1", "2001:DB8::0:1"],
        [],
        ("192.0.2.1", "2001:db8::1"),
        id="externalIPs, canonical",
    ),
    pytest.param(
        ["192.0.2.1"],
        [{"ip": "198.51.100.7"}, {"hostname": "LB.Example.COM."}, {"ip": "192.0.2.1"}],
        ("192.0.2.1", "198.51.100.7", "lb.example.com"),
        id="externalIPs then ingress ip, else hostname; duplicates once",
    ),
    pytest.param(
        ["not-an-ip"],
        [{"ip": "198.51.100.7", "hostname": "x.test"}],
        ("198.51.100.7",),
        id="invalid IP dropped; ip wins over hostname",
    ),
]


@pytest.mark.parametrize(("ips", "ingress", "expected"), EXTERNAL_CASES)
def test_to_service_external(
    ips: list[str], ingress: list[dict[str, str]], expected: tuple[str, ...]
) -> None:
    obj = _with_external(service("lb", cluster_ip="10.96.0.30", type="LoadBalancer"), ips, ingress)
    assert to_service(decode(obj, api.Service)).external == expected
