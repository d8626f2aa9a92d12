"""clusterdns env against the demo cluster: the variables written from kubelet's rules
(getServiceEnvVarMap, envvars.FromServices), Services in name order."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.helpers.kubeapi import KubeAPIServer

from .conftest import DEMO, Run, outside_a_pod, write_manifests

KUBERNETES = """\
KUBERNETES_SERVICE_HOST=10.96.0.1
KUBERNETES_SERVICE_PORT=443
KUBERNETES_SERVICE_PORT_HTTPS=443
KUBERNETES_PORT=tcp://10.96.0.1:443
KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443
KUBERNETES_PORT_443_TCP_PROTO=tcp
KUBERNETES_PORT_443_TCP_PORT=443
KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1
"""

# default: demoapp-svc, echo (its IPv4 ClusterIP is the primary), kubernetes,
# mysql-service; not web (headless) nor search (ExternalName).
DEFAULT = (
    """\
DEMOAPP_SVC_SERVICE_HOST=10.98.151.232
DEMOAPP_SVC_SERVICE_PORT=80
DEMOAPP_SVC_SERVICE_PORT_HTTP=80
DEMOAPP_SVC_PORT=tcp://10.98.151.232:80
DEMOAPP_SVC_PORT_80_TCP=tcp://10.98.151.232:80
DEMOAPP_SVC_PORT_80_TCP_PROTO=tcp
DEMOAPP_SVC_PORT_80_TCP_PORT=80
DEMOAPP_SVC_PORT_80_TCP_ADDR=10.98.151.232
ECHO_SERVICE_HOST=10.96.200.20
ECHO_SERVICE_PORT=8080
ECHO_SERVICE_PORT_HTTP=8080
ECHO_PORT=tcp://10.96.200.20:8080
ECHO_PORT_8080_TCP=tcp://10.96.200.20:8080
ECHO_PORT_8080_TCP_PROTO=tcp
ECHO_PORT_8080_TCP_PORT=8080
ECHO_PORT_8080_TCP_ADDR=10.96.200.20
"""
    + KUBERNETES
    + """\
MYSQL_SERVICE_SERVICE_HOST=10.96.162.44
MYSQL_SERVICE_SERVICE_PORT=3306
MYSQL_SERVICE_SERVICE_PORT_MYSQL=3306
MYSQL_SERVICE_PORT=tcp://10.96.162.44:3306
MYSQL_SERVICE_PORT_3306_TCP=tcp://10.96.162.44:3306
MYSQL_SERVICE_PORT_3306_TCP_PROTO=tcp
MYSQL_SERVICE_PORT_3306_TCP_PORT=3306
MYSQL_SERVICE_PORT_3306_TCP_ADDR=10.96.162.44
"""
)

# kube-system: kube-dns, whose first port (dns, 53/UDP) gives _SERVICE_PORT and _PORT,
# then the master service from default.
KUBE_SYSTEM = (
    """\
KUBE_DNS_SERVICE_HOST=10.96.0.10
KUBE_DNS_SERVICE_PORT=53
KUBE_DNS_SERVICE_PORT_DNS=53
KUBE_DNS_SERVICE_PORT_DNS_TCP=53
KUBE_DNS_SERVICE_PORT_METRICS=9153
KUBE_DNS_PORT=udp://10.96.0.10:53
KUBE_DNS_PORT_53_UDP=udp://10.96.0.10:53
KUBE_DNS_PORT_53_UDP_PROTO=udp
KUBE_DNS_PORT_53_UDP_PORT=53
KUBE_DNS_PORT_53_UDP_ADDR=10.96.0.10
KUBE_DNS_PORT_53_TCP=tcp://10.96.0.10:53
KUBE_DNS_PORT_53_TCP_PROTO=tcp
KUBE_DNS_PORT_53_TCP_PORT=53
KUBE_DNS_PORT_53_TCP_ADDR=10.96.0.10
KUBE_DNS_PORT_9153_TCP=tcp://10.96.0.10:9153
KUBE_DNS_PORT_9153_TCP_PROTO=tcp
KUBE_DNS_PORT_9153_TCP_PORT=9153
KUBE_DNS_PORT_9153_TCP_ADDR=10.96.0.10
"""
    + KUBERNETES
)

# shared: queue, whose ClusterIP the manifests source allocates (the README's 10.103.75.49).
SHARED = (
    KUBERNETES
    + """\
QUEUE_SERVICE_HOST=10.103.75.49
QUEUE_SERVICE_PORT=5672
QUEUE_SERVICE_PORT_AMQP=5672
QUEUE_PORT=tcp://10.103.75.49:5672
QUEUE_PORT_5672_TCP=tcp://10.103.75.49:5672
QUEUE_PORT_5672_TCP_PROTO=tcp
QUEUE_PORT_5672_TCP_PORT=5672
QUEUE_PORT_5672_TCP_ADDR=10.103.75.49
"""
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["-n", "default"], DEFAULT, id="default: its Services, headless and ExternalName left out"),
        pytest.param(["-n", "kube-system"], KUBE_SYSTEM, id="kube-system: kube-dns and the master service"),
        pytest.param(["-n", "shared"], SHARED, id="shared: queue and the master service"),
        pytest.param(["-n", "default", "--no-service-links"], KUBERNETES, id="enableServiceLinks false: the master service only"),
        pytest.param(["-n", "empty"], KUBERNETES, id="a namespace without Services: the master service"),
    ],
)  # fmt: skip
def test_demo_cluster(run: Run, argv: list[str], expected: str) -> None:
    result = run("env", *argv, "--manifests", str(DEMO))
    assert result.code == 0, result.err
    assert result.out == expected


def test_default_source_is_the_built_in_corefile(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("env")
    assert result.code == 0, result.err
    assert result.out == DEFAULT


PODS = """\
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}
---
apiVersion: v1
kind: Service
metadata: {name: my-api, namespace: team}
spec:
  clusterIP: fd00:10:96::5
  ports: [{port: 8443, protocol: TCP}, {name: grpc-web, port: 9090, protocol: TCP},
          {name: stats, port: 8125, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: other}
spec: {clusterIP: 10.96.7.7, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: linked, namespace: team}
spec: {containers: [{name: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: unlinked, namespace: team}
spec: {enableServiceLinks: false, containers: [{name: app}]}
"""

MY_API = """\
MY_API_SERVICE_HOST=fd00:10:96::5
MY_API_SERVICE_PORT=8443
MY_API_SERVICE_PORT_GRPC_WEB=9090
MY_API_SERVICE_PORT_STATS=8125
MY_API_PORT=tcp://[fd00:10:96::5]:8443
MY_API_PORT_8443_TCP=tcp://[fd00:10:96::5]:8443
MY_API_PORT_8443_TCP_PROTO=tcp
MY_API_PORT_8443_TCP_PORT=8443
MY_API_PORT_8443_TCP_ADDR=fd00:10:96::5
MY_API_PORT_9090_TCP=tcp://[fd00:10:96::5]:9090
MY_API_PORT_9090_TCP_PROTO=tcp
MY_API_PORT_9090_TCP_PORT=9090
MY_API_PORT_9090_TCP_ADDR=fd00:10:96::5
MY_API_PORT_8125_UDP=udp://[fd00:10:96::5]:8125
MY_API_PORT_8125_UDP_PROTO=udp
MY_API_PORT_8125_UDP_PORT=8125
MY_API_PORT_8125_UDP_ADDR=fd00:10:96::5
"""


def test_pods_and_their_service_links(run: Run, tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "cluster", PODS)
    linked = run("env", "-n", "team", "--pod", "linked", "--manifests", folder)
    assert linked.out == KUBERNETES + MY_API
    unlinked = run("env", "-n", "team", "--pod", "unlinked", "--manifests", folder)
    assert unlinked.out == KUBERNETES
    missing = run("env", "-n", "team", "--pod", "nope", "--manifests", folder)
    assert missing.code == 1 and "no pod team/nope" in missing.err


def test_own_kubernetes_service_shadows_the_master_one(run: Run, tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "cluster", PODS)
    result = run("env", "-n", "other", "--manifests", folder)
    assert result.out.splitlines()[0] == "KUBERNETES_SERVICE_HOST=10.96.7.7"
    assert "KUBERNETES_SERVICE_PORT_HTTPS" not in result.out


def test_unreachable_api_names_the_endpoint(run: Run) -> None:
    result = run("env", "--endpoint", "http://127.0.0.1:9")
    assert result.code == 1
    assert result.err.startswith(
        "clusterdns env: cannot reach the kubernetes api at http://127.0.0.1:9"
    )


def test_missing_manifests_folder(run: Run, tmp_path: Path) -> None:
    result = run("env", "--manifests", str(tmp_path / "nope"))
    assert result.code == 1
    assert f"manifests {tmp_path / 'nope'}: not a directory" in result.err


async def test_from_the_api_server() -> None:
    """The same answer listed from an API server (one LIST per kind, no watch)."""
    async with KubeAPIServer() as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        api.create({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
        })  # fmt: skip
        api.create({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "search", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"},
        })  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clusterdns.cli", "env", "--endpoint", api.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=outside_a_pod(),
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert out.decode() == KUBERNETES
        assert sum(api.watch_requests.values()) == 0
        assert api.list_requests["/api/v1/services"] == 1


def test_in_a_pod_without_a_corefile_the_service_account(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Corefile anywhere but KUBERNETES_SERVICE_HOST set: the Pod's service account (here
    without its files, so the error says which)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "9")
    result = run("env")
    assert result.code == 1
    assert "cannot reach the kubernetes api" in result.err
    assert "ca.crt" in result.err


def test_a_mounted_pod_corefile_is_read(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clusterdns.tools import cluster

    corefile = tmp_path / "mounted"
    corefile.write_text(
        ".:53 {\n    kubernetes cluster.local {\n        endpoint http://127.0.0.1:9\n    }\n}\n"
    )
    monkeypatch.setattr(cluster, "POD_COREFILE", str(corefile))
    monkeypatch.chdir(tmp_path)
    result = run("env")
    assert result.code == 1
    assert "cannot reach the kubernetes api at http://127.0.0.1:9" in result.err
