"""The whole query path under bad input, against a running server on loopback: every
accepted datagram gets exactly one reply carrying its ID (or the documented silent drop),
and the next good query is answered. UDP and TCP, each bad-input class of the table in
packets.py, the corpus, hypothesis mutations, lying TCP length prefixes, slow clients,
thousands of idle connections, and an upstream that answers with mutated replies.

Long run: CLUSTERDNS_FUZZ_EXAMPLES=100000 python3 -m pytest tests/reliability -k fuzz"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterdns.plugins.forward import Forward
from clusterdns.wire import DropQuery, FormError, parse_query
from tests.helpers.responder import Responder, TransportName
from tests.reliability.packets import (
    CASES,
    DROP,
    GOOD_ADDRESS,
    Case,
    CorpusEntry,
    good_query,
    mutated,
    read_corpus,
)
from tests.reliability.serving import (
    EXAMPLES_DIR,
    FUZZ_COREFILE,
    ThreadedServer,
    budget,
    good_answer,
    read_frame,
    tcp_frame,
    udp_exchange,
)

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    max_examples=budget(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


class Fuzzed:
    """The server under test and the upstream its forward goes to."""

    def __init__(self, server: ThreadedServer, upstream: Responder) -> None:
        self.server = server
        self.upstream = upstream

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    server = ThreadedServer("")
    server.thread.start()
    upstream = Responder()
    server.call(upstream.start)
    server.path.write_text(FUZZ_COREFILE.format(manifests=EXAMPLES_DIR, upstream=upstream.port))
    server.call(server.app.start, timeout=30)
    instance = server.app.instance
    assert instance is not None
    for plugin in instance.plugins():
        if isinstance(plugin, Forward):
            for stanza in plugin.stanzas:
                stanza.deadline = 0.6  # a mutated query the upstream ignores: SERVFAIL soon
                stanza.try_timeout = 0.3
    try:
        yield Fuzzed(server, upstream)
    finally:
        server.call(upstream.stop)
        server.stop()


def panics(server: ThreadedServer) -> float:
    """Exceptions the chain recovered from (each one a SERVFAIL and a logged traceback)."""
    value = server.app.process.metrics.registry.get_sample_value("coredns_panics_total")
    return value or 0.0


def rcode_of(reply: bytes) -> str:
    """The reply's rcode name, from the header and the OPT's extended bits (read by hand:
    dnspython cannot read every opcode's sections)."""
    low = reply[3] & 0xF
    if struct.unpack_from("!H", reply, 10)[0] == 0:
        return dns.rcode.to_text(low)
    parsed = dns.message.from_wire(reply, question_only=False) if reply[2] & 0x78 == 0 else None
    if parsed is not None:
        return dns.rcode.to_text(parsed.rcode())
    return dns.rcode.to_text(low)


def expected_by_the_gate(data: bytes) -> str | None:
    """drop, FORMERR, NOTIMP, BADVERS, or None when the query goes on to be answered."""
    try:
        query = parse_query(data)
    except DropQuery:
        return DROP
    except FormError:
        return "FORMERR"
    if query.opcode:
        return "NOTIMP"
    if query.edns is not None and query.edns.version != 0:
        return "BADVERS"
    return None


def assert_still_serving(port: int) -> None:
    """A good query answered right (the server is not wedged by what came before)."""
    reply = dns.message.from_wire(good_answer(port, good_query(0x4242)))
    assert reply.id == 0x4242 and reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0][0].to_text() == GOOD_ADDRESS


def check_udp(port: int, data: bytes, expect: str, *, echo: bool = True) -> None:
    if expect == DROP:
        assert udp_exchange(port, data, timeout=0.3) == []
    else:
        replies = udp_exchange(port, data, timeout=3, linger=0.05)
        assert len(replies) == 1, f"{len(replies)} replies"
        reply = replies[0]
        assert reply[:2] == data[:2], "the reply carries the query's ID"
        assert reply[2] & 0x80, "QR set"
        assert rcode_of(reply) == expect
        qdcount = struct.unpack_from("!H", reply, 4)[0]
        assert qdcount == (1 if echo else 0)
    assert_still_serving(port)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_udp_bad_input_class(fuzzed: Fuzzed, case: Case) -> None:
    check_udp(fuzzed.port, case.data, case.expect, echo=case.echo)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_tcp_bad_input_class(fuzzed: Fuzzed, case: Case) -> None:
    """Over TCP the same rcodes; a dropped message leaves the connection open and the next
    query on it is answered."""
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
        sock.sendall(tcp_frame(case.data))
        if case.expect != DROP:
            reply = read_frame(sock)
            assert reply is not None and reply[:2] == case.data[:2]
            assert rcode_of(reply) == case.expect
        sock.sendall(tcp_frame(good_query(0x5151)))
        follow = read_frame(sock)
        assert follow is not None and follow[:2] == b"\x51\x51"
        assert dns.message.from_wire(follow).answer[0][0].to_text() == GOOD_ADDRESS


@pytest.mark.parametrize("entry", read_corpus(), ids=lambda entry: entry.path.stem)
def test_corpus_replayed_over_udp(fuzzed: Fuzzed, entry: CorpusEntry) -> None:
    expect = entry.expect or expected_by_the_gate(entry.data) or "any"
    if expect == "any":
        replies = udp_exchange(fuzzed.port, entry.data, timeout=3, linger=0.05)
        assert len(replies) == 1 and replies[0][:2] == entry.data[:2]
        assert_still_serving(fuzzed.port)
    else:
        check_udp(fuzzed.port, entry.data, expect, echo=rcode_echoes(entry.data))


def rcode_echoes(data: bytes) -> bool:
    try:
        parse_query(data)
    except FormError as err:
        return bool(err.question_end)
    except DropQuery:
        return False
    return True


@FUZZ
@given(mutated())
def test_mutated_datagrams_get_one_reply_or_the_documented_drop(
    fuzzed: Fuzzed, data: bytes
) -> None:
    gate = expected_by_the_gate(data)
    if gate == DROP:
        assert udp_exchange(fuzzed.port, data, timeout=0.2) == []
    else:
        replies = udp_exchange(fuzzed.port, data, timeout=3, linger=0.02)
        assert len(replies) == 1, f"{len(replies)} replies to {data.hex()}"
        reply = replies[0]
        assert reply[:2] == data[:2] and reply[2] & 0x80
        if gate is not None:
            assert rcode_of(reply) == gate, data.hex()
    assert_still_serving(fuzzed.port)


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_messages_pipelined_on_one_tcp_connection(
    fuzzed: Fuzzed, messages: list[bytes]
) -> None:
    """Every message but the drops is answered once, in any order; then a good one."""
    owed = sorted(m[:2] for m in messages if expected_by_the_gate(m) != DROP)
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=5) as sock:
        sock.sendall(b"".join(tcp_frame(m) for m in messages) + tcp_frame(good_query(0x6161)))
        got = []
        for _ in range(len(owed) + 1):
            reply = read_frame(sock)
            assert reply is not None, "connection closed with replies owed"
            got.append(reply[:2])
        assert b"\x61\x61" in got
        got.remove(b"\x61\x61")
        assert sorted(got) == owed


# --- TCP framing and connection handling --------------------------------------------------


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    ("prefix_delta", "then_close", "expect"),
    [
        pytest.param(+10, True, "no reply, closed", id="prefix longer than the message, then EOF"),
        pytest.param(
            +10, False, "no reply, open", id="prefix longer than the message, client waits"
        ),
        pytest.param(
            -5, False, "FORMERR then garbage framing", id="prefix shorter than the message"
        ),
    ],
)
def test_tcp_length_prefix_that_lies(
    fuzzed: Fuzzed, prefix_delta: int, then_close: bool, expect: str
) -> None:
    query = good_query(0x7171)
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", len(query) + prefix_delta) + query)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
            assert _closed_by_server(sock, 3)
        elif prefix_delta > 0:
            # Waiting for the rest: nothing sent back, the connection is kept until idle.
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        else:
            reply = read_frame(sock)
            assert reply is not None and reply[:2] == b"\x71\x71"
            assert rcode_of(reply) == "FORMERR"
    assert_still_serving(fuzzed.port)


def test_tcp_zero_length_frames_are_skipped(fuzzed: Fuzzed) -> None:
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
        sock.sendall(b"\x00\x00" * 50 + tcp_frame(good_query(0x7272)))
        reply = read_frame(sock)
        assert reply is not None and reply[:2] == b"\x72\x72"


def test_tcp_frame_of_65535_bytes(fuzzed: Fuzzed) -> None:
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
        data = good_query(0x7373, edns=False)
        sock.sendall(tcp_frame(data + bytes(65535 - len(data))) + tcp_frame(good_query(0x7474)))
        first, second = read_frame(sock), read_frame(sock)
        assert first is not None and second is not None
        assert {first[:2], second[:2]} == {b"\x73\x73", b"\x74\x74"}


def test_slow_tcp_client_one_byte_per_100ms(fuzzed: Fuzzed) -> None:
    """A client dribbling its query is answered when the last byte arrives, and UDP is
    answered at full speed meanwhile."""
    frame = tcp_frame(good_query(0x7575, edns=False))
    errors: list[BaseException] = []
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=10) as sock:

        def dribble() -> None:
            try:
                for byte in frame:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except BaseException as err:
                errors.append(err)

        writer = threading.Thread(target=dribble)
        started = time.monotonic()
        writer.start()
        while writer.is_alive():
            t0 = time.monotonic()
            assert_still_serving(fuzzed.port)
            assert time.monotonic() - t0 < 0.5
            time.sleep(0.2)
        writer.join()
        assert not errors
        reply = read_frame(sock)
        assert reply is not None and reply[:2] == b"\x75\x75"
        assert time.monotonic() - started >= len(frame) * 0.1 * 0.9


def test_incomplete_frame_is_closed_at_the_idle_timeout(fuzzed: Fuzzed) -> None:
    options = fuzzed.server.app.server.options
    saved = options.tcp_idle_timeout
    options.tcp_idle_timeout = 0.5
    try:
        with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
            sock.sendall(b"\x00\x40\x12")  # two bytes of length, one of 64 promised, then nothing
            assert _closed_by_server(sock, 3)
    finally:
        options.tcp_idle_timeout = saved
    assert_still_serving(fuzzed.port)


def test_thousands_of_idle_tcp_connections(fuzzed: Fuzzed) -> None:
    """3000 idle connections against a limit of 1000: the limit holds (the excess is closed
    at once), UDP keeps answering meanwhile, the idle ones are reaped after the idle
    timeout, and TCP answers again afterwards. (Connections beyond the listen backlog wait
    in the kernel for SYN retries: they come in later and meet the same rules.)"""
    options = fuzzed.server.app.server.options
    saved = options.tcp_idle_timeout, options.tcp_max_connections
    options.tcp_idle_timeout, options.tcp_max_connections = 3.0, 1000
    listener = next(iter(fuzzed.server.app.server.listeners.values()))

    def active() -> int:
        count = fuzzed.server.on_loop(lambda: listener.tcp_connections.active)
        assert count <= 1000, "the connection limit did not hold"
        return count

    socks: list[socket.socket] = []
    try:
        for _ in range(3000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", fuzzed.port))
            socks.append(sock)
        slowest = 0.0
        most = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            assert_still_serving(fuzzed.port)
            slowest = max(slowest, time.monotonic() - t0)
            most = max(most, active())
            if most == 1000 and sum(_peer_closed(sock) for sock in socks) >= 300:
                break
            time.sleep(0.05)
        assert most == 1000
        assert sum(_peer_closed(sock) for sock in socks) >= 300, "the excess was not closed"
        assert slowest < 1.0, f"UDP took {slowest:.2f}s while TCP was flooded"
        # Still held open by the clients, but idle: reaped after the timeout.
        deadline = time.monotonic() + 3.0 + 5
        while active() >= 1000:
            assert time.monotonic() < deadline, "idle connections not reaped"
            time.sleep(0.1)
    finally:
        for sock in socks:
            sock.close()
        options.tcp_idle_timeout, options.tcp_max_connections = saved
    deadline = time.monotonic() + 10
    while active() > 0:
        assert time.monotonic() < deadline, "closed connections still counted"
        time.sleep(0.1)
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=3) as sock:
        sock.sendall(tcp_frame(good_query(0x7676)))
        reply = read_frame(sock)
        assert reply is not None and reply[:2] == b"\x76\x76"


def _peer_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# --- an upstream that answers with mutated replies ----------------------------------------


class HostileResponder(Responder):
    """Answers with a mangled version of the good reply that keeps the ID and question (so
    forward takes it as the answer) and changes what follows: ``mangle`` gets the part
    after the question."""

    def __init__(self) -> None:
        super().__init__()
        self.mangle: Callable[[bytes], bytes] | None = None

    def replies(self, wire: bytes, transport: TransportName) -> list[bytes]:
        good = super().replies(wire, transport)
        if not good or self.mangle is None:
            return good
        reply = good[0]
        name_end = reply.index(0, 12) + 5
        return [reply[:name_end] + self.mangle(reply[name_end:])]


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[ThreadedServer, HostileResponder]]:
    server = ThreadedServer("")
    server.thread.start()
    upstream = HostileResponder()
    server.call(upstream.start)
    server.path.write_text(
        f".:0 {{\n bind 127.0.0.1\n forward . 127.0.0.1:{upstream.port}\n cache 30\n"
        " loadbalance\n}\n"
        # Nothing between forward and the renderer here.
        f"plain.test:0 {{\n bind 127.0.0.1\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    )
    server.call(server.app.start, timeout=30)
    for plugin in server.app.instance.plugins():  # type: ignore[union-attr]
        if isinstance(plugin, Forward):
            for stanza in plugin.stanzas:
                stanza.deadline, stanza.try_timeout = 0.5, 0.25
    try:
        yield server, upstream
    finally:
        server.call(upstream.stop)
        server.stop()


_names = iter(range(10**9))


@settings(FUZZ, max_examples=budget(10))  # each ~0.5 s: replies forward ignores time out
@given(
    st.integers(1, 40),
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=6),
    st.one_of(st.none(), st.integers(0, 1200)),
    st.binary(max_size=40),
    st.sampled_from([None, 512, 1232, 4096]),
    st.booleans(),
)
def test_mangled_upstream_replies_still_get_one_reply(
    hostile: tuple[ThreadedServer, HostileResponder],
    records: int,
    pokes: list[tuple[int, int]],
    cut: int | None,
    extra: bytes,
    payload: int | None,
    tcp: bool,
) -> None:
    """Whatever the upstream's reply holds after the question (records overwritten, cut,
    extended), the client gets exactly one reply with its ID, within its size, and the
    server goes on answering."""
    server, upstream = hostile
    name = f"n{next(_names)}.example.org."
    upstream.answers = {name: [f"{name} 60 IN A 192.0.2.{i}" for i in range(1, records + 1)]}

    def mangle(body: bytes) -> bytes:
        out = bytearray(body)
        for at, value in pokes:
            if at < len(out):
                out[at] = value
        if cut is not None:
            del out[cut:]
        return bytes(out) + extra

    upstream.mangle = mangle
    query = dns.message.make_query(name, "A", use_edns=payload is not None, payload=payload or 512)
    wire = query.to_wire()
    try:
        if tcp:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(tcp_frame(wire))
                reply = read_frame(sock)
                assert reply is not None
        else:
            replies = udp_exchange(server.port, wire, timeout=4, linger=0.02)
            assert len(replies) == 1
            reply = replies[0]
            assert len(reply) <= max(512, payload or 512)
        assert reply[:2] == wire[:2] and reply[2] & 0x80
        assert panics(server) == 0, "a plugin raised on a mangled upstream reply"
    finally:
        upstream.mangle = None
    forward_recovers(server)


def forward_recovers(server: ThreadedServer, within: float = 5.0) -> None:
    """A good forwarded query answered NOERROR, soon: after replies forward had to ignore,
    the upstream may be marked down until its health check passes again."""
    deadline = time.monotonic() + within
    while True:
        query = dns.message.make_query(f"ok{next(_names)}.example.org.", "A")
        good = udp_exchange(server.port, query.to_wire(), timeout=1)
        if good and dns.message.from_wire(good[0]).rcode() == dns.rcode.NOERROR:
            return
        assert time.monotonic() < deadline, "forward did not recover"
        time.sleep(0.05)


def test_undecodable_reply_too_big_for_the_client_is_servfail_not_silence(
    hostile: tuple[ThreadedServer, HostileResponder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: bytes a plugin returned that do not decode and must be truncated for the
    client made the reply task raise, and the client got nothing. (forward now refuses such
    upstream replies at the door: let one through to reach the renderer.)"""
    import clusterdns.upstream.upstream as upstream_module

    server, upstream = hostile
    monkeypatch.setattr(upstream_module, "well_framed", lambda wire: True)
    name = "too-big.plain.test."
    upstream.answers = {name: [f"{name} 60 IN A 192.0.2.{i}" for i in range(1, 60)]}
    # The last record's rdata length lies: the message ends early.
    upstream.mangle = lambda body: body[:-6] + b"\x00\x09" + body[-4:]
    before = panics(server)
    try:
        query = dns.message.make_query(name, "A")
        replies = udp_exchange(server.port, query.to_wire(), timeout=3, linger=0.02)
    finally:
        upstream.mangle = None
    assert len(replies) == 1
    assert dns.message.from_wire(replies[0]).rcode() == dns.rcode.SERVFAIL
    assert panics(server) == before + 1


def test_tc_storm_from_upstream_is_passed_on_and_tcp_retried(
    hostile: tuple[ThreadedServer, HostileResponder],
) -> None:
    """Every UDP reply from the upstream truncated: the client sees TC and retries over
    TCP, which the upstream answers whole; nothing else is disturbed."""
    server, upstream = hostile
    forward_recovers(server)
    upstream.mode = "truncate"
    try:
        for i in range(50):
            query = dns.message.make_query(f"tc{i}.example.net.", "A")
            replies = udp_exchange(server.port, query.to_wire(), timeout=3)
            assert len(replies) == 1
            assert dns.message.from_wire(replies[0]).flags & dns.flags.TC
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            query = dns.message.make_query("tc0.example.net.", "A")
            sock.sendall(tcp_frame(query.to_wire()))
            reply = read_frame(sock)
            assert reply is not None
            parsed = dns.message.from_wire(reply)
            assert not parsed.flags & dns.flags.TC and parsed.answer
    finally:
        upstream.mode = "answer"
