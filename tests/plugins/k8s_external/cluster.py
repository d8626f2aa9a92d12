"""The cluster the k8s_external tests serve: CoreDNS's k8s_external test fixtures as API
objects (external IPs, load balancer ingress, a headless Service), plus a few more."""

from __future__ import annotations

from typing import Any

from tests.helpers.kubeapi import endpoint_slice, namespace, service

Obj = dict[str, Any]
HTTP = (("http", 80, "TCP"),)


def external(obj: Obj, ips: list[str] = [], ingress: list[dict[str, str]] = []) -> Obj:  # noqa: B006
    """``obj`` (a Service) with spec.externalIPs and status.loadBalancer.ingress."""
    if ips:
        obj["spec"]["externalIPs"] = list(ips)
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": list(ingress)}}
    return obj


def objects() -> list[Obj]:
    return [
        namespace("testns"),
        namespace("kube-system"),
        external(
            service("kube-dns", "kube-system", cluster_ip="10.0.0.10", ports=(("dns", 53, "UDP"),)),
            ["192.0.2.53", "2001:db8::53"],
        ),
        external(service("svc1", "testns", cluster_ip="10.0.0.1", ports=HTTP), ["1.2.3.4"]),
        external(service("svc6", "testns", cluster_ip="10.0.0.3", ports=HTTP), ["1:2::5"]),
        external(
            service("svc11", "testns", cluster_ip="10.0.0.4", ports=HTTP, type="LoadBalancer"),
            ingress=[{"ip": "2.3.4.5"}],
        ),
        external(
            service("svc12", "testns", cluster_ip="10.0.0.5", ports=HTTP, type="LoadBalancer"),
            ingress=[{"hostname": "dummy.hostname"}],
        ),
        external(
            service(
                "multi",
                "testns",
                cluster_ip="10.0.0.6",
                ports=(("http", 80, "TCP"), ("https", 443, "TCP")),
            ),
            ["10.1.1.1"],
        ),
        external(service("noports", "testns", cluster_ip="10.0.0.8", ports=()), ["5.6.7.8"]),
        service("plain", "testns", cluster_ip="10.0.0.7", ports=HTTP),
        endpoint_slice(
            "plain-a", "plain", "testns", addresses=["10.2.0.1"], hostnames={"10.2.0.1": "p0"}
        ),
        service("svc-headless", "testns", cluster_ip="None", ports=HTTP),
        endpoint_slice(
            "svc-headless-a",
            "svc-headless",
            "testns",
            addresses=["1.2.3.4", "1.2.3.5", ("1.2.3.6", False)],
            hostnames={"1.2.3.4": "endpoint-svc-0", "1.2.3.5": "endpoint-svc-1"},
        ),
    ]
