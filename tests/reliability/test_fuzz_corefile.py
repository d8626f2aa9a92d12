"""Fuzzing the Corefile: the parser and every plugin's setup, from structured mutations of
real Corefiles (the built-in one and every plugin README example). Whatever the text, the
only error is our CorefileError naming file:line, and a reload with it keeps the running
configuration serving.

Long run: CLUSTERDNS_FUZZ_EXAMPLES=100000 python3 -m pytest tests/reliability -k fuzz"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterdns.core import registry
from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from tests.reliability.serving import budget, threaded_server

PLUGINS = Path(registry.__file__).resolve().parents[1] / "plugins"
DEFAULT = (PLUGINS.parent / "Corefile.default").read_text()
# A folder for relative file names the examples use; imports cannot wander outside it.
_SCRATCH = tempfile.mkdtemp(prefix="clusterdns-corefile-fuzz-")
Path(_SCRATCH, "db.example.org").write_text(
    "@ 300 SOA ns admin 1 7200 3600 1209600 300\n@ 300 NS ns\nns 300 A 192.0.2.53\n"
)
Path(_SCRATCH, "example.hosts").write_text("10.0.0.1 example.org\n")


def _seeds() -> list[str]:
    seeds = [DEFAULT]
    for name in registry.implemented():
        text = (PLUGINS / name / "README.md").read_text()
        seeds += re.findall(r"^~~~ corefile\n(.*?)^~~~$", text, re.M | re.S)
    return seeds


SEEDS = _seeds()
# Tokens that make a parser or a setup work: braces, numbers at and past their limits,
# durations, addresses, zones, quoting, imports and placeholders.
_TOKENS = st.sampled_from(
    [
        "{", "}", "{\n", "}\n", "\n", " ", '"', '"a b"', "\\", "#", "import", "import *",
        "(snip)", "import snip", "{$UNSET}", "{env.HOME}", "0", "-1", "1", "65535", "65536",
        "99999999999999999999", "1.5", "0s", "1s", "-5s", "2562047h", "1e400", "NaN", ":",
        ":0", ".:0", "127.0.0.1", "::1", "[::1]:53", "10.0.0.0/33", "example.org.", ".",
        "..", "a..b", "x" * 300, "dns://", "tls://.:853", "cluster.local", "in-addr.arpa",
        "fallthrough", "ttl", "policy", "max_fails", "health_check", "except", "/dev/null",
        "/nonexistent", "db.example.org", "\u00e9", "\x00", "\t",
    ]
)  # fmt: skip


@st.composite
def mutated_corefiles(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    words = re.split(r"(\s+)", text)
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "cut"]))
        at = draw(st.integers(0, max(len(words) - 1, 0)))
        if kind == "replace" and words:
            words[at] = draw(_TOKENS)
        elif kind == "insert":
            words.insert(at, " " + draw(_TOKENS) + " ")
        elif kind == "delete" and words:
            del words[at]
        elif kind == "duplicate" and words:
            words.insert(at, words[at])
        elif kind == "cut":
            del words[at:]
    return "".join(words)


FUZZ = settings(
    max_examples=budget(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


def _check_error(err: CorefileError) -> None:
    assert err.line >= 1
    assert str(err).startswith(f"{err.file}:{err.line}: ")


@FUZZ
@given(mutated_corefiles() | st.text(max_size=200))
def test_parse_only_raises_corefile_error(text: str) -> None:
    try:
        parse(text, env={}, base_dir=_SCRATCH)
    except CorefileError as err:
        _check_error(err)


@FUZZ
@given(mutated_corefiles())
def test_every_setup_only_raises_corefile_error(text: str) -> None:
    """Setting up every plugin of a mutated Corefile (what a reload does before it swaps
    anything in) fails only with CorefileError naming file:line."""
    try:
        corefile = parse(text, env={}, base_dir=_SCRATCH)
        build_instance(corefile, process=Process(), dns_port=0, config_path=None)
    except CorefileError as err:
        _check_error(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "é {\n    reload 10s 5s\n    whoami\n}\n",
            "Corefile:1: server key 'é': zone 'é' is not ASCII",
            id="non-ASCII zone (was UnicodeEncodeError in the zone mux)",
        ),
        pytest.param(
            ". {\n    forward . 9.9.9.9\n    cache é\n}\n",
            "Corefile:3: cache: cannot be set up with these arguments:",
            id="non-ASCII zone in cache's ZONES (cache does not use parse_zones)",
        ),
    ],
)
def test_what_fuzzing_found_is_a_corefile_error(text: str, message: str) -> None:
    with pytest.raises(CorefileError) as info:
        build_instance(parse(text), process=Process(), dns_port=0, config_path=None)
    assert str(info.value).startswith(message)


@pytest.mark.timeout(60)
def test_reload_survives_any_text_and_keeps_serving() -> None:
    """A reload with text whose setup raises something other than CorefileError (a bug in
    a plugin's setup) must still leave the old configuration serving and the reload
    poller alive."""
    import dns.message
    import dns.rcode

    from tests.reliability.serving import udp_exchange

    text = ".:0 {\n bind 127.0.0.1\n chaos first\n}\n"
    with threaded_server(text) as server:
        port = server.port
        import clusterdns.core.lifecycle as lifecycle

        original = lifecycle.build_instance

        def broken(*args: object, **kwargs: object) -> object:
            raise ValueError("a bug in some plugin's setup")

        lifecycle.build_instance = broken  # type: ignore[assignment]
        try:
            server.path.write_text(".:0 {\n bind 127.0.0.1\n chaos second\n}\n")
            assert server.call(server.app.reload) is False
        finally:
            lifecycle.build_instance = original
        query = dns.message.make_query("version.bind.", "TXT", "CH").to_wire()
        reply = dns.message.from_wire(udp_exchange(port, query)[0])
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0][0].strings == (b"first",)
        # The poller still runs: a good change is picked up by a requested reload.
        server.path.write_text(".:0 {\n bind 127.0.0.1\n chaos third\n}\n")
        server.on_loop(server.app.request_reload)
        import time

        deadline = time.monotonic() + 5
        while True:
            reply = dns.message.from_wire(udp_exchange(port, query)[0])
            if reply.answer[0][0].strings == (b"third",):
                break
            assert time.monotonic() < deadline, "the reload poller died"
            time.sleep(0.05)
