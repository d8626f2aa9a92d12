"""errors and log through a real server: what they print, and the filters they take."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from clusterdns.plugins.errors import Errors
from tests.helpers.server import running_server

DEAD = "127.0.0.1:9"  # discard port: nothing answers DNS there


async def ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(
        dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=8
    )


async def test_errors_logs_plugin_failures_and_client_gets_servfail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = f".:0 {{\n  bind 127.0.0.1\n  errors\n  forward . {DEAD}\n}}\n"
    caplog.set_level(logging.ERROR, logger="clusterdns.errors")
    async with running_server(text, tmp_path=tmp_path) as srv:
        reply = await ask(srv.port, "example.com.")
        assert reply.rcode() == dns.rcode.SERVFAIL
    assert re.search(r"2 example\.com\. A: plugin/forward: ", caplog.text), caplog.text


async def test_without_errors_nothing_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = f".:0 {{\n  bind 127.0.0.1\n  forward . {DEAD}\n}}\n"
    caplog.set_level(logging.ERROR, logger="clusterdns.errors")
    async with running_server(text, tmp_path=tmp_path) as srv:
        assert (await ask(srv.port, "example.com.")).rcode() == dns.rcode.SERVFAIL
    assert "plugin/forward" not in caplog.text


def test_consolidate_counts_matching_errors_into_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from clusterdns.core.plugin import PluginError
    from clusterdns.plugins.errors import _Pattern

    plugin = Errors(
        [_Pattern(5.0, "i/o timeout", re.compile("i/o timeout"), logging.WARNING)], False
    )

    class Req:
        name = "a.example."
        qtype = 1

    caplog.set_level(logging.DEBUG, logger="clusterdns.errors")
    for _ in range(3):
        plugin.report(Req(), PluginError("forward", "read udp: i/o timeout"))  # type: ignore[arg-type]
    plugin.report(Req(), PluginError("forward", "connection refused"))  # type: ignore[arg-type]
    assert caplog.text.count("i/o timeout") == 0 and "connection refused" in caplog.text
    plugin.flush(now=plugin.patterns[0].started + 5.0)
    assert "3 errors like 'i/o timeout' occurred in last 5s" in caplog.text


COMMON = re.compile(
    r'^\[INFO\] 127\.0\.0\.1:\d+ - \d+ "(?P<type>\w+) IN (?P<name>\S+) udp \d+ false 512" '
    r"(?P<rcode>\w+) qr,aa,rd \d+ \d+(\.\d+)?s$"
)


@pytest.mark.parametrize(
    ("classes", "logged"),
    [
        pytest.param("", {"version.bind.", "nope.example.org.", "example.org."}, id="default all"),
        pytest.param("class denial", {"nope.example.org."}, id="denial only"),
        pytest.param("class success", {"example.org."}, id="success only"),
        pytest.param("class error", set(), id="error only: none here"),
    ],
)
async def test_log_common_format_and_class_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], classes: str, logged: set[str]
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.1 example.org\n")
    block = f"{{\n    {classes}\n  }}" if classes else ""
    text = f"example.org:0 {{\n  bind 127.0.0.1\n  log {block}\n  hosts {hosts} {{\n    fallthrough\n  }}\n  file {_zone(tmp_path)}\n}}\n"
    async with running_server(text, tmp_path=tmp_path) as srv:
        await ask(srv.port, "example.org.")
        await ask(srv.port, "nope.example.org.")
        await asyncio.sleep(0.05)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[INFO] ")]
    seen = set()
    for line in lines:
        match = COMMON.match(line)
        assert match, line
        seen.add(match["name"])
    assert seen == logged - {"version.bind."}


def _zone(tmp_path: Path) -> Path:
    zone = tmp_path / "example.org.db"
    zone.write_text(
        "$ORIGIN example.org.\n@ 3600 IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 3600\n"
        "@ 3600 IN NS ns.example.org.\nns 3600 IN A 192.0.2.53\n"
    )
    return zone
