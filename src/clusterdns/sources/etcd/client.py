"""An asyncio etcd v3 client over etcd's v3 JSON gateway (``POST /v3/...``), with aiohttp.

The gateway is gRPC transcoded to HTTP/1.1 + JSON: keys and values are base64, 64-bit
integers are JSON strings, fields at their zero value are left out (a PUT event has no
``type``), and streaming calls (watch, lease keepalive) answer with one JSON object per
line, each wrapped in ``{"result": ...}`` or ``{"error": ...}``.

Several endpoints: a request that cannot reach one (connection refused or reset, timeout,
or an ``Unavailable`` answer such as "no leader") moves on to the next; the endpoint that
worked is remembered for the next request. Nothing is retried after a request reached a
member that answered, except one re-authentication when the auth token was rejected.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import aiohttp

__all__ = [
    "Compacted",
    "Compare",
    "DeleteRange",
    "DeleteResult",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "LeaseInfo",
    "Put",
    "PutResult",
    "Range",
    "RangeResult",
    "TLSConfig",
    "TxnResult",
    "WatchBatch",
    "WatchCompacted",
    "WatchEvent",
    "prefix_end",
]

log = logging.getLogger("clusterdns.sources.etcd")

READ_BUFSIZE = 2 * 1024 * 1024  # one watch response can carry many events on one line
DEFAULT_TIMEOUT = 5.0
# etcd sends a progress notification every 10 minutes by default on an idle watch: a
# stream silent for longer than this is dead.
WATCH_INACTIVITY = 660.0
# ...but a member whose host vanished (no FIN, no RST) is found sooner by TCP keepalive on
# the watch's connection: first probe after 10 s idle, every 5 s, given up after 3.
WATCH_KEEPALIVE = (10, 5, 3)

# gRPC status codes etcd answers with, as the gateway passes them through.
GRPC_OUT_OF_RANGE = 11  # "required revision has been compacted"
GRPC_UNAVAILABLE = 14  # "no leader", "leader changed", member stopping
GRPC_UNAUTHENTICATED = 16  # "invalid auth token"

Key: TypeAlias = "str | bytes"


class EtcdError(Exception):
    """etcd answered with an error (``code`` is the gRPC status code, 0 if unknown)."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint could be reached, or a watch stream broke."""


class Compacted(EtcdError):
    """A range at a revision that compaction has removed."""


class WatchCompacted(EtcdError):
    """The watch's start revision is compacted: relist (normal after a long disconnect)."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch revision compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Client certificate and key (both or neither), and the CA that signs the servers."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int
    revision: int  # the store revision the range was read at


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: int
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: tuple[RangeResult | PutResult | DeleteResult, ...]


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    id: int
    ttl: int  # seconds left; -1 when the lease does not exist (expired or revoked)
    granted_ttl: int
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["PUT", "DELETE"]
    kv: KeyValue  # for DELETE: the key, and mod_revision = the deletion's revision


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: its events (all of one revision are in the same batch)."""

    revision: int  # header revision; for a progress notification, the watch's progress
    events: tuple[WatchEvent, ...]
    created: bool = False

    @property
    def progress(self) -> bool:
        return not self.events and not self.created


# --- transaction operations --------------------------------------------------------------

CompareTarget = Literal["version", "create_revision", "mod_revision", "value", "lease"]
_TARGETS: dict[str, tuple[str, str]] = {  # ours → (gateway target enum, value field)
    "version": ("VERSION", "version"),
    "create_revision": ("CREATE", "create_revision"),
    "mod_revision": ("MOD", "mod_revision"),
    "value": ("VALUE", "value"),
    "lease": ("LEASE", "lease"),
}
_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


@dataclass(frozen=True, slots=True)
class Compare:
    """``Compare("/k", "mod_revision", "==", 12)``: a txn condition on one key."""

    key: Key
    target: CompareTarget
    op: Literal["==", "!=", "<", ">"]
    value: int | Key

    def to_json(self) -> dict[str, Any]:
        target, field = _TARGETS[self.target]
        value: object = self.value
        if self.target == "value":
            assert not isinstance(self.value, int), "compare on value takes str or bytes"
            value = _b64(self.value)
        else:
            value = str(self.value)
        return {"key": _b64(self.key), "target": target, "result": _RESULTS[self.op], field: value}


@dataclass(frozen=True, slots=True)
class Put:
    key: Key
    value: Key
    lease: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
        if self.lease:
            body["lease"] = str(self.lease)
        return {"request_put": body}


@dataclass(frozen=True, slots=True)
class DeleteRange:
    key: Key
    range_end: Key | None = None  # None: just ``key``; see :func:`prefix_end`

    def to_json(self) -> dict[str, Any]:
        return {"request_delete_range": _range_body(self.key, self.range_end)}


@dataclass(frozen=True, slots=True)
class Range:
    key: Key
    range_end: Key | None = None

    def to_json(self) -> dict[str, Any]:
        return {"request_range": _range_body(self.key, self.range_end)}


Op: TypeAlias = "Put | DeleteRange | Range"


# --- encoding ----------------------------------------------------------------------------


def _bytes(key: Key) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _b64(data: Key) -> str:
    return base64.b64encode(_bytes(data)).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: Key) -> bytes:
    """The range_end that makes ``[prefix, end)`` every key starting with ``prefix``."""
    data = bytearray(_bytes(prefix))
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return b"\x00"  # the empty prefix: every key


def _range_body(key: Key, range_end: Key | None) -> dict[str, Any]:
    body = {"key": _b64(key)}
    if range_end is not None:
        body["range_end"] = _b64(range_end)
    return body


def _int(value: object) -> int:
    return int(value) if value else 0  # type: ignore[call-overload]


def _kv(raw: Mapping[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(raw.get("key")),
        value=_unb64(raw.get("value")),
        create_revision=_int(raw.get("create_revision")),
        mod_revision=_int(raw.get("mod_revision")),
        version=_int(raw.get("version")),
        lease=_int(raw.get("lease")),
    )


def _revision(body: Mapping[str, Any]) -> int:
    return _int((body.get("header") or {}).get("revision"))


def _range_result(body: Mapping[str, Any]) -> RangeResult:
    return RangeResult(
        kvs=tuple(_kv(kv) for kv in body.get("kvs") or ()),
        more=bool(body.get("more")),
        count=_int(body.get("count")),
        revision=_revision(body),
    )


def _op_result(raw: Mapping[str, Any]) -> RangeResult | PutResult | DeleteResult:
    if "response_range" in raw:
        return _range_result(raw["response_range"])
    if "response_put" in raw:
        return PutResult(_revision(raw["response_put"]))
    body = raw.get("response_delete_range") or {}
    return DeleteResult(_int(body.get("deleted")), _revision(body))


def _error_of(body: Mapping[str, Any]) -> EtcdError | None:
    """The error in a gateway answer: ``{"error": "...", "code": N}`` for unary calls,
    ``{"error": {"grpc_code": N, "message": "..."}}`` inside streams."""
    error = body.get("error")
    if error is None:
        return None
    if isinstance(error, dict):
        code, message = _int(error.get("grpc_code")), str(error.get("message") or error)
    else:
        code, message = _int(body.get("code")), str(body.get("message") or error)
    if code == GRPC_OUT_OF_RANGE and "compacted" in message:
        return Compacted(message, code=code)
    if code == GRPC_UNAVAILABLE:
        return EtcdUnavailable(message, code=code)
    return EtcdError(message, code=code)


def _error_in(raw: bytes) -> EtcdError | None:
    """The error in a raw answer, or an error for an answer that is not JSON at all."""
    try:
        body = json.loads(raw)
    except ValueError:
        return EtcdError(f"not a JSON answer: {raw[:200].decode(errors='replace')}")
    return _error_of(body) if isinstance(body, dict) else None


def _keep_alive(resp: aiohttp.ClientResponse) -> None:
    """Turn on TCP keepalive probes (see WATCH_KEEPALIVE) on a response's connection."""
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    idle, interval, count = WATCH_KEEPALIVE
    with contextlib.suppress(OSError, AttributeError):  # not every platform has them all
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)


class EtcdClient:
    """A client for one etcd cluster through any of its members' client URLs.

    Create and use it inside the event loop (``async with EtcdClient([...]) as client``).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        credentials: tuple[str, str] | None = None,
        tls: TLSConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.credentials = credentials
        self.tls = tls
        self.timeout = timeout
        self.current = 0  # index of the endpoint that answered last
        self._token: str | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.current]

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_option: ssl.SSLContext | bool = self.tls.context() if self.tls else True
            self._session = aiohttp.ClientSession(
                read_bufsize=READ_BUFSIZE,
                headers={"Content-Type": "application/json", "User-Agent": "clusterdns"},
                connector=aiohttp.TCPConnector(ssl=ssl_option),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transport -----------------------------------------------------------------------

    def _order(self) -> list[int]:
        n = len(self.endpoints)
        return [(self.current + i) % n for i in range(n)]

    async def _headers(self, endpoint: str, *, fresh: bool = False) -> dict[str, str]:
        if self.credentials is None:
            return {}
        if self._token is None or fresh:
            self._token = await self._authenticate(endpoint)
        return {"Authorization": self._token}

    async def _authenticate(self, endpoint: str) -> str:
        user, password = self.credentials or ("", "")
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with self.session.post(
            f"{endpoint}/v3/auth/authenticate",
            data=json.dumps({"name": user, "password": password}),
            timeout=timeout,
        ) as resp:
            raw = await resp.read()
        error = _error_in(raw)
        if error is not None:
            raise error
        return str(json.loads(raw)["token"])

    async def _open(
        self, path: str, body: Mapping[str, Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """POST to the first endpoint that takes it; the caller reads and releases it."""
        data = json.dumps(body)
        failures: list[str] = []
        for index in self._order():
            endpoint = self.endpoints[index]
            try:
                for attempt in (1, 2):
                    headers = await self._headers(endpoint, fresh=attempt == 2)
                    if path == "/v3/watch":
                        # Cancel the watch when the member loses its leader (else an
                        # isolated member's watch just goes quiet).
                        headers["Grpc-Metadata-hasleader"] = "true"
                    resp = await self.session.post(
                        f"{endpoint}{path}", data=data, headers=headers, timeout=timeout
                    )
                    if resp.status == 200:
                        break
                    # An error status carries a JSON error body; Unavailable moves on.
                    async with resp:
                        raw = await resp.read()
                    error = _error_in(raw) or EtcdError(
                        f"{path}: HTTP {resp.status}: {raw[:200].decode(errors='replace')}"
                    )
                    if error.code == GRPC_UNAUTHENTICATED and attempt == 1 and self.credentials:
                        continue  # the token expired: authenticate again, once
                    raise error
            except EtcdUnavailable as exc:
                failures.append(f"{endpoint}: {exc}")
                continue
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                failures.append(f"{endpoint}: {type(exc).__name__}: {exc}")
                continue
            if index != self.current:
                log.info("etcd: now using %s", endpoint)
            self.current = index
            return resp
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(failures))

    async def _call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One unary call; returns the decoded JSON answer."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        for attempt in (1, 2):
            resp = await self._open(path, body, timeout)
            try:
                async with resp:
                    raw = await resp.read()
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                # The member went away between the headers and the body.
                if attempt == 2:
                    raise EtcdUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
                self._skip()
                continue
            try:
                answer: dict[str, Any] = json.loads(raw)
            except ValueError as exc:
                raise EtcdError(f"{path}: not JSON: {raw[:200]!r}") from exc
            error = _error_of(answer)
            if error is not None:
                raise error
            return answer
        raise AssertionError("unreachable")

    def _skip(self) -> None:
        self.current = (self.current + 1) % len(self.endpoints)

    # --- KV ------------------------------------------------------------------------------

    async def range(
        self,
        key: Key,
        range_end: Key | None = None,
        *,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        """Keys in ``[key, range_end)`` (or starting with ``key`` when ``prefix``), at
        ``revision`` (0: the latest), at most ``limit`` (0: all); ``more`` says whether
        more follow. Raises :class:`Compacted` for a compacted revision."""
        if prefix:
            range_end = prefix_end(key)
        body = _range_body(key, range_end)
        if revision:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        if keys_only:
            body["keys_only"] = True
        if serializable:
            body["serializable"] = True
        return _range_result(await self._call("/v3/kv/range", body))

    async def get(self, key: Key) -> KeyValue | None:
        found = await self.range(key)
        return found.kvs[0] if found.kvs else None

    async def put(self, key: Key, value: Key, *, lease: int = 0) -> PutResult:
        body = Put(key, value, lease).to_json()["request_put"]
        return PutResult(_revision(await self._call("/v3/kv/put", body)))

    async def delete_range(
        self, key: Key, range_end: Key | None = None, *, prefix: bool = False
    ) -> DeleteResult:
        if prefix:
            range_end = prefix_end(key)
        answer = await self._call("/v3/kv/deleterange", _range_body(key, range_end))
        return DeleteResult(_int(answer.get("deleted")), _revision(answer))

    async def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """All ``compare`` hold → ``success`` ops, else ``failure`` ops, atomically."""
        body = {
            "compare": [c.to_json() for c in compare],
            "success": [op.to_json() for op in success],
            "failure": [op.to_json() for op in failure],
        }
        answer = await self._call("/v3/kv/txn", body)
        return TxnResult(
            succeeded=bool(answer.get("succeeded")),
            revision=_revision(answer),
            responses=tuple(_op_result(r) for r in answer.get("responses") or ()),
        )

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": physical})

    # --- leases --------------------------------------------------------------------------

    async def lease_grant(self, ttl: int, *, lease_id: int = 0) -> LeaseInfo:
        answer = await self._call("/v3/lease/grant", {"TTL": str(ttl), "ID": str(lease_id)})
        ttl = _int(answer.get("TTL"))
        return LeaseInfo(_int(answer.get("ID")), ttl, ttl)

    async def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease once; returns its new TTL (0: the lease is gone).

        ``/v3/lease/keepalive`` is a stream: the first answer line is the renewal.
        """
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        resp = await self._open("/v3/lease/keepalive", {"ID": str(lease_id)}, timeout)
        async with resp:
            try:
                line = await resp.content.readline()
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                raise EtcdUnavailable(f"lease keepalive: {type(exc).__name__}: {exc}") from exc
        if not line.strip():
            raise EtcdUnavailable("lease keepalive: empty answer")
        message = json.loads(line)
        error = _error_of(message)
        if error is not None:
            raise error
        return _int((message.get("result") or {}).get("TTL"))

    async def lease_revoke(self, lease_id: int) -> None:
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    async def lease_timetolive(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        answer = await self._call("/v3/lease/timetolive", {"ID": str(lease_id), "keys": keys})
        return LeaseInfo(
            id=_int(answer.get("ID")) or lease_id,
            ttl=int(answer.get("TTL", 0)),
            granted_ttl=_int(answer.get("grantedTTL")),
            keys=tuple(_unb64(k) for k in answer.get("keys") or ()),
        )

    # --- watch ---------------------------------------------------------------------------

    async def watch(
        self,
        key: Key,
        range_end: Key | None = None,
        *,
        prefix: bool = False,
        start_revision: int = 0,
        progress_notify: bool = True,
        inactivity_timeout: float = WATCH_INACTIVITY,
    ) -> AsyncGenerator[WatchBatch, None]:
        """Watch ``key`` (or a range, or a prefix) from ``start_revision`` (0: from now).

        Yields one :class:`WatchBatch` per watch response, the first one ``created``.
        Raises :class:`WatchCompacted` when ``start_revision`` is compacted, and
        :class:`EtcdUnavailable` when the stream breaks or goes silent (etcd never ends
        a watch on its own): resume from the last revision seen.
        """
        if prefix:
            range_end = prefix_end(key)
        create = _range_body(key, range_end)
        if start_revision:
            create["start_revision"] = str(start_revision)
        if progress_notify:
            create["progress_notify"] = True
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=inactivity_timeout
        )
        resp = await self._open("/v3/watch", {"create_request": create}, timeout)
        _keep_alive(resp)
        async with resp:
            while True:
                try:
                    line = await resp.content.readline()
                except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                    raise EtcdUnavailable(f"watch interrupted: {type(exc).__name__}") from exc
                if not line:
                    raise EtcdUnavailable("watch stream ended")
                if line.isspace():
                    continue
                message = json.loads(line)
                error = _error_of(message)
                if error is not None:
                    raise error
                result = message.get("result") or {}
                compact_revision = _int(result.get("compact_revision"))
                if compact_revision:
                    raise WatchCompacted(compact_revision)
                if result.get("canceled"):
                    reason = result.get("cancel_reason") or "canceled by the server"
                    raise EtcdUnavailable(f"watch canceled: {reason}")
                yield WatchBatch(
                    revision=_revision(result),
                    events=tuple(
                        WatchEvent(
                            "DELETE" if event.get("type") == "DELETE" else "PUT",
                            _kv(event.get("kv") or {}),
                        )
                        for event in result.get("events") or ()
                    ),
                    created=bool(result.get("created")),
                )
