"""A plugin CoreDNS removed gets an error naming the file:line and its replacement."""

from __future__ import annotations

import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse


def test_proxy_points_to_forward() -> None:
    text = ". {\n    whoami\n    proxy . 8.8.8.8\n}\n"
    with pytest.raises(CorefileError) as caught:
        build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)
    message = str(caught.value)
    assert message.startswith("Corefile:3:")
    assert "proxy" in message and "1.7.0" in message and "forward" in message


def test_other_unknown_directives_are_unchanged() -> None:
    text = ". {\n    frobnicate\n}\n"
    with pytest.raises(CorefileError, match=r"Corefile:2: unknown directive 'frobnicate'$"):
        build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)
