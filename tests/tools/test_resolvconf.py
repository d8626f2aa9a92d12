"""clusterdns resolv-conf against the demo cluster: expected files written from kubelet's
rules (pkg/kubelet/network/dns/dns.go), in containerd's layout (search, nameserver,
options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterdns.tools.resolvconf import (
    DNSConfig,
    merge_options,
    parse_dns_config,
    parse_resolv_conf,
    pod_dns,
)

from .conftest import DEMO, Run, write_manifests

HOST = """\
# the node's resolver
nameserver 192.168.1.1
nameserver 192.168.1.2
search old.example
search corp.example lab.example.
options edns0 timeout:2
"""


@pytest.fixture
def host(tmp_path: Path) -> str:
    path = tmp_path / "resolv.conf"
    path.write_text(HOST)
    return str(path)


CASES = [
    pytest.param(
        ["-n", "default"],
        "search default.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n",
        id="ClusterFirst default: cluster search then host search, only the kube-dns IP",
    ),
    pytest.param(
        ["-n", "shared"],
        "search shared.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n",
        id="ClusterFirst shared: the namespace leads the search list",
    ),
    pytest.param(
        ["-n", "default", "--dns-policy", "Default"],
        "search corp.example lab.example\n"
        "nameserver 192.168.1.1\n"
        "nameserver 192.168.1.2\n"
        "options edns0 timeout:2\n",
        id="Default: the host file as kubelet reads it (last search line, no trailing dot)",
    ),
    pytest.param(
        ["-n", "default", "--host-network"],
        "search corp.example lab.example\n"
        "nameserver 192.168.1.1\n"
        "nameserver 192.168.1.2\n"
        "options edns0 timeout:2\n",
        id="ClusterFirst on the host network falls back to Default",
    ),
    pytest.param(
        ["-n", "default", "--host-network", "--dns-policy", "ClusterFirstWithHostNet"],
        "search default.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n",
        id="ClusterFirstWithHostNet keeps cluster DNS on the host network",
    ),
    pytest.param(
        ["-n", "default", "--dns-policy", "None", "--dns-config",
         "{nameservers: [1.1.1.1], searches: [a.example], options: [{name: ndots, value: '2'}]}"],
        "search a.example\n"
        "nameserver 1.1.1.1\n"
        "options ndots:2\n",
        id="None: only dnsConfig",
    ),
    pytest.param(
        ["-n", "default", "--dns-config",
         "dnsConfig: {nameservers: [10.96.0.10, 8.8.8.8], searches: [cluster.local, x.example],"
         " options: [{name: ndots, value: '2'}, {name: edns0}]}"],
        "search default.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example"
        " x.example\n"
        "nameserver 10.96.0.10\n"
        "nameserver 8.8.8.8\n"
        "options ndots:2 edns0\n",
        id="dnsConfig merged: appended without duplicates, ndots overridden by name",
    ),
    pytest.param(
        ["-n", "default", "--cluster-dns", "10.0.0.10", "--cluster-domain", "k8s.example."],
        "search default.svc.k8s.example svc.k8s.example k8s.example corp.example lab.example\n"
        "nameserver 10.0.0.10\n"
        "options ndots:5\n",
        id="--cluster-dns and --cluster-domain as kubelet's flags",
    ),
    pytest.param(
        ["-n", "default", "--dns-policy", "Default", "--host-resolv", ""],
        "search .\n"
        "nameserver 127.0.0.1\n",
        id='Default with kubelet --resolv-conf "": localhost and search .',
    ),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_demo_cluster(run: Run, host: str, argv: list[str], expected: str) -> None:
    result = run("resolv-conf", *argv, "--host-resolv", host, "--manifests", str(DEMO))
    if "--host-resolv" in argv:  # the case's own value comes last and wins
        result = run("resolv-conf", *argv, "--manifests", str(DEMO))
    assert result.code == 0, result.err
    assert result.out == expected
    assert result.err == ""


def test_default_source_is_the_built_in_corefile(
    run: Run, host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./Corefile: the built-in one, serving the demo cluster
    result = run("resolv-conf", "-n", "default", "--host-resolv", host)
    assert result.code == 0, result.err
    assert result.out.splitlines()[1] == "nameserver 10.96.0.10"


def test_cluster_domain_from_the_corefile(run: Run, host: str, tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        f".:53 {{\n    kubernetes k8s.example in-addr.arpa {{\n        manifests {DEMO}\n    }}\n}}\n"
    )
    result = run("resolv-conf", "-n", "shared", "--host-resolv", host, "--conf", str(corefile))
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == (
        "search shared.svc.k8s.example svc.k8s.example k8s.example corp.example lab.example"
    )


def test_search_limit_32_domains(run: Run, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    domains = [f"d{i}.example" for i in range(40)]
    resolv.write_text("nameserver 192.168.1.1\nsearch " + " ".join(domains) + "\n")
    result = run("resolv-conf", "-n", "default", "--host-resolv", str(resolv),
                 "--manifests", str(DEMO))  # fmt: skip
    assert result.code == 0
    kept = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local", *domains[:29]]
    assert result.out.splitlines()[0] == "search " + " ".join(kept)
    assert result.err == (
        "warning: Search Line limits were exceeded, some search paths have been omitted, "
        f"the applied search line is: {' '.join(kept)}\n"
    )


def test_search_line_2048_characters() -> None:
    long = [("x" * 60) + f".d{i:02}.example" for i in range(30)]  # 72 characters each
    config, warnings = pod_dns(
        namespace="default", cluster_dns=["10.96.0.10"], host=DNSConfig(searches=long)
    )
    # 32 domains at most: the 3 cluster ones and 29 of these. The 3 cluster domains take
    # 25 + 17 + 13 characters and 2 blanks (57), each host domain 73 with its blank:
    # 27 of them make 2028 characters, 28 would make 2101 > 2048.
    assert config.searches[3:] == long[:27]
    assert len(" ".join(config.searches)) == 2028
    assert len(warnings) == 1 and warnings[0].startswith("Search Line limits were exceeded")


def test_search_path_longer_than_253_is_dropped() -> None:
    too_long = "a" * 250 + ".example"
    config, warnings = pod_dns(
        namespace="default",
        cluster_dns=["10.96.0.10"],
        host=DNSConfig(searches=["ok.example", too_long]),
    )
    assert config.searches[-1] == "ok.example"
    assert too_long not in config.searches
    assert warnings


def test_nameserver_limit_three(run: Run, host: str) -> None:
    result = run("resolv-conf", "-n", "default", "--host-resolv", host, "--manifests", str(DEMO),
                 "--cluster-dns", "10.96.0.10", "10.96.0.11",
                 "--dns-config", "{nameservers: [1.1.1.1, 8.8.8.8]}")  # fmt: skip
    assert result.code == 0
    servers = [line for line in result.out.splitlines() if line.startswith("nameserver")]
    assert servers == ["nameserver 10.96.0.10", "nameserver 10.96.0.11", "nameserver 1.1.1.1"]
    assert result.err == (
        "warning: Nameserver limits were exceeded, some nameservers have been omitted, "
        "the applied nameserver line is: 10.96.0.10 10.96.0.11 1.1.1.1\n"
    )


def test_no_kube_dns_falls_back_to_default(run: Run, host: str, tmp_path: Path) -> None:
    folder = write_manifests(
        tmp_path / "cluster",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\n"
        "spec: {clusterIP: 10.96.1.1, ports: [{port: 80}]}\n",
    )
    result = run("resolv-conf", "-n", "default", "--host-resolv", host, "--manifests", folder)
    assert result.code == 0
    assert result.out == (
        "search corp.example lab.example\n"
        "nameserver 192.168.1.1\n"
        "nameserver 192.168.1.2\n"
        "options edns0 timeout:2\n"
    )
    assert "kubelet does not have ClusterDNS IP configured" in result.err


def test_pod_dns_settings(run: Run, host: str, tmp_path: Path) -> None:
    folder = write_manifests(
        tmp_path / "cluster",
        """\
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec: {clusterIP: 10.96.0.10, ports: [{name: dns, port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Pod
metadata: {name: custom, namespace: team}
spec:
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [10.1.1.1]
    searches: [team.example]
    options: [{name: ndots, value: "1"}, {name: single-request-reopen}]
  containers: [{name: app}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: team}
spec: {hostNetwork: true, containers: [{name: app}]}
""",
    )
    result = run("resolv-conf", "-n", "team", "--pod", "custom", "--host-resolv", host,
                 "--manifests", folder)  # fmt: skip
    assert result.code == 0, result.err
    assert result.out == (
        "search team.example\nnameserver 10.1.1.1\noptions ndots:1 single-request-reopen\n"
    )
    result = run("resolv-conf", "-n", "team", "--pod", "hostnet", "--host-resolv", host,
                 "--manifests", folder)  # fmt: skip
    assert result.out.startswith("search corp.example lab.example\nnameserver 192.168.1.1\n")
    result = run("resolv-conf", "-n", "team", "--pod", "nope", "--manifests", folder)
    assert result.code == 1
    assert "no pod team/nope" in result.err


def test_unknown_namespace_warns(run: Run, host: str) -> None:
    result = run("resolv-conf", "-n", "nowhere", "--host-resolv", host, "--manifests", str(DEMO))
    assert result.code == 0
    assert "namespace nowhere does not exist" in result.err


def test_parse_resolv_conf() -> None:
    config = parse_resolv_conf(HOST)
    assert config.servers == ["192.168.1.1", "192.168.1.2"]
    assert config.searches == ["corp.example", "lab.example"]
    assert config.options == ["edns0", "timeout:2"]


def test_merge_options_overrides_by_name() -> None:
    options = parse_dns_config("options: [{name: ndots, value: '3'}, {name: rotate}]").options
    assert merge_options(["ndots:5", "timeout:2"], options or []) == [
        "ndots:3",
        "timeout:2",
        "rotate",
    ]


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", "{nameserver: [1.1.1.1]}", "{options: [{value: 2, name: [x]}]}"],
    ids=["not a mapping", "misspelt field", "bad option"],
)
def test_bad_dns_config(run: Run, text: str) -> None:
    result = run("resolv-conf", "--dns-config", text, "--manifests", str(DEMO))
    assert result.code == 1
    assert result.err.startswith("clusterdns resolv-conf: ")
