"""Every `~~~ corefile` example of the kubernetes README boots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import clusterdns.plugins.kubernetes as plugin
from clusterdns.sources.kube import kubeconfig
from tests.helpers.server import running_server

README = Path(plugin.__file__).with_name("README.md")
EXAMPLES = re.findall(r"^~~~ corefile\n(.*?)^~~~$", README.read_text(), re.M | re.S)


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize(
    "corefile", EXAMPLES, ids=[f"example {i + 1}" for i in range(len(EXAMPLES))]
)
async def test_readme_example_boots(
    tmp_path: Path, corefile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-cluster credentials do not exist here: point them at a closed port.
    monkeypatch.setattr(
        kubeconfig, "in_cluster", lambda: kubeconfig.from_endpoint("http://127.0.0.1:9")
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster").mkdir()
    # HTTP endpoints on free ports.
    text = re.sub(r":9153\b", "127.0.0.1:0", corefile)
    text = re.sub(r"^(\s*)(health|ready)$", r"\1\2 127.0.0.1:0", text, flags=re.M)
    async with running_server(text, tmp_path=tmp_path) as server:
        assert server.plugin("kubernetes") is not None
