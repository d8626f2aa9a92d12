"""The README's promises: two set-up commands, CI runs the test one, the plugin
reference is current, and the demo lines it shows give the answers it says."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clusterdns.cli import default_corefile
from tests.helpers.responder import Responder
from tests.helpers.server import running_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def start_here_commands() -> list[str]:
    section = README.split("## Start here", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [block.strip() for block in blocks[:2]]


def test_two_setup_commands_and_ci_runs_the_test_one() -> None:
    run, test = start_here_commands()
    assert run == "python3 -m pip install -e . && clusterdns serve"
    assert "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci


def test_plugin_reference_is_current() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout


def demo_lines() -> list[tuple[str, str]]:
    """(command, expected text) for each README demo line with a trailing comment."""
    section = README.split("## Start here", 1)[1].split("\n## ", 1)[0]
    lines = []
    for line in section.splitlines():
        if not line.startswith(("dig ", "nslookup ")) or "#" not in line:
            continue
        command, comment = line.split("#", 1)
        lines.append((command.strip(), comment.strip()))
    return lines


def expectation(comment: str) -> str:
    """The checkable part of a comment: an address, a quoted string, a name or a status."""
    for pattern in (
        r"\d+\.\d+\.\d+\.\d+",
        r'"[^"]+"',
        r"NXDOMAIN",
        r"CNAME",
        r"[\w-]+(?:\.[\w-]+)+\.svc\.cluster\.local",
    ):
        match = re.search(pattern, comment)
        if match:
            return match.group()
    return ""


@pytest.mark.timeout(60)
async def test_demo_lines_answer_as_the_readme_says(tmp_path: Path) -> None:
    text = default_corefile().replace(
        "{$CLUSTERDNS_DEMO_CLUSTER}", str(ROOT / "examples" / "cluster")
    )
    text = text.replace("health {", "health 127.0.0.1:0 {").replace(
        "    ready\n", "    ready 127.0.0.1:0\n"
    )
    text = text.replace("lameduck 5s", "lameduck 100ms")
    text = text.replace("prometheus :9153", "prometheus 127.0.0.1:0").replace(
        ".:1053 {", ".:0 {\n    bind 127.0.0.1"
    )
    async with Responder() as upstream:
        # Never the machine's real resolver from a test: a loopback upstream.
        text = text.replace("forward . /etc/resolv.conf", f"forward . 127.0.0.1:{upstream.port}")
        async with running_server(text, tmp_path=tmp_path) as server:
            lines = demo_lines()
            assert len(lines) >= 8
            for command, comment in lines:
                want = expectation(comment)
                args = shlex.split(command)
                args = [a.replace("-port=1053", f"-port={server.port}") for a in args]
                if args[0] == "dig":
                    args[args.index("-p") + 1] = str(server.port)
                    args.append("+tries=1")
                out = await asyncio.to_thread(
                    subprocess.run,
                    args,
                    capture_output=True,
                    text=True,
                    timeout=10,
                    env=dict(os.environ),
                )
                if want:
                    assert want in out.stdout, f"{command}: wanted {want!r} in\n{out.stdout}"
                else:
                    assert "status: NOERROR" in out.stdout, f"{command}:\n{out.stdout}"
