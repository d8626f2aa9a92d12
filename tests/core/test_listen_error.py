"""A DNS port that is taken: the error names the address, port and protocol."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")  # this tree's clusterdns


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_taken_port_is_named(tmp_path: Path, kind: socket.SocketKind) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("0.0.0.0", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        corefile = tmp_path / "Corefile"
        corefile.write_text(f".:{port} {{\n    whoami\n}}\n")
        out = subprocess.run(
            [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(corefile),
             "--udp-mode", "loop"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    assert out.returncode == 1
    assert f"[ERROR] core: cannot listen on 0.0.0.0:{port}/{proto}: [Errno 98]" in out.stderr
