"""Generated clusters and questions: every reply the fast path writes on the wire equals
dnspython's rendering of the table's decision, whatever the cluster, letter case, EDNS and
size limit (truncation)."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.reversename
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterdns.core.fast import SLOW, FastReply
from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import ClusterModel, Kind
from clusterdns.wire import parse_query
from tests.helpers.kubeapi import endpoint_slice, namespace, service
from tests.helpers.oracle import oracle_for
from tests.plugins.kubernetes.cluster import check_zone_case

ZONE = "cluster.local."
NAMESPACES = ("default", "team-a", "kube-system")
QTYPES = ("A", "AAAA", "SRV", "PTR", "TXT", "NS", "SOA", "CNAME", "MX")


class _NoSource:
    async def run(self, model: ClusterModel) -> None:
        return None


@st.composite
def clusters(draw: st.DrawFn) -> list[tuple[Kind, dict[str, Any], type[Any]]]:
    objs: list[tuple[Kind, dict[str, Any], type[Any]]] = [
        (Kind.NAMESPACES, namespace(ns), api.Namespace) for ns in NAMESPACES
    ]
    count = draw(st.integers(1, 6))
    for i in range(count):
        ns = draw(st.sampled_from(NAMESPACES))
        name = f"s{i}"
        ports = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["http", "dns", "", "grpc"]),
                    st.integers(1, 65535),
                    st.sampled_from(["TCP", "UDP"]),
                ),
                max_size=3,
                unique_by=lambda p: (p[0], p[2]),
            )
        )
        kind = draw(st.sampled_from(["v4", "v6", "dual", "headless", "external", "none"]))
        if kind == "external":
            target = draw(st.sampled_from([f"s0.{NAMESPACES[0]}.svc.{ZONE}", "example.org."]))
            objs.append(
                (
                    Kind.SERVICES,
                    service(name, ns, type="ExternalName", external_name=target, ports=()),
                    api.Service,
                )
            )
            continue
        ips = {
            "v4": [f"10.96.0.{i + 1}"],
            "v6": [f"fd00::{i + 1}"],
            "dual": [f"10.96.0.{i + 1}", f"fd00::{i + 1}"],
            "headless": ["None"],
            "none": [],
        }[kind]
        objs.append(
            (
                Kind.SERVICES,
                service(
                    name,
                    ns,
                    cluster_ips=ips or None,
                    cluster_ip=ips[0] if ips else None,
                    ports=ports,
                    publish_not_ready=draw(st.booleans()),
                ),
                api.Service,
            )
        )
        endpoints = draw(st.integers(0, 4))
        addresses = [
            (f"10.1.{i}.{k + 1}", draw(st.sampled_from([True, False, None])))
            for k in range(endpoints)
        ]
        hostnames = {ip: f"h{k}" for k, (ip, _) in enumerate(addresses) if draw(st.booleans())}
        if endpoints:
            objs.append(
                (
                    Kind.ENDPOINTSLICES,
                    endpoint_slice(
                        f"{name}-x",
                        name,
                        ns,
                        addresses=addresses,
                        ports=[p for p in ports if p[0]] or (("http", 80, "TCP"),),
                        hostnames=hostnames,
                    ),
                    api.EndpointSlice,
                )
            )
    return objs


def names(objs: list[tuple[Kind, dict[str, Any], type[Any]]]) -> list[str]:
    """Names worth asking: every Service's own, its endpoints', its SRV and ENT names, the
    reverse of every address, the apex names, and near misses."""
    out = [
        ZONE,
        f"dns-version.{ZONE}",
        f"ns.dns.{ZONE}",
        f"svc.{ZONE}",
        f"pod.{ZONE}",
        f"x.dns.{ZONE}",
        f"1-2-3-4.default.pod.{ZONE}",
        f"default.svc.{ZONE}",
    ]
    for kind, obj, _ in objs:
        meta = obj["metadata"]
        if kind is Kind.SERVICES:
            base = f"{meta['name']}.{meta['namespace']}.svc.{ZONE}"
            out += [
                base,
                f"nope.{base}",
                f"_http._tcp.{base}",
                f"_tcp.{base}",
                f"_dns._udp.{base}",
                f"a.b.c.{base}",
                f"api.example.com.{meta['namespace']}.svc.{ZONE}",
            ]
            for ip in obj["spec"].get("clusterIPs", []):
                if ip != "None":
                    out.append(dns.reversename.from_address(ip).to_text())
        elif kind is Kind.ENDPOINTSLICES:
            service_name = meta["labels"]["kubernetes.io/service-name"]
            base = f"{service_name}.{meta['namespace']}.svc.{ZONE}"
            for ep in obj["endpoints"]:
                ip = ep["addresses"][0]
                out.append(dns.reversename.from_address(ip).to_text())
                label = ep.get("hostname") or ip.replace(".", "-")
                out.append(f"{label}.{base}")
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), objs=clusters())
def test_generated_clusters_and_questions(data: st.DataObject, objs: Any) -> None:
    model = ClusterModel(kinds={Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES})
    plugin = Kubernetes(
        KubernetesConfig(zones=(ZONE, "in-addr.arpa.", "ip6.arpa."), pods=PodMode.INSECURE),
        model,
        _NoSource(),
    )
    for kind in (Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES):
        model.replace_all(kind, [msgspec.convert(o, t) for k, o, t in objs if k is kind])
    plugin.table.deferring = False
    plugin.table.rebuild()
    candidates = names(objs)
    for _ in range(12):
        name = data.draw(st.sampled_from(candidates))
        cased = "".join(
            c.upper() if flip else c
            for c, flip in zip(
                name,
                data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name))),
                strict=True,
            )
        )
        qtype = data.draw(st.sampled_from(QTYPES))
        edns = data.draw(st.sampled_from([None, 512, 1232, 4096]))
        request = dns.message.make_query(
            cased, qtype, use_edns=edns is not None, payload=edns or 512
        )
        request.id = data.draw(st.integers(0, 65535))
        parsed = parse_query(request.to_wire())
        limit = data.draw(st.sampled_from([65535, 512, 120, 80]))
        limit = max(limit, parsed.question_end + 11)
        fast = plugin.answer_fast(parsed, limit, 4096)
        answer = plugin.table.decide(
            parsed.qname_lower, parsed.label_offsets, parsed.qtype, asked=parsed.qname_wire
        )
        assert answer is not None, name  # every generated name is in our zones
        if answer.chase is not None:
            assert fast is SLOW
            continue
        assert isinstance(fast, FastReply), (name, qtype)
        expected = oracle_for(parsed, answer, limit=limit)
        assert fast.wire == expected, (cased, qtype, edns, limit)
        assert fast.depends == answer.depends
        reply = dns.message.from_wire(fast.wire)
        assert reply.id == request.id and str(reply.question[0].name) == cased
        check_zone_case(reply, cased, (ZONE, "in-addr.arpa.", "ip6.arpa."))
        assert len(fast.wire) <= limit, "a reply never exceeds the client's limit"
        if reply.flags & dns.flags.TC:  # records were dropped: the whole answer would not fit
            whole = oracle_for(parsed, answer, limit=65535)
            assert len(whole) > limit
        assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
