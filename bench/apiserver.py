"""The Kubernetes API test server (tests/helpers/kubeapi.py) run in a thread, fed in bulk.

Bulk loading writes objects straight into the test server's store (no per-object deepcopy or
history), and LIST pages are assembled from JSON encoded once per object, so at 300k objects
what is timed is clusterdns reading the API, not the test server sorting and encoding it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from aiohttp import web
from bench.peers import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.kubeapi import BY_KIND, KubeAPIServer, ResourceInfo

Obj = dict[str, Any]


class BulkKubeAPIServer(KubeAPIServer):
    """KubeAPIServer with bulk loading and cached, pre-encoded LIST pages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoded: dict[str, dict[tuple[str, str], bytes]] = {p: {} for p in self._objects}
        self._sorted: dict[tuple[str, str | None], tuple[int, list[bytes]]] = {}
        self.list_seconds = 0.0  # time spent answering LIST requests

    def load(self, objs: Iterable[Obj]) -> int:
        """Store objects as if created, without watch events (call before anyone watches)."""
        count = 0
        for obj in objs:
            info, key = self._key(obj)
            meta = obj["metadata"]
            meta.setdefault("uid", f"uid-{self._rv}")
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            meta["resourceVersion"] = self._next_rv()
            self._objects[info.plural][key] = obj
            self._encoded[info.plural][key] = json.dumps(obj, separators=(",", ":")).encode()
            count += 1
        self._oldest_rv = self._rv
        self._sorted.clear()
        return count

    def _store(self, obj: Obj, event: str) -> Obj:
        stored = super()._store(obj, event)
        info, key = self._key(stored)
        self._encoded[info.plural][key] = json.dumps(stored, separators=(",", ":")).encode()
        self._sorted.clear()
        return stored

    def delete(self, obj: Obj) -> None:
        info, key = self._key(obj)
        super().delete(obj)
        self._encoded[info.plural].pop(key, None)
        self._sorted.clear()

    def _list(
        self, request: web.Request, info: ResourceInfo, namespace: str | None
    ) -> web.Response:
        if request.query.get("labelSelector"):
            return super()._list(request, info, namespace)
        started = time.perf_counter()
        cached = self._sorted.get((info.plural, namespace))
        if cached is None or cached[0] != self._rv:
            encoded = self._encoded[info.plural]
            rows = [
                encoded[key] for key in sorted(encoded) if namespace is None or key[0] == namespace
            ]
            cached = (self._rv, rows)
            self._sorted[(info.plural, namespace)] = cached
        rows = cached[1]
        rv, start = self._rv, 0
        token = request.query.get("continue")
        if token:
            state = json.loads(base64.urlsafe_b64decode(token))
            rv, start = state["rv"], state["start"]
        limit = int(request.query.get("limit") or 0)
        end = start + limit if limit > 0 else len(rows)
        meta: Obj = {"resourceVersion": str(rv)}
        if end < len(rows):
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": end}).encode()
            ).decode()
            meta["remainingItemCount"] = len(rows) - end
        head = json.dumps(
            {"kind": f"{info.kind}List", "apiVersion": info.group_version, "metadata": meta}
        ).encode()
        body = head[:-1] + b',"items":[' + b",".join(rows[start:end]) + b"]}"
        self.list_seconds += time.perf_counter() - started
        return web.Response(body=body, content_type="application/json")


class ApiServerThread:
    """A BulkKubeAPIServer on its own event loop in a daemon thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = BulkKubeAPIServer(**kwargs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kubeapi", daemon=True)

    def start(self) -> ApiServerThread:
        self.thread.start()
        self.call(self.server.start)
        return self

    def call(self, fn: Any, *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` (a coroutine function or a plain one) on the server's loop."""
        if asyncio.iscoroutinefunction(fn):
            return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)
        future: Future[Any] = Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        try:
            self.call(self.server.stop, timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def __enter__(self) -> ApiServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["BY_KIND", "ApiServerThread", "BulkKubeAPIServer"]
