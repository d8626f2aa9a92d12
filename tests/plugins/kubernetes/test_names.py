"""Endpoint labels as CoreDNS derives them (kubernetes.go endpointHostname, object/endpoint.go)."""

from __future__ import annotations

import pytest

from clusterdns.plugins.kubernetes.names import endpoint_label, ip_label, pod_label_ip


@pytest.mark.parametrize(
    ("ip", "label"),
    [
        ("10.0.0.1", "10-0-0-1"),
        ("fd00::1", "fd00--1"),
        ("fd00::", "fd00--0"),  # a label ending in a dash gets a 0, as CoreDNS
        ("::1", "--1"),
    ],
)
def test_ip_label(ip: str, label: str) -> None:
    assert ip_label(ip) == label
    assert pod_label_ip(label) == ip


@pytest.mark.parametrize(
    ("hostname", "pod_name", "pod_names", "label"),
    [
        pytest.param("web-0", "pod-a", True, "web-0", id="hostname first"),
        pytest.param(None, "Pod-A", True, "pod-a", id="pod name"),
        pytest.param(None, "pod-a", False, "10-0-0-1", id="pod names off"),
        pytest.param(None, "p" * 63, True, "p" * 63, id="63 characters fit a label"),
        pytest.param(None, "p" * 64, True, "10-0-0-1", id="64 characters: the IP's label"),
    ],
)
def test_endpoint_label(hostname: str | None, pod_name: str, pod_names: bool, label: str) -> None:
    assert endpoint_label("10.0.0.1", hostname, pod_name, pod_names=pod_names) == label
