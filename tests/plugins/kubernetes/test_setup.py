"""Parsing the kubernetes directive: options, defaults, and errors that name the line."""

from __future__ import annotations

import pytest

from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.kubernetes.config import PodMode
from clusterdns.plugins.kubernetes.selector import LabelSelector, SelectorError
from clusterdns.plugins.kubernetes.setup import model_kinds, parse_config
from clusterdns.sources.model import Kind


def config_of(body: str, *, args: str = "", zones: tuple[str, ...] = ("cluster.local.",)):  # type: ignore[no-untyped-def]
    text = f"cluster.local {{\n    kubernetes {args} {{\n{body}\n    }}\n}}\n"
    directive = parse(text).blocks[0].directives[0]
    return parse_config(directive, zones)


def test_defaults() -> None:
    config = config_of("")
    assert config.zones == ("cluster.local.",)
    assert config.ttl == 5
    assert config.pods is PodMode.DISABLED
    assert config.startup_timeout == 5.0
    assert not config.fallthrough.enabled
    assert model_kinds(config) == {Kind.SERVICES, Kind.NAMESPACES, Kind.ENDPOINTSLICES}


def test_everything() -> None:
    config = config_of(
        """
        endpoint https://10.0.0.1:6443
        tls cert.pem key.pem ca.pem
        namespaces default kube-system
        labels app in (a, b), tier!=db
        namespace_labels team=x
        pods verified
        endpoint_pod_names
        ttl 30
        noendpoints
        fallthrough in-addr.arpa
        ignore empty_service
        startup_timeout 1m30s
        apiserver_qps 50
        apiserver_burst 100
        upstream
        """,
        args="Cluster.Local 10.0.0.0/24",
    )
    assert config.zones == ("cluster.local.", "0.0.10.in-addr.arpa.")
    assert config.endpoint == "https://10.0.0.1:6443"
    assert config.tls == ("cert.pem", "key.pem", "ca.pem")
    assert config.namespaces == {"default", "kube-system"}
    assert config.labels is not None and config.labels.matches({"app": "a"})
    assert config.namespace_labels is not None
    assert config.pods is PodMode.VERIFIED and config.endpoint_pod_names
    assert config.ttl == 30 and config.noendpoints and config.ignore_empty_service
    assert config.fallthrough.through("1.0.0.10.in-addr.arpa.")
    assert not config.fallthrough.through("x.cluster.local.")
    assert config.startup_timeout == 90.0
    assert (config.apiserver_qps, config.apiserver_burst) == (50.0, 100)
    assert model_kinds(config) == {Kind.SERVICES, Kind.NAMESPACES, Kind.PODS}
    assert config.primary_zone == "cluster.local."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            "multicluster clusterset.local",
            "not authoritative for the multicluster zone clusterset.local.",
            id="multicluster zone not ours",
        ),
        pytest.param("apiserver_max_inflight -1", "at least 0", id="max_inflight negative"),
        pytest.param("apiserver_max_inflight", "expected 1 argument", id="max_inflight arity"),
        pytest.param("transfer to *", "not supported", id="transfer"),
        pytest.param("ttl 3601", "ttl must be between 0 and 3600", id="ttl too big"),
        pytest.param("ttl x", "ttl must be an integer", id="ttl not a number"),
        pytest.param("pods sometimes", "invalid pods mode", id="pods mode"),
        pytest.param("labels a in (", "unbalanced", id="bad selector"),
        pytest.param("bogus 1", "unknown property 'bogus'", id="unknown property"),
        pytest.param("ignore everything", "unknown ignore", id="ignore"),
        pytest.param("endpoint 10.0.0.1", "http:// or https://", id="endpoint without scheme"),
        pytest.param("tls a b", "expected 3 arguments", id="tls arity"),
        pytest.param("startup_timeout soon", "invalid duration", id="startup_timeout"),
        pytest.param("service_cidr 10.0.0.0/33", "invalid CIDR", id="service_cidr"),
        pytest.param(
            "manifests /x\n endpoint http://a", "cannot be combined", id="manifests and endpoint"
        ),
        pytest.param("ttl 5\n ttl 6", "more than once", id="repeated option"),
    ],
)
def test_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError) as info:
        config_of(body)
    assert message in str(info.value)
    assert str(info.value).startswith("Corefile:")  # file:line


def test_multicluster_and_max_inflight() -> None:
    config = config_of(
        "multicluster ClusterSet.local\n apiserver_max_inflight 10",
        args="cluster.local clusterset.local",
    )
    assert config.zones == ("cluster.local.", "clusterset.local.")
    assert config.multicluster_zones == ("clusterset.local.",)
    assert config.apiserver_max_inflight == 10
    assert config_of("multicluster").multicluster_zones == ()


@pytest.mark.parametrize(
    ("args", "zones"),
    [
        pytest.param(".svc example.com", ("example.com.",), id="leading dot dropped"),
        pytest.param("a..b cluster.local", ("cluster.local.",), id="empty label dropped"),
        pytest.param("x" * 64 + ".local cluster.local", ("cluster.local.",), id="long label"),
        pytest.param("cluster.local:53", ("cluster.local.",), id="port ignored"),
        pytest.param("tls://cluster.local", ("cluster.local.",), id="scheme ignored"),
    ],
)
def test_invalid_zone_arguments_are_dropped(
    args: str, zones: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    """As CoreDNS (plugin.OriginsFromArgsOrServerBlock): a bad zone argument is skipped; we
    also say so, naming the line."""
    with caplog.at_level("WARNING"):
        assert config_of("", args=args).zones == zones
    assert "Corefile:2" in caplog.text


def test_no_valid_zone_argument_is_an_error() -> None:
    # CoreDNS: "non-reverse zone name must be used"; the server block's zones are not used.
    with pytest.raises(CorefileError) as info:
        config_of("", args=".svc a..b")
    assert info.value.line == 2
    assert "no valid zone" in str(info.value)


def test_error_names_the_line() -> None:
    with pytest.raises(CorefileError) as info:
        config_of("    ttl 5\n    multicluster x")
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a=b,c in (d)", {"a": "b", "c": "d"}, True),
        ("a=b,c in (d)", {"a": "b", "c": "e"}, False),
    ],
)
def test_selector(text: str, labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["", "a in ()", "a=b,,c", "=b", "a in (x"])
def test_selector_errors(text: str) -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse(text)
