"""Every `~~~ corefile` example of the file README boots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import clusterdns.plugins.file as plugin
from tests.helpers.server import running_server

README = Path(plugin.__file__).with_name("README.md")
EXAMPLES = re.findall(r"^~~~ corefile\n(.*?)^~~~$", README.read_text(), re.M | re.S)
ZONE = "@ 300 SOA ns admin 1 7200 3600 1209600 300\n@ 300 NS ns\nns 300 A 192.0.2.53\n"
HOSTS = "10.0.0.1 example.org\n"


def test_readme_has_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize(
    "corefile", EXAMPLES, ids=[f"example {i + 1}" for i in range(len(EXAMPLES))]
)
async def test_readme_example_boots(tmp_path: Path, corefile: str) -> None:
    # Files the examples name, next to the Corefile.
    (tmp_path / "db.example.org").write_text(ZONE)
    (tmp_path / "example.hosts").write_text(HOSTS)
    async with running_server(corefile, tmp_path=tmp_path) as server:
        assert server.plugin("file") is not None
