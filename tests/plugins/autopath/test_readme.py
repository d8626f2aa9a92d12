"""Every `~~~ corefile` example of the autopath README boots."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.helpers.server import running_server

README = Path(importlib.import_module("clusterdns.plugins.autopath").__file__ or "").with_name(
    "README.md"
)
EXAMPLES = re.findall(r"^~~~ corefile\n(.*?)^~~~$", README.read_text(), re.M | re.S)


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize(
    "corefile", EXAMPLES, ids=[f"example {i + 1}" for i in range(len(EXAMPLES))]
)
async def test_readme_example_boots(
    tmp_path: Path, corefile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster").mkdir()
    (tmp_path / "my-resolv.conf").write_text(
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    )
    async with running_server(corefile, tmp_path=tmp_path) as server:
        assert server.plugin("autopath") is not None
