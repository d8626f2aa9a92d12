"""wire.names helpers."""

from __future__ import annotations

import pytest

from clusterdns.wire import text_to_wire
from clusterdns.wire.names import with_suffix_case


@pytest.mark.parametrize(
    ("name", "suffix", "cased", "expected"),
    [
        ("a.svc.cluster.local.", "cluster.local.", "Cluster.LOCAL.", "a.svc.Cluster.LOCAL."),
        ("cluster.local.", "cluster.local.", "CLUSTER.local.", "CLUSTER.local."),
        ("a.svc.cluster.local.", "example.org.", "Example.org.", "a.svc.cluster.local."),
        # "xcluster.local." ends with the bytes of "cluster.local." minus its length byte only
        ("a.xcluster.local.", "luster.local.", "LUSTER.local.", "a.xcluster.local."),
        ("a.b.", ".", ".", "a.b."),
    ],
)
def test_with_suffix_case(name: str, suffix: str, cased: str, expected: str) -> None:
    got = with_suffix_case(text_to_wire(name), text_to_wire(suffix), text_to_wire(cased))
    assert got == text_to_wire(expected)
