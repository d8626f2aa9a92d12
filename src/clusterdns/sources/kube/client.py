"""A small Kubernetes API client: paginated LIST, streaming WATCH, discovery, rate limit.

No Kubernetes client library: aiohttp for HTTP, msgspec to decode straight into the slim
API Structs of :mod:`.objects`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

import aiohttp
import msgspec

from . import objects as api
from .kubeconfig import ClusterConnection

__all__ = [
    "ApiError",
    "Event",
    "KubeClient",
    "ResourceGone",
    "TokenBucket",
]

log = logging.getLogger("clusterdns.sources.kube")

T = TypeVar("T")

READ_BUFSIZE = 2 * 1024 * 1024  # watch lines over 512 KiB fail with aiohttp's default
PAGE_SIZE = 500
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)

_status_decoder = msgspec.json.Decoder(api.Status)
_event_decoder = msgspec.json.Decoder(api.WatchEvent)


class ApiError(Exception):
    """The API server answered with an error status (or an ERROR watch event)."""

    def __init__(self, code: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code = code
        self.reason = reason
        self.message = message


class ResourceGone(ApiError):
    """410 Gone: the resourceVersion is too old (compacted). Normal: relist."""


def _api_error(code: int, body: bytes) -> ApiError:
    reason, message = "", body[:200].decode(errors="replace")
    try:
        status = _status_decoder.decode(body)
        reason, message = status.reason, status.message
        code = status.code or code
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    cls = ResourceGone if code == 410 else ApiError
    return cls(code, reason, message)


class TokenBucket:
    """Client-side rate limit: ``qps`` requests a second on average, bursts of ``burst``."""

    def __init__(
        self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()

    def delay(self) -> float:
        """Take a token; return how long to wait before using it (0 when one was ready)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass(frozen=True)
class Event(Generic[T]):
    """A decoded watch event. BOOKMARK events carry only ``resource_version``."""

    type: str  # ADDED, MODIFIED, DELETED or BOOKMARK
    object: T | None
    resource_version: str


class KubeClient:
    """One aiohttp session to one API server. Create and use it inside the event loop."""

    def __init__(
        self,
        connection: ClusterConnection,
        *,
        qps: float | None = None,
        burst: int | None = None,
        max_inflight: int | None = None,
    ) -> None:
        self.connection = connection
        self.limiter = (
            TokenBucket(qps, burst or max(1, int(qps * 2))) if qps is not None and qps > 0 else None
        )
        # At most this many requests waiting for their response headers at once (CoreDNS's
        # apiserver_max_inflight). As in client-go's round tripper, a request holds its slot
        # until the headers arrive, so a long watch does not keep one.
        self.inflight = (
            asyncio.Semaphore(max_inflight)
            if max_inflight is not None and max_inflight > 0
            else None
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                read_bufsize=READ_BUFSIZE,
                headers={"Accept": "application/json", "User-Agent": "clusterdns"},
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
            )
        return self._session

    def _ssl(self) -> ssl.SSLContext | bool:
        tls = self.connection.ssl
        return True if tls is None else tls

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.connection.server}{path}{query}"

    async def _request(
        self, path: str, params: Mapping[str, str] | None, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """GET with rate limiting and one retry after a 401 (a rotated token)."""
        for attempt in (1, 2):
            if self.limiter is not None:
                await self.limiter.acquire()
            headers = await self.connection.headers()
            if self.inflight is None:
                resp = await self._get(path, params, headers, timeout)
            else:
                async with self.inflight:
                    resp = await self._get(path, params, headers, timeout)
            if resp.status == 401 and attempt == 1 and self.connection.credentials is not None:
                resp.release()
                self.connection.credentials.invalidate()
                continue
            if resp.status >= 400:
                body = await resp.read()
                resp.release()
                raise _api_error(resp.status, body)
            return resp
        raise AssertionError("unreachable")

    async def _get(
        self,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        return await self.session.get(
            self.url(path, params),
            headers=headers,
            timeout=timeout,
            server_hostname=self.connection.server_hostname,
        )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        resp = await self._request(path, params, REQUEST_TIMEOUT)
        async with resp:
            return await resp.read()

    async def has_group_version(self, path: str) -> bool:
        """Discovery: does ``/apis/<group>/<version>`` exist? 404 means no."""
        try:
            await self.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    async def list_pages(
        self,
        path: str,
        decoder: msgspec.json.Decoder[api.ObjectList[T]],
        *,
        label_selector: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> AsyncIterator[api.ObjectList[T]]:
        """The pages of a collection, one request each, decoded as they come (so a caller
        converting each page holds one page of API objects at a time, not the whole list).
        The list's resourceVersion is in every page's ``metadata``."""
        params: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = decoder.decode(await self.get(path, params))
            yield page
            if not page.metadata.continue_:
                return
            params["continue"] = page.metadata.continue_

    async def watch(
        self,
        path: str,
        decoder: msgspec.json.Decoder[T],
        resource_version_of: Callable[[T], str],
        *,
        resource_version: str,
        timeout_seconds: int,
        inactivity_timeout: float,
        label_selector: str | None = None,
    ) -> AsyncIterator[Event[T]]:
        """One WATCH call; yields events until the server ends the stream or it breaks.

        A broken or idle connection just ends the iteration (the caller resumes from the
        last resourceVersion it saw); an ERROR event raises :class:`ApiError` (410 as
        :class:`ResourceGone`).
        """
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=inactivity_timeout)
        resp = await self._request(path, params, timeout)
        async with resp:
            while True:
                try:
                    line = await resp.content.readline()
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                    log.debug("kubernetes: watch %s interrupted: %s", path, exc)
                    return
                except TimeoutError:
                    log.debug("kubernetes: watch %s idle for %ss", path, inactivity_timeout)
                    return
                if not line:
                    return
                if line.isspace():
                    continue
                event = _event_decoder.decode(line)
                raw = event.object
                if event.type == "ERROR":
                    status = _status_decoder.decode(raw)
                    cls = ResourceGone if status.code == 410 else ApiError
                    raise cls(status.code, status.reason, status.message)
                obj = decoder.decode(raw)
                rv = resource_version_of(obj)
                if event.type == "BOOKMARK":
                    yield Event("BOOKMARK", None, rv)
                else:
                    yield Event(event.type, obj, rv)
