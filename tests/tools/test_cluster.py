"""Loading the cluster for the toolbox: what the manifests source fills in, as the API
server would, reaches the commands (the slim DNS model does not keep it)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from clusterdns.sources.model import Kind
from clusterdns.tools.cluster import load_from_args


def test_node_ports_are_allocated_as_the_api_server_would(tmp_path: Path) -> None:
    (tmp_path / "svc.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: given, namespace: x}
            spec: {type: NodePort, clusterIP: 10.96.0.5, ports: [{port: 80, nodePort: 30080}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lb, namespace: x}
            spec:
              type: LoadBalancer
              clusterIP: 10.96.0.6
              ports: [{name: a, port: 80}, {name: b, port: 81, protocol: UDP, nodePort: 30081}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: plain, namespace: x}
            spec: {clusterIP: 10.96.0.7, ports: [{port: 80}]}
            """
        )
    )

    def node_ports() -> dict[str, list[int]]:
        args = argparse.Namespace(manifests=str(tmp_path), service_cidr=None, kubeconfig=None,
                                  endpoint=None, conf=None, context=None)  # fmt: skip
        state = load_from_args(args)
        services = state.objects[Kind.SERVICES]
        return {name: [p.node_port for p in svc.spec.ports] for (_, name), svc in services.items()}

    first = node_ports()
    assert first["given"] == [30080]
    assert first["plain"] == [0]  # a ClusterIP Service has none
    allocated, kept = first["lb"]
    assert kept == 30081
    assert 30000 <= allocated <= 32767 and allocated not in (30080, 30081)
    assert node_ports() == first  # deterministic
