"""Every plugin has a README with a Syntax section, and every `~~~ corefile` example in
it sets up (and, unless it forwards to the outside world, boots on loopback), so the
docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clusterdns.core import registry
from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import parse
from clusterdns.sources.kube import kubeconfig
from tests.helpers.server import running_server

PLUGINS = Path(registry.__file__).resolve().parents[1] / "plugins"
ZONE = "@ 300 SOA ns admin 1 7200 3600 1209600 300\n@ 300 NS ns\nns 300 A 192.0.2.53\n"


def examples() -> list[tuple[str, int, str]]:
    found = []
    for name in registry.implemented():
        text = (PLUGINS / name / "README.md").read_text()
        for index, example in enumerate(
            re.findall(r"^~~~ corefile\n(.*?)^~~~$", text, re.M | re.S)
        ):
            found.append((name, index + 1, example))
    return found


@pytest.mark.parametrize("name", registry.implemented())
def test_every_plugin_documents_its_syntax_and_examples(name: str) -> None:
    text = (PLUGINS / name / "README.md").read_text()
    assert re.search(r"^## Syntax$", text, re.M), f"{name}: no Syntax section"
    assert "~~~ corefile" in text, f"{name}: no example Corefile"


def _loopback_only(text: str) -> str:
    """HTTP endpoints on free loopback ports, DNS on port 0."""
    text = re.sub(
        r"(?m)^(\s*)(health|ready|prometheus|pprof|introspect)(\s+\S+)?(\s*\{)?$",
        r"\1\2 127.0.0.1:0\4",
        text,
    )
    return text


@pytest.mark.parametrize(
    ("name", "index", "text"), examples(), ids=[f"{n} example {i}" for n, i, _ in examples()]
)
async def test_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, index: int, text: str
) -> None:
    monkeypatch.chdir(tmp_path)
    # Files and folders the examples name.
    (tmp_path / "cluster").mkdir()
    (tmp_path / "db.example.org").write_text(ZONE)
    (tmp_path / "example.hosts").write_text("10.0.0.1 example.org\n")
    (tmp_path / "my-resolv.conf").write_text(
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    )
    # No in-cluster credentials here: a closed loopback port instead.
    monkeypatch.setattr(
        kubeconfig, "in_cluster", lambda: kubeconfig.from_endpoint("http://127.0.0.1:9")
    )
    instance = build_instance(
        parse(text, filename=f"{name}/README.md"), process=Process(), dns_port=0
    )
    assert any(plugin.name == name for plugin in instance.plugins())
    if re.search(r"^\s*(forward|loop)\b", text, re.M):
        return  # setting up is the check: booting would send queries off this machine
    async with running_server(_loopback_only(text), tmp_path=tmp_path) as server:
        assert server.plugin(name) is not None
