"""clusterdns vservers: the IPVS table kube-proxy would program, against tables written by
hand from kube-proxy's rules and ipvsadm's output format (golden/*)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clusterdns.tools.vservers import VirtualServer, sort_table

from .conftest import DEMO, Run, write_manifests

GOLDEN = Path(__file__).parent / "golden"
HEADER = "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_golden_files_line_up_with_the_header() -> None:
    """The hand-written tables put each value under its column title, as printf does."""
    for name in ("vservers-demo.ipvsadm", "vservers-lb.ipvsadm"):
        for line in golden(name).splitlines():
            if line.startswith("  -> ") and line != HEADER:
                assert len(line) == 70, line
                for title in ("Forward", "Weight", "ActiveConn", "InActConn"):
                    column = HEADER.index(title)
                    assert line[column - 1] == " " and line[column] != " ", (title, line)


def test_demo_cluster(run: Run) -> None:
    """Every ClusterIP port, named targetPorts resolved (demoapp-svc 80 → 8080), the
    headless web and the ExternalName search left out, TCP before UDP, IPv6 last."""
    result = run("vservers", "--manifests", str(DEMO))
    assert result.code == 0, result.err
    assert result.out == golden("vservers-demo.ipvsadm")
    assert "give --node-ip" in result.err  # mysql-service is a NodePort Service


def test_default_source_is_the_built_in_corefile(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("vservers")
    assert result.out == golden("vservers-demo.ipvsadm")


def test_restore_format_one_service(run: Run) -> None:
    result = run("vservers", "--service", "kube-system/kube-dns", "--scheduler", "lc",
                 "--format", "ipvsadm-restore", "--manifests", str(DEMO))  # fmt: skip
    assert result.code == 0, result.err
    assert result.out == golden("vservers-kube-dns.restore")


LB = """\
apiVersion: v1
kind: Service
metadata: {name: demoapp-lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.5.5
  externalIPs: [1.2.3.4]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: web, nodePort: 30080}]
status:
  loadBalancer: {ingress: [{ip: 172.18.0.100}, {hostname: lb.example.com}]}
---
apiVersion: v1
kind: Pod
metadata: {name: demo-a, namespace: default, labels: {app: demo}}
spec: {containers: [{name: app, ports: [{name: web, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.1.5, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: demo-b, namespace: default, labels: {app: demo}}
spec: {containers: [{name: app, ports: [{name: web, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.2.6, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec: {clusterIP: 10.96.6.6, sessionAffinity: ClientIP, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: default}
spec:
  clusterIP: 10.96.9.9
  ports: [{name: t, port: 9999, protocol: TCP}, {name: s, port: 9999, protocol: SCTP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed-1, namespace: default, labels: {kubernetes.io/service-name: mixed}}
addressType: IPv4
endpoints: [{addresses: [10.244.3.3]}]
ports: [{name: s, port: 9999, protocol: SCTP}]
"""


def test_external_load_balancer_node_ports_and_affinity(run: Run, tmp_path: Path) -> None:
    """External IP, load-balancer IP and node port each get a virtual server, persistent
    for the Service's affinity timeout; the not-ready pod is no real server; a port no
    endpoint names has none; 172.18/192.168 sort before 1.2.3.4 and 10.x as in ipvsadm."""
    folder = write_manifests(tmp_path / "cluster", LB)
    result = run("vservers", "--node-ip", "192.168.49.2", "--manifests", folder)
    assert result.code == 0, result.err
    assert result.out == golden("vservers-lb.ipvsadm")


def test_restore_persistence_and_protocols(run: Run, tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "cluster", LB)
    result = run("vservers", "--format", "ipvsadm-restore", "--manifests", folder)
    assert result.out == (
        "-A -t 172.18.0.100:80 -s rr -p 600\n"
        "-a -t 172.18.0.100:80 -r 10.244.1.5:8080 -m -w 1\n"
        "-A -t 1.2.3.4:80 -s rr -p 600\n"
        "-a -t 1.2.3.4:80 -r 10.244.1.5:8080 -m -w 1\n"
        "-A -t 10.96.5.5:80 -s rr -p 600\n"
        "-a -t 10.96.5.5:80 -r 10.244.1.5:8080 -m -w 1\n"
        "-A -t 10.96.6.6:443 -s rr -p 10800\n"
        "-A -t 10.96.9.9:9999 -s rr\n"
        "-A --sctp-service 10.96.9.9:9999 -s rr\n"
        "-a --sctp-service 10.96.9.9:9999 -r 10.244.3.3:9999 -m -w 1\n"
    )


def test_node_port_allocated_by_the_manifests_source(run: Run) -> None:
    """mysql-service is a NodePort Service whose file gives no nodePort: the manifests
    source allocates one in 30000-32767, and the node address gets a virtual server for it
    (before the ClusterIP one: 192.168.x sorts before 10.x in ipvsadm)."""
    result = run("vservers", "--node-ip", "192.168.49.2", "--service", "default/mysql-service",
                 "--manifests", str(DEMO))  # fmt: skip
    assert result.code == 0, result.err
    lines = result.out.splitlines()[3:]
    match = re.fullmatch(r"TCP  192\.168\.49\.2:(\d+) rr", lines[0])
    assert match is not None and 30000 <= int(match.group(1)) <= 32767, lines
    assert lines[1].startswith("  -> 10.244.1.7:3306 ")
    assert lines[2] == "TCP  10.96.162.44:3306 rr"
    assert lines[3].startswith("  -> 10.244.1.7:3306 ")
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--service", "nope"], "--service wants NAMESPACE/NAME"),
        (["--service", "default/nope"], "no service default/nope"),
        (["--node-ip", "300.1.1.1"], "not an IP address"),
    ],
)
def test_bad_arguments(run: Run, argv: list[str], message: str) -> None:
    result = run("vservers", *argv, "--manifests", str(DEMO))
    assert result.code != 0
    assert message in result.err


def test_sort_is_ipvsadms_wrapping_compare() -> None:
    """ipvsadm compares addresses as a C int difference: within half the address space
    it is numeric, across it wraps (192.168.x before 10.x)."""
    servers = [
        VirtualServer("UDP", "10.0.0.1", 53),
        VirtualServer("TCP", "10.0.0.1", 80),
        VirtualServer("TCP", "192.168.0.1", 80),
        VirtualServer("TCP", "10.0.0.1", 8),
        VirtualServer("TCP", "::1", 80),
        VirtualServer("TCP", "10.0.0.2", 1),
    ]
    ordered = [(s.protocol, s.address, s.port) for s in sort_table(servers)]
    assert ordered == [
        ("TCP", "192.168.0.1", 80),
        ("TCP", "10.0.0.1", 8),
        ("TCP", "10.0.0.1", 80),
        ("TCP", "10.0.0.2", 1),
        ("UDP", "10.0.0.1", 53),
        ("TCP", "::1", 80),
    ]
