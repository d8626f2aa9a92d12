"""Running toolbox commands in-process, and the demo cluster they are checked against."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterdns.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "cluster"


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def not_in_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The defaults as on a workstation: no service account, no mounted Corefile."""
    from clusterdns.tools import cluster

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(cluster, "POD_COREFILE", str(tmp_path / "no-pod-corefile"))


def outside_a_pod() -> dict[str, str]:
    """The environment for a command run as a subprocess, with this tree's code."""
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """``run("env", "-n", "default")``: the command's exit code, stdout and stderr."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    try:
        yield invoke
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def write_manifests(directory: Path, text: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "objects.yaml").write_text(text)
    return str(directory)
