"""The Corefile examples of loadbalance's README set up without error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import clusterdns.plugins.loadbalance as plugin
from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import parse

README = Path(plugin.__file__).with_name("README.md")
EXAMPLES = re.findall(r"~~~ corefile\n(.*?)~~~", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("text", EXAMPLES, ids=[f"example {i}" for i in range(len(EXAMPLES))])
def test_example_sets_up(text: str) -> None:
    instance = build_instance(parse(text, filename=str(README)), process=Process(), dns_port=0)
    assert any(p.name == "loadbalance" for p in instance.plugins())
