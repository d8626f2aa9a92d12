"""A Kubernetes API test server speaking the real wire protocol, for tests of the real client.

Discovery, LIST (cluster-wide and namespaced, pagination, equality label selectors) and
WATCH (chunked JSON lines, bookmarks, resourceVersion replay from a bounded history, 410
Expired when too old, timeoutSeconds) for services, endpoints, endpointslices, pods and
namespaces, plus controls to misbehave: compact history, fail requests, cut watches,
go down and come back on the same port, answer slowly. Objects are plain dicts, as JSON has them.

    async with KubeAPIServer() as server:
        server.create(service("web", cluster_ip="10.96.0.20"))
        ...connect to server.url...
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceInfo:
    plural: str
    group: str  # "" for the core group
    version: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[str, ResourceInfo] = {
    r.plural: r
    for r in (
        ResourceInfo("services", "", "v1", "Service", True, ("svc",)),
        ResourceInfo("endpoints", "", "v1", "Endpoints", True, ("ep",)),
        ResourceInfo("pods", "", "v1", "Pod", True, ("po",)),
        ResourceInfo("namespaces", "", "v1", "Namespace", False, ("ns",)),
        ResourceInfo("endpointslices", "discovery.k8s.io", "v1", "EndpointSlice", True),
        # The Multi-Cluster Services CRD (KEP-1645): served only with ``serve_mcs``.
        ResourceInfo("serviceimports", "multicluster.x-k8s.io", "v1alpha1", "ServiceImport", True),
    )
}
BY_KIND = {r.kind: r for r in RESOURCES.values()}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    """Equality-based selector terms: (op, key, value) with op in =, !=, exists, !exists."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif raw.startswith("!"):
            terms.append(("!exists", raw[1:].strip(), None))
        elif " " in raw or "(" in raw:
            raise ValueError(f"unsupported selector {raw!r}")
        else:
            terms.append(("exists", raw, None))
    return terms


def selector_matches(terms: list[tuple[str, str, str | None]], labels: dict[str, str]) -> bool:
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True


@dataclass
class _Watch:
    plural: str
    namespace: str | None
    selector: list[tuple[str, str, str | None]]
    request: web.Request
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def wants(self, plural: str, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        return (
            plural == self.plural
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and selector_matches(self.selector, meta.get("labels") or {})
        )


class KubeAPIServer:
    """The test API server. All controls are synchronous and take effect at once."""

    def __init__(
        self,
        *,
        history_size: int = 1000,
        bookmark_interval: float = 0.5,
        disable_endpointslices: bool = False,
        token: str | None = None,
        expired_as_http_410: bool = False,
        serve_mcs: bool = False,
    ) -> None:
        self.history_size = history_size
        self.bookmark_interval = bookmark_interval
        self.disable_endpointslices = disable_endpointslices
        # The MCS CRDs installed: may be switched on while running (a later install).
        self.serve_mcs = serve_mcs
        self.token = token  # when set, require "Authorization: Bearer <token>"
        # Too old a watch resourceVersion: an HTTP 410 instead of an ERROR event in a 200.
        self.expired_as_http_410 = expired_as_http_410
        self.port = 0
        self.requests: collections.Counter[str] = collections.Counter()  # path → count
        self.watch_requests: collections.Counter[str] = collections.Counter()
        self.list_requests: collections.Counter[str] = collections.Counter()
        self.auth_headers: list[str | None] = []
        self.failed_requests = 0  # answered with the fail_requests status
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in RESOURCES}
        self._rv = 100
        self._history: collections.deque[tuple[int, str, str, Obj]] = collections.deque()
        self._oldest_rv = self._rv  # watching from below this gets 410 Expired
        self._watches: list[_Watch] = []
        self._fail_until = 0.0
        self._fail_status = 500
        self._slow_until = 0.0
        self._slow_delay = 0.0
        self._runner: web.AppRunner | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1; the first start picks a free port and keeps it."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api_versions)
        app.router.add_get("/apis", self._api_groups)
        app.router.add_get("/api/v1", self._resource_list)
        app.router.add_get("/apis/{group}/{version}", self._resource_list)
        app.router.add_get("/api/v1/{tail:.+}", self._resources)
        app.router.add_get("/apis/{group}/{version}/{tail:.+}", self._resources)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Go down: cut every connection and stop listening (start() comes back)."""
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubeAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- test controls -------------------------------------------------------------------

    def create(self, obj: Obj) -> Obj:
        return self._store(obj, "ADDED")

    def update(self, obj: Obj) -> Obj:
        return self._store(obj, "MODIFIED")

    def apply(self, obj: Obj) -> Obj:
        """Create or update."""
        info, key = self._key(obj)
        return self._store(obj, "MODIFIED" if key in self._objects[info.plural] else "ADDED")

    def delete(self, obj: Obj) -> None:
        info, key = self._key(obj)
        stored = self._objects[info.plural].pop(key)
        stored = copy.deepcopy(stored)
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self._record(info.plural, "DELETED", stored)

    def get(self, kind: str, name: str, namespace: str = "default") -> Obj | None:
        info = BY_KIND[kind]
        return self._objects[info.plural].get((namespace if info.namespaced else "", name))

    def compact(self) -> None:
        """Forget the event history: watching from any older resourceVersion gets 410."""
        self._history.clear()
        self._oldest_rv = self._rv

    def fail_requests(self, status: int = 500, seconds: float = 1.0) -> None:
        """Answer every request with ``status`` for the next ``seconds``."""
        self._fail_status = status
        self._fail_until = time.monotonic() + seconds

    def slow_requests(self, delay: float, seconds: float) -> None:
        """Hold every request ``delay`` seconds before handling it, for the next ``seconds``."""
        self._slow_delay = delay
        self._slow_until = time.monotonic() + seconds

    def drop_watches(self) -> None:
        """Cut open watch connections abruptly (no clean end of the chunked stream)."""
        for watch in self._watches:
            transport = watch.request.transport
            if transport is not None:
                transport.close()
            watch.queue.put_nowait(None)
        self._watches.clear()

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    # --- storage -------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _key(self, obj: Obj) -> tuple[ResourceInfo, tuple[str, str]]:
        info = BY_KIND[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            meta.setdefault("namespace", "default")
        return info, (meta.get("namespace", "") if info.namespaced else "", meta["name"])

    def _store(self, obj: Obj, event: str) -> Obj:
        info, key = self._key(obj)
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", info.group_version)
        meta = obj["metadata"]
        old = self._objects[info.plural].get(key)
        if event == "ADDED" and old is not None:
            raise KeyError(f"{info.kind} {key} already exists")
        if event == "MODIFIED" and old is None:
            raise KeyError(f"{info.kind} {key} does not exist")
        if old is not None:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = self._next_rv()
        self._objects[info.plural][key] = obj
        self._record(info.plural, event, obj)
        return copy.deepcopy(obj)

    def _record(self, plural: str, event: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._history.append((rv, plural, event, obj))
        while len(self._history) > self.history_size:
            self._oldest_rv = self._history.popleft()[0]
        for watch in self._watches:
            if watch.wants(plural, obj):
                watch.queue.put_nowait((event, obj))

    def _items(self, plural: str, namespace: str | None, selector: str) -> list[Obj]:
        terms = parse_selector(selector)
        return [
            obj
            for (ns, _), obj in sorted(self._objects[plural].items())
            if (namespace is None or ns == namespace)
            and selector_matches(terms, obj["metadata"].get("labels") or {})
        ]

    # --- HTTP ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[request.path] += 1
        self.auth_headers.append(request.headers.get("Authorization"))
        if time.monotonic() < self._slow_until:
            await asyncio.sleep(self._slow_delay)
        if time.monotonic() < self._fail_until:
            code = self._fail_status
            self.failed_requests += 1
            return web.json_response(status(code, "InternalError", "injected failure"), status=code)
        if (
            self.token is not None
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            return web.json_response(status(401, "Unauthorized", "Unauthorized"), status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.0-clusterdns-test",
                "platform": "linux/amd64",
            }
        )

    async def _api_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        )

    def _groups(self) -> Iterator[tuple[str, str]]:
        if not self.disable_endpointslices:
            yield ("discovery.k8s.io", "v1")
        if self.serve_mcs:
            yield ("multicluster.x-k8s.io", "v1alpha1")

    async def _api_groups(self, request: web.Request) -> web.Response:
        groups = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
            }
            for group, version in self._groups()
        ]
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info.get("version", "v1")
        if group and (group, version) not in set(self._groups()):
            return self._not_found(request)
        resources = [
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
            for r in RESOURCES.values()
            if r.group == group and r.version == version
        ]
        gv = f"{group}/{version}" if group else version
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": resources,
            }
        )

    def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            status(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            ),
            status=404,
        )

    def _route(self, request: web.Request) -> tuple[ResourceInfo, str | None, str | None] | None:
        """(resource, namespace, object name) for a resource path, None if unknown."""
        group = request.match_info.get("group", "")
        version = request.match_info.get("version", "v1")
        parts = request.match_info["tail"].strip("/").split("/")
        if group and (group, version) not in set(self._groups()):
            return None
        namespace: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        if len(parts) > 2:
            return None
        info = RESOURCES.get(parts[0])
        if info is None or info.group != group or info.version != version:
            return None
        if namespace is not None and not info.namespaced:
            return None
        return info, namespace, parts[1] if len(parts) == 2 else None

    async def _resources(self, request: web.Request) -> web.StreamResponse:
        route = self._route(request)
        if route is None:
            return self._not_found(request)
        info, namespace, name = route
        if name is not None:
            obj = self._objects[info.plural].get((namespace or "", name))
            if obj is None:
                return web.json_response(
                    status(404, "NotFound", f'{info.plural} "{name}" not found'), status=404
                )
            return web.json_response(obj)
        try:
            parse_selector(request.query.get("labelSelector", ""))
        except ValueError as exc:
            return web.json_response(status(400, "BadRequest", str(exc)), status=400)
        if request.query.get("watch") in ("1", "true"):
            self.watch_requests[request.path] += 1
            return await self._watch(request, info, namespace)
        self.list_requests[request.path] += 1
        return self._list(request, info, namespace)

    def _list(
        self, request: web.Request, info: ResourceInfo, namespace: str | None
    ) -> web.Response:
        items = self._items(info.plural, namespace, request.query.get("labelSelector", ""))
        rv, start = self._rv, 0
        token = request.query.get("continue")
        if token:
            state = json.loads(base64.urlsafe_b64decode(token))
            rv, start = state["rv"], state["start"]
            if rv < self._oldest_rv:
                return web.json_response(
                    status(410, "Expired", "The provided continue parameter is too old"),
                    status=410,
                )
        limit = int(request.query.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        meta: Obj = {"resourceVersion": str(rv)}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": end}).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - end
        return web.json_response(
            {
                "kind": f"{info.kind}List",
                "apiVersion": info.group_version,
                "metadata": meta,
                "items": items[start:end],
            }
        )

    async def _watch(
        self, request: web.Request, info: ResourceInfo, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        watch = _Watch(
            info.plural, namespace, parse_selector(query.get("labelSelector", "")), request
        )
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(query.get("timeoutSeconds") or 1800)
        # Decide what to replay and subscribe in one synchronous step: no event is lost.
        requested = query.get("resourceVersion", "")
        backlog: list[tuple[str, Obj]]
        expired = False
        if requested in ("", "0"):
            backlog = [
                ("ADDED", obj)
                for obj in self._items(info.plural, namespace, query.get("labelSelector", ""))
            ]
        elif int(requested) < self._oldest_rv:
            expired, backlog = True, []
        else:
            backlog = [
                (event, obj)
                for rv, plural, event, obj in self._history
                if rv > int(requested) and watch.wants(plural, obj)
            ]
        if expired and self.expired_as_http_410:
            message = f"too old resource version: {requested} ({self._oldest_rv})"
            return web.json_response(status(410, "Gone", message), status=410)
        if not expired:
            self._watches.append(watch)

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if expired:
                message = f"too old resource version: {requested} ({self._oldest_rv})"
                await self._send(response, "ERROR", status(410, "Expired", message))
                return response
            for event, obj in backlog:
                await self._send(response, event, obj)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                wait = min(left, self.bookmark_interval) if bookmarks else left
                try:
                    item = await asyncio.wait_for(watch.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and time.monotonic() < deadline:
                        await self._send(
                            response,
                            "BOOKMARK",
                            {
                                "kind": info.kind,
                                "apiVersion": info.group_version,
                                "metadata": {"resourceVersion": str(self._rv)},
                            },
                        )
                    continue
                if item is None:  # dropped
                    return response
                await self._send(response, *item)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            if watch in self._watches:
                self._watches.remove(watch)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, event: str, obj: Obj) -> None:
        await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")


# --- object builders ----------------------------------------------------------------------


def _meta(name: str, namespace: str | None, labels: dict[str, str] | None) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def service(
    name: str,
    namespace: str = "default",
    *,
    cluster_ip: str | None = None,
    cluster_ips: Iterable[str] | None = None,
    ports: Iterable[tuple[str, int, str]] = (("http", 80, "TCP"),),
    type: str = "ClusterIP",
    external_name: str | None = None,
    selector: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    publish_not_ready: bool = False,
) -> Obj:
    spec: Obj = {
        "type": type,
        "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
    }
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if cluster_ips is not None:
        spec["clusterIPs"] = list(cluster_ips)
    if external_name is not None:
        spec["externalName"] = external_name
    if selector is not None:
        spec["selector"] = selector
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": _meta(name, namespace, labels),
        "spec": spec,
    }


def endpoint_slice(
    name: str,
    service_name: str,
    namespace: str = "default",
    *,
    addresses: Iterable[str | tuple[str, bool | None]] = (),
    address_type: str = "IPv4",
    ports: Iterable[tuple[str, int, str]] = (("http", 80, "TCP"),),
    hostnames: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Obj:
    """``addresses``: IPs, or (IP, ready) pairs where ready None leaves the condition unset."""
    endpoints = []
    for item in addresses:
        ip, ready = (item, True) if isinstance(item, str) else item
        ep: Obj = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
        if hostnames and ip in hostnames:
            ep["hostname"] = hostnames[ip]
        endpoints.append(ep)
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": _meta(
            name, namespace, {**(labels or {}), "kubernetes.io/service-name": service_name}
        ),
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
    }


def service_import(
    name: str,
    namespace: str = "default",
    *,
    ips: Iterable[str] = (),
    headless: bool = False,
    ports: Iterable[tuple[str, int, str]] = (("http", 80, "TCP"),),
) -> Obj:
    """A ServiceImport (multicluster.x-k8s.io/v1alpha1) as an MCS implementation writes it."""
    return {
        "kind": "ServiceImport",
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "metadata": _meta(name, namespace, None),
        "spec": {
            "type": "Headless" if headless else "ClusterSetIP",
            **({} if headless else {"ips": list(ips)}),
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
        },
    }


def imported_slice(
    name: str,
    service_name: str,
    cluster: str,
    namespace: str = "default",
    **kwargs: Any,
) -> Obj:
    """An EndpointSlice an MCS implementation imports from ``cluster`` for ServiceImport
    ``service_name``: the multicluster labels, not the Service one."""
    obj = endpoint_slice(name, service_name, namespace, **kwargs)
    obj["metadata"]["labels"] = {
        "multicluster.kubernetes.io/service-name": service_name,
        "multicluster.kubernetes.io/source-cluster": cluster,
    }
    return obj


def endpoints(
    name: str,
    namespace: str = "default",
    *,
    ready: Iterable[str] = (),
    not_ready: Iterable[str] = (),
    ports: Iterable[tuple[str, int, str]] = (("http", 80, "TCP"),),
) -> Obj:
    subset: Obj = {"ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}
    if ready:
        subset["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": _meta(name, namespace, None),
        "subsets": [subset],
    }


def pod(
    name: str,
    namespace: str = "default",
    *,
    ip: str | None = None,
    ready: bool = True,
    labels: dict[str, str] | None = None,
) -> Obj:
    status_: Obj = {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}
    if ip is not None:
        status_["podIP"] = ip
        status_["podIPs"] = [{"ip": ip}]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _meta(name, namespace, labels),
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": status_,
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": _meta(name, None, labels),
        "status": {"phase": "Active"},
    }
