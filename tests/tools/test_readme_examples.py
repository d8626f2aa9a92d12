"""The README's "Debugging service discovery" examples print what the README shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clusterdns.tools.cluster import POD_COREFILE

from .conftest import ROOT, outside_a_pod

README = (ROOT / "README.md").read_text()
SECTION = README.split("## Debugging service discovery", 1)[1].split("\n## ", 1)[0]


# The commands that need nothing but the built-in demo cluster (lookup and the
# introspection examples ask a running server: tests/tools/test_lookup.py and
# tests/plugins/introspect cover what they print).
OFFLINE = ("clusterdns resolv-conf ", "clusterdns env ", "clusterdns vservers ")


def examples() -> list[tuple[str, str]]:
    """(command, expected output) for each offline ``$ clusterdns ...`` line of the section."""
    found = []
    for block in re.findall(r"```\n(.*?)```", SECTION, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            if command.startswith(OFFLINE):
                found.append((command, output))
    return found


def _host_has_search_domains() -> bool:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return False
    return bool(re.search(r"^\s*(search|domain)\s", text, re.M))


@pytest.mark.parametrize(("command", "expected"), examples(), ids=[c for c, _ in examples()])
def test_readme_example(tmp_path: Path, command: str, expected: str) -> None:
    assert command.startswith("clusterdns ")
    if Path(POD_COREFILE).exists():
        pytest.skip(f"{POD_COREFILE} exists here: the commands would read it, not the demo")
    if "resolv-conf" in command and _host_has_search_domains():
        pytest.skip("this machine's /etc/resolv.conf has search domains the README's has not")
    shell = f"{sys.executable} -m clusterdns.cli {command.removeprefix('clusterdns ')}"
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env=outside_a_pod(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # ipvsadm pads its last column; the README does not keep trailing blanks.
    assert [line.rstrip() for line in out.stdout.splitlines()] == expected.splitlines()


def test_the_section_has_each_command() -> None:
    commands = " ".join(c for c, _ in examples())
    for name in ("resolv-conf", "env", "vservers"):
        assert f"clusterdns {name} " in commands
