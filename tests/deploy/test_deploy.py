"""deploy/: the Kubernetes objects, the Dockerfile and the Grafana dashboard.

Every YAML document parses; the kube-dns Service and the RBAC rules are what cluster DNS
needs; the ConfigMap's Corefile parses with our parser and serves the demo cluster when its
kubernetes block is pointed at it; kubectl's client-side dry run accepts the folder; every
metric the dashboard charts is one we export.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.rdatatype
import pytest
import yaml
from aiohttp import web

from clusterdns.corefile import parse
from clusterdns.plugins.kubernetes.setup import parse_config
from clusterdns.sources.kube.reflector import RESOURCE_PATHS
from tests.helpers.dnsclient import query
from tests.helpers.server import running_server

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
DEMO = ROOT / "examples" / "cluster"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def test_every_document_parses_and_names_itself() -> None:
    kinds = sorted(d["kind"] for d in documents())
    assert kinds == [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service",
        "ServiceAccount",
    ]  # fmt: skip
    for doc in documents():
        assert doc["apiVersion"] and doc["metadata"]["name"]


def test_kube_dns_service() -> None:
    svc = find("Service", "kube-dns")
    assert svc["metadata"]["namespace"] == "kube-system"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    ports = {(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]}
    assert ports == {("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}


def test_rbac_lists_and_watches_what_the_plugin_reads() -> None:
    role = find("ClusterRole", "system:clusterdns")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # Every collection a source may watch (the reflector's paths: /api/v1/<resource> or
    # /apis/<group>/<version>/<resource>), ServiceImports for multicluster zones included.
    wanted = set()
    for path in RESOURCE_PATHS.values():
        parts = path.strip("/").split("/")
        wanted.add(("", parts[2]) if parts[0] == "api" else (parts[1], parts[3]))
    assert ("multicluster.x-k8s.io", "serviceimports") in wanted
    for group, resource in wanted:
        for verb in ("list", "watch"):
            assert (group, resource, verb) in granted
    assert {verb for _, _, verb in granted} == {"list", "watch"}  # read-only
    binding = find("ClusterRoleBinding", "system:clusterdns")
    assert binding["roleRef"]["name"] == "system:clusterdns"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "clusterdns", "namespace": "kube-system"}
    ]
    assert find("ServiceAccount", "clusterdns")["metadata"]["namespace"] == "kube-system"


def test_deployment() -> None:
    deployment = find("Deployment", "clusterdns")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["template"]["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert pod["serviceAccountName"] == "clusterdns"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["dnsPolicy"] == "Default"
    anti = pod["affinity"]["podAntiAffinity"]
    assert (
        anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"]
        == "kubernetes.io/hostname"
    )
    (container,) = pod["containers"]
    assert container["args"] == ["serve", "--conf", "/etc/coredns/Corefile"]
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/ready",
        "port": 8181,
        "scheme": "HTTP",
    }
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/health",
        "port": 8080,
        "scheme": "HTTP",
    }
    assert "NET_BIND_SERVICE" in container["securityContext"]["capabilities"]["add"]
    assert container["resources"]["requests"]["memory"]
    ports = {(p["name"], p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert ports == {("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] == "clusterdns"
    assert container["volumeMounts"][0]["mountPath"] == "/etc/coredns"


def corefile_text() -> str:
    text = find("ConfigMap", "clusterdns")["data"]["Corefile"]
    assert isinstance(text, str)
    return text


def test_configmap_corefile_parses_with_our_parser() -> None:
    corefile = parse(corefile_text(), filename="02-configmap.yaml:Corefile")
    (block,) = corefile.blocks
    names = [d.name for d in block.directives]
    assert names == [
        "errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop",
        "reload", "loadbalance",
    ]  # fmt: skip
    (kubernetes,) = [d for d in block.directives if d.name == "kubernetes"]
    config = parse_config(kubernetes, ["."])
    assert config.primary_zone.rstrip(".") == "cluster.local"
    assert config.endpoint is None and config.kubeconfig is None  # the service account


async def test_configmap_corefile_serves_the_demo_cluster(tmp_path: Path) -> None:
    """The ConfigMap's Corefile, with its kubernetes block reading the demo manifests
    instead of the API, HTTP endpoints on loopback and forward aimed at a closed port."""
    text = corefile_text()
    text = text.replace("pods insecure", f"pods insecure\n       manifests {DEMO}")
    text = re.sub(r"(?m)^(\s*)(health|ready)(\s*\{)?$", r"\1\2 127.0.0.1:0\3", text)
    text = text.replace("prometheus :9153", "prometheus 127.0.0.1:0")
    text = text.replace("forward . /etc/resolv.conf", "forward . 127.0.0.1:9")
    async with running_server(text, tmp_path=tmp_path) as server:
        for name, address in [
            ("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10"),
            ("mysql-service.default.svc.cluster.local.", "10.96.162.44"),
        ]:
            reply = await query(server.port, name, "A")
            assert [rr.address for rrset in reply.answer for rr in rrset] == [address]
        reply = await query(server.port, "44.162.96.10.in-addr.arpa.", dns.rdatatype.PTR)
        assert reply.answer[0][0].target.to_text() == "mysql-service.default.svc.cluster.local."


# --- kubectl apply --dry-run=client ------------------------------------------------------
#
# Even a client-side dry run asks the API server which resources exist (discovery) and
# whether each object exists already. This stub answers just that: discovery for the kinds
# of deploy/kubernetes, and 404 for every object.

_RESOURCES = {
    "v1": [("serviceaccounts", "ServiceAccount", True), ("configmaps", "ConfigMap", True),
           ("services", "Service", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
}  # fmt: skip
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": n, "singularName": "", "namespaced": ns, "kind": k, "verbs": VERBS}
            for n, k, ns in _RESOURCES[group_version]
        ],
    }


async def _handle(request: web.Request) -> web.Response:
    path = request.path.rstrip("/")
    if path == "/api":
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
    if path == "/apis":
        groups = [
            {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
             "preferredVersion": {"groupVersion": gv, "version": "v1"}}
            for gv in _RESOURCES
            if "/" in gv
        ]  # fmt: skip
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    for group_version in _RESOURCES:
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        if path == prefix:
            return web.json_response(_resource_list(group_version))
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
              "code": 404, "message": f"{path} not found"}  # fmt: skip
    return web.json_response(status, status=404)


@pytest.fixture
async def discovery() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", _handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_kubectl_dry_run(discovery: str, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian: kubernetes-client; scripts/install-deps)")
    config = tmp_path / "kubeconfig"  # empty: nothing of the user's is read
    config.write_text("apiVersion: v1\nkind: Config\n")
    proc = await asyncio.create_subprocess_exec(
        kubectl, "--server", discovery, "--kubeconfig", str(config),
        "apply", "--dry-run=client", "--validate=false", "-f", str(KUBERNETES),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    created = sorted(line.split()[0] for line in out.decode().splitlines())
    assert created == sorted([
        "serviceaccount/clusterdns", "clusterrole.rbac.authorization.k8s.io/system:clusterdns",
        "clusterrolebinding.rbac.authorization.k8s.io/system:clusterdns",
        "configmap/clusterdns", "deployment.apps/clusterdns", "service/kube-dns",
    ])  # fmt: skip


# --- Dockerfile and dashboard ------------------------------------------------------------


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"pip install .*\.", text)
    assert re.search(r"^USER \S+", text, re.M)
    assert '"serve", "--conf", "/etc/coredns/Corefile"' in text


_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def _exported_names() -> set[str]:
    """Metric names declared in our code, and prometheus_client's process collector's."""
    names = {
        "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
        "process_virtual_memory_bytes", "process_start_time_seconds", "process_max_fds",
    }  # fmt: skip
    for path in (ROOT / "src" / "clusterdns").rglob("*.py"):
        names.update(re.findall(r'"((?:coredns|clusterdns)_[a-z_]+)"', path.read_text()))
    return names


def test_dashboard_charts_only_metrics_we_export() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "clusterdns.json").read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if "expr" in target
    ]
    assert len(exprs) >= 8
    exported = _exported_names()
    used = set()
    for expr in exprs:
        used.update(re.findall(r"\b((?:coredns|clusterdns|process)_[a-z_]+)", expr))
    assert used
    for name in used:
        base = name
        for suffix in _SUFFIXES:
            if base.endswith(suffix) and base not in exported:
                base = base.removesuffix(suffix)
        assert name in exported or base in exported, f"{name} is not a metric we export"
    # The CoreDNS dashboard staples: requests, responses by rcode, latency, cache, forward.
    for staple in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                   "coredns_dns_request_duration_seconds_bucket", "coredns_cache_hits_total",
                   "coredns_forward_requests_total"):  # fmt: skip
        assert staple in used
