"""Reload, signals, lameduck and the HTTP endpoints, on real sockets."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import dns.asyncquery
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.core.conftest import serve
from tests.helpers.server import free_port


async def version(port: int) -> str:
    query = dns.message.make_query("version.bind.", "TXT", "CH")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=2)
    return reply.answer[0][0].strings[0].decode()


def corefile(tag: str, *, extra: str = "") -> str:
    return f".:0 {{\n  bind 127.0.0.1\n  chaos {tag}\n{extra}}}\n"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def test_reload_swaps_config_without_dropping_queries(tmp_path: pathlib.Path) -> None:
    async with serve(corefile("old"), tmp_path) as srv:
        port = srv.port()
        assert await version(port) == "old"
        answers: list[str] = []

        async def hammer() -> None:
            for _ in range(200):
                answers.append(await version(port))

        load = asyncio.ensure_future(hammer())
        await asyncio.sleep(0.05)
        srv.path.write_text(corefile("new"))
        assert await srv.app.reload() is True
        await load
        assert await version(port) == "new"
        # Every query got an answer (a lost one would have raised a timeout),
        # and each came from exactly one of the two configurations.
        assert len(answers) == 200 and set(answers) <= {"old", "new"}
        assert srv.port() == port


@pytest.mark.parametrize(
    ("bad_text", "message"),
    [
        pytest.param(
            ".:0 {\n  bind 127.0.0.1\n  chaos broken\n",
            "expected '}' to close block opened at line 1",
            id="unclosed block",
        ),
        pytest.param(
            ".:0 {\n  bind 127.0.0.1\n  frobnicate\n}\n",
            "Corefile:3: unknown directive 'frobnicate'",
            id="unknown directive",
        ),
        pytest.param(
            ".:0 {\n  bind 127.0.0.1\n  dnssec\n}\n",
            "a CoreDNS plugin that clusterdns does not implement",
            id="CoreDNS plugin not implemented",
        ),
        pytest.param(
            ".:0 {\n  bind 127.0.0.1\n  reload 1s\n}\n",
            "Corefile:3: reload: interval value must be greater or equal to 2s",
            id="bad option",
        ),
    ],
)
async def test_bad_reload_keeps_old_config(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, bad_text: str, message: str
) -> None:
    async with serve(corefile("old"), tmp_path) as srv:
        failed_before = srv.app.process.metrics.reload_failed._value.get()
        srv.path.write_text(bad_text)
        assert await srv.app.reload() is False
        assert await version(srv.port()) == "old"
        assert message in caplog.text
        assert srv.app.process.metrics.reload_failed._value.get() == failed_before + 1


async def test_reload_that_cannot_bind_keeps_old_config(tmp_path: pathlib.Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        async with serve(corefile("old"), tmp_path) as srv:
            srv.path.write_text(
                corefile("old") + f".:{busy} {{\n  bind 127.0.0.1\n  chaos other\n}}\n"
            )
            assert await srv.app.reload() is False
            assert await version(srv.port()) == "old"


async def test_health_ready_metrics(tmp_path: pathlib.Path) -> None:
    extra = "  health 127.0.0.1:0\n  ready 127.0.0.1:0\n  prometheus 127.0.0.1:0\n"
    async with serve(corefile("v", extra=extra), tmp_path) as srv:
        base = f"http://127.0.0.1:{srv.http_port()}"
        await version(srv.port())
        status, body = await asyncio.to_thread(http_get, base + "/health")
        assert (status, body) == (200, "OK")
        status, body = await asyncio.to_thread(http_get, base + "/ready")
        assert (status, body) == (200, "OK")
        chaos = srv.app.instance.blocks[0].plugin("chaos")  # type: ignore[union-attr]
        chaos.ready = lambda: False  # type: ignore[method-assign, union-attr]
        status, body = await asyncio.to_thread(http_get, base + "/ready")
        assert (status, body) == (503, "chaos")
        status, body = await asyncio.to_thread(http_get, base + "/metrics")
        assert status == 200
        for needle in (
            'coredns_dns_requests_total{family="1",proto="udp",server="dns://127.0.0.1:0",type="TXT",view="",zone="."}',
            'coredns_dns_responses_total{plugin="chaos",rcode="NOERROR",server="dns://127.0.0.1:0",view="",zone="."}',
            "coredns_dns_request_duration_seconds_bucket",
            "coredns_dns_request_size_bytes_bucket",
            "coredns_dns_response_size_bytes_bucket",
            "coredns_panics_total 0.0",
            "coredns_build_info{",
            'coredns_plugin_enabled{name="chaos",server="dns://127.0.0.1:0",view="",zone="."} 1.0',
            "coredns_reload_version_info{",
        ):
            assert needle in body, needle


def _spawn(path: pathlib.Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_udp(port: int, deadline: float = 10.0) -> None:
    query = dns.message.make_query("version.bind.", "TXT", "CH").to_wire()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", port))
                s.recv(512)
                return
            except OSError:
                time.sleep(0.1)
    raise TimeoutError("server did not come up")


def _version_sync(port: int) -> str:
    query = dns.message.make_query("version.bind.", "TXT", "CH")
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
    return reply.answer[0][0].strings[0].decode()


def test_sigterm_lameduck_keeps_answering_then_exits_zero(tmp_path: pathlib.Path) -> None:
    port, health = free_port(), free_port()
    path = tmp_path / "Corefile"
    path.write_text(
        f".:{port} {{\n  bind 127.0.0.1\n  health 127.0.0.1:{health} {{\n    lameduck 1s\n  }}\n  chaos v\n}}\n"
    )
    proc = _spawn(path)
    try:
        _wait_udp(port)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        time.sleep(0.3)
        assert proc.poll() is None
        assert _version_sync(port) == "v"
        assert http_get(f"http://127.0.0.1:{health}/health") == (200, "OK")
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started >= 0.9
    finally:
        proc.kill()
        proc.communicate()


def test_sighup_reloads_and_bad_corefile_at_start_names_the_line(tmp_path: pathlib.Path) -> None:
    port = free_port()
    path = tmp_path / "Corefile"
    path.write_text(f".:{port} {{\n  bind 127.0.0.1\n  chaos first\n}}\n")
    proc = _spawn(path)
    try:
        _wait_udp(port)
        assert _version_sync(port) == "first"
        path.write_text(f".:{port} {{\n  bind 127.0.0.1\n  chaos second\n}}\n")
        os.kill(proc.pid, signal.SIGHUP)
        end = time.monotonic() + 5
        while _version_sync(port) != "second" and time.monotonic() < end:
            time.sleep(0.05)
        assert _version_sync(port) == "second"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.communicate()
    path.write_text(f".:{port} {{\n  chaos\n  kubernetess cluster.local\n}}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(path)],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert bad.returncode == 1
    assert f"{path}:3: unknown directive 'kubernetess'" in bad.stderr


def test_plugins_and_version_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clusterdns.cli", "plugins"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = out.stdout.split()
    assert names.index("errors") < names.index("log") < names.index("chaos") < names.index("whoami")
    version = subprocess.run(
        [sys.executable, "-m", "clusterdns.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("clusterdns ")
