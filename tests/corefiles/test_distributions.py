"""Corefiles that distributions ship, booted unchanged but for what a test must change.

Each file in data/ is a public distribution's Corefile (its first line names where it comes
from). The test replaces only what ties it to a real machine: the API access becomes a
``manifests`` line serving the demo cluster (examples/cluster), ports become loopback port 0
(every server block: running_server forces it; HTTP endpoints: 127.0.0.1:0), upstreams
(/etc/resolv.conf or public IPs) become a loopback responder, listen addresses 127.0.0.1,
files the distribution mounts (k3s's NodeHosts, its custom imports) files in a scratch
folder, and health's lameduck 100ms (so shutting the test server down takes no 20 s). Then
it asks a Service name, its reverse name and an external name, as a pod would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.rcode
import pytest

from tests.helpers.dnsclient import query
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.helpers.server import RunningServer, running_server

DATA = Path(__file__).parent / "data"
CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster"
# What the demo cluster holds (examples/cluster/mysql.yaml).
SERVICE = "mysql-service.default.svc.cluster.local."
SERVICE_IP = "10.96.162.44"
REVERSE = "44.162.96.10.in-addr.arpa."
EXTERNAL = "www.example.com."

pytestmark = pytest.mark.timeout(30)


@dataclass
class Distribution:
    file: str
    # Placeholders the distribution's installer fills in, and what they become here;
    # "{upstream}" and "{cluster_dns}" are loopback servers of the test.
    placeholders: dict[str, str] = field(default_factory=dict)
    # A NodeLocal DNSCache forwards the cluster zone to the cluster's DNS: a clusterdns
    # running kubeadm's Corefile stands in for it.
    cluster_dns: bool = False
    # Other names to ask (name, expected address): zone forwarders of the Corefile.
    also: tuple[tuple[str, str], ...] = ()
    # Names the Corefile answers NXDOMAIN itself (templates), without asking upstream.
    denied: tuple[str, ...] = ()
    # Files a user adds to the distribution's custom folder (AKS: coredns-custom).
    custom: dict[str, str] = field(default_factory=dict)
    reverse: bool = True


DISTRIBUTIONS = [
    Distribution("kubeadm.Corefile"),
    Distribution("k3s.Corefile", {"%{CLUSTER_DOMAIN}%": "cluster.local"}),
    Distribution("rke2.Corefile"),
    Distribution("kubespray.Corefile"),
    Distribution("kubespray-k8s-external.Corefile"),
    Distribution(
        "openshift.Corefile",
        also=(("www.foo.com.", DEFAULT_ADDRESS), ("api.example.buzz.com.", DEFAULT_ADDRESS)),
    ),
    Distribution("openshift-ipv6filter.Corefile"),
    Distribution(
        "aks.Corefile",
        # The search path of a node's resolv.conf leaking into cluster questions: four
        # labels or more under internal.cloudapp.net, and anything under reddog.
        also=(("vm1.internal.cloudapp.net.", DEFAULT_ADDRESS), ("db.corp.example.", "10.9.9.9")),
        denied=("www.example.com.default.svc.internal.cloudapp.net.", "x.reddog.microsoft.com."),
        # What AKS's documentation has users put in coredns-custom: a hosts override.
        custom={"hosts.override": "hosts {\n  10.9.9.9 db.corp.example\n  fallthrough\n}\n"},
    ),
    Distribution(
        "nodelocaldns.Corefile",
        {
            "__PILLAR__DNS__DOMAIN__": "cluster.local",
            "__PILLAR__LOCAL__DNS__": "127.0.0.1",
            "__PILLAR__DNS__SERVER__": "127.0.0.1",
            "__PILLAR__CLUSTER__DNS__": "{cluster_dns}",
            "__PILLAR__UPSTREAM__SERVERS__": "{upstream}",
        },
        cluster_dns=True,
    ),
]


def source_of(text: str) -> str:
    first = text.splitlines()[0]
    assert first.startswith("# "), "the first line names where the Corefile comes from"
    return first


_HTTP = re.compile(r"^(\s*)(health|ready|prometheus)\b[^{\n]*(\{?)\s*$", re.MULTILINE)
_FORWARD = re.compile(r"^(\s*forward\s+\S+)\s+([^{\n]+?)\s*(\{?)\s*$", re.MULTILINE)
_BIND = re.compile(r"^(\s*bind)\s+[^{\n]+$", re.MULTILINE)
_KUBERNETES = re.compile(r"^(\s*)kubernetes\b([^{\n]*?)\s*(\{?)\s*$", re.MULTILINE)
_LOOPBACK = re.compile(r"^127\.0\.0\.1:\d+$")
_LAMEDUCK = re.compile(r"^(\s*lameduck)\s+\S+\s*$", re.MULTILINE)


def adapt(text: str, *, upstream: str, scratch: Path) -> str:
    """The Corefile as this test can run it (see the module docstring)."""

    def http(m: re.Match[str]) -> str:
        return f"{m[1]}{m[2]} 127.0.0.1:0{' {' if m[3] else ''}"

    def forward(m: re.Match[str]) -> str:
        targets = m[2].split()
        if not all(_LOOPBACK.match(t) for t in targets):
            targets = [upstream]
        return f"{m[1]} {' '.join(targets)}{' {' if m[3] else ''}"

    def kubernetes(m: re.Match[str]) -> str:
        line = f"{m[1]}kubernetes{m[2]} {{\n{m[1]}    manifests {CLUSTER}"
        return line if m[3] else f"{line}\n{m[1]}}}"

    text = _HTTP.sub(http, text)
    text = _FORWARD.sub(forward, text)
    text = _BIND.sub(lambda m: f"{m[1]} 127.0.0.1", text)
    text = _KUBERNETES.sub(kubernetes, text)
    text = _LAMEDUCK.sub(lambda m: f"{m[1]} 100ms", text)
    # Files a distribution mounts into the pod.
    (scratch / "custom").mkdir(exist_ok=True)  # k3s's and AKS's (relative) imports
    (scratch / "NodeHosts").write_text("127.0.0.1 node-1\n")
    text = text.replace("/etc/coredns/NodeHosts", str(scratch / "NodeHosts"))
    return text.replace("/etc/coredns/custom/", f"{scratch / 'custom'}/")


def fill(text: str, placeholders: dict[str, str], values: dict[str, str]) -> str:
    for name, value in placeholders.items():
        text = text.replace(name, value.format(**values))
    return text


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    async with Responder() as responder:
        yield responder


async def synced(server: RunningServer) -> None:
    for plugin in server.app.instance.plugins():  # type: ignore[union-attr]
        model = getattr(plugin, "model", None)
        if plugin.name == "kubernetes" and model is not None:
            assert await model.wait_synced(5)


def params() -> list[object]:
    out: list[object] = []
    for dist in DISTRIBUTIONS:
        out.append(pytest.param(dist, id=dist.file.removesuffix(".Corefile")))
    return out


@pytest.mark.parametrize("dist", params())
async def test_distribution_corefile_boots_and_answers(
    dist: Distribution, upstream: Responder, tmp_path: Path
) -> None:
    text = (DATA / dist.file).read_text()
    source_of(text)
    values = {"upstream": f"127.0.0.1:{upstream.port}", "cluster_dns": ""}
    if dist.cluster_dns:
        kubeadm = adapt(
            (DATA / "kubeadm.Corefile").read_text(), upstream=values["upstream"], scratch=tmp_path
        )
        cluster_dir = tmp_path / "cluster-dns"
        cluster_dir.mkdir()
        async with running_server(kubeadm, tmp_path=cluster_dir) as cluster:
            await synced(cluster)
            values["cluster_dns"] = f"127.0.0.1:{cluster.port}"
            await _boot_and_ask(dist, text, values, upstream, tmp_path)
        return
    await _boot_and_ask(dist, text, values, upstream, tmp_path)


async def _boot_and_ask(
    dist: Distribution, text: str, values: dict[str, str], upstream: Responder, scratch: Path
) -> None:
    corefile = adapt(
        fill(text, dist.placeholders, values), upstream=values["upstream"], scratch=scratch
    )
    for name, content in dist.custom.items():
        (scratch / "custom" / name).write_text(content)
    async with running_server(corefile, tmp_path=scratch) as server:
        await synced(server)
        reply = await query(server.port, SERVICE, "A")
        assert reply.rcode() == dns.rcode.NOERROR, reply.to_text()
        assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [SERVICE_IP]
        if dist.reverse:
            reply = await query(server.port, REVERSE, "PTR")
            assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [SERVICE]
        asked = upstream.count()
        reply = await query(server.port, EXTERNAL, "A")
        assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [DEFAULT_ADDRESS]
        assert upstream.count() > asked, "the external name went to the (stand-in) upstream"
        for name, address in dist.also:
            reply = await query(server.port, name, "A")
            assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [address]
        for name in dist.denied:
            asked = upstream.count()
            reply = await query(server.port, name, "A")
            assert reply.rcode() == dns.rcode.NXDOMAIN, reply.to_text()
            assert upstream.count() == asked, f"{name} was answered without the upstream"


_SOURCE = re.compile(r"^# [^:]+: [\w.-]+/[\w.-]+ \S+")  # "# what: owner/repo path ..."


def test_every_data_file_is_booted_and_names_its_source() -> None:
    files = sorted(p.name for p in DATA.glob("*.Corefile"))
    assert files == sorted(d.file for d in DISTRIBUTIONS)
    for name in files:
        assert _SOURCE.match(source_of((DATA / name).read_text())), name


def test_adapt_keeps_the_corefile_but_its_machine_ties(tmp_path: Path) -> None:
    """What adapt() changes, and that it leaves the rest alone (kubeadm's Corefile)."""
    original = (DATA / "kubeadm.Corefile").read_text()
    adapted = adapt(original, upstream="127.0.0.1:5300", scratch=tmp_path)
    assert "forward . 127.0.0.1:5300 {" in adapted
    assert "prometheus 127.0.0.1:0" in adapted and "health 127.0.0.1:0 {" in adapted
    assert f"manifests {CLUSTER}" in adapted
    assert "ready 127.0.0.1:0" in adapted and "lameduck 100ms" in adapted
    lines = {line.strip() for line in adapted.splitlines()}
    kept = [line for line in original.splitlines() if line.strip() in lines]
    assert len(kept) >= len(original.splitlines()) - 6
