"""The cluster model: indexed, slim records that the DNS plugin reads synchronously.

Sources (the Kubernetes API reflector, the manifests folder) write into a :class:`ClusterModel`
from the event loop; the query path reads it between awaits, so there is no locking. Every
index a query needs is maintained at update time, so each reader is a dict lookup.

Writers take Kubernetes API objects as decoded into :mod:`clusterdns.sources.kube.objects`
Structs (the manifests source converts its YAML documents into the same Structs) and convert
them with the pure functions of :mod:`clusterdns.sources.convert`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import msgspec

from .convert import (
    canonical_ip,
    to_endpoints,
    to_namespace,
    to_pod,
    to_service,
    to_slice_endpoints,
)
from .kube import objects as api
from .podips import PodIPIndex
from .records import Endpoint, IpOwner, Namespace, Pod, Service, ServicePort

__all__ = [
    "Change",
    "ClusterModel",
    "Endpoint",
    "EventType",
    "IpOwner",
    "Kind",
    "Namespace",
    "Pod",
    "Service",
    "ServicePort",
]

log = logging.getLogger("clusterdns.sources")

EventType: TypeAlias = Literal["ADDED", "MODIFIED", "DELETED"]
ServiceKey: TypeAlias = tuple[str, str]  # (namespace, name)


class Kind(enum.StrEnum):
    SERVICES = "services"
    ENDPOINTSLICES = "endpointslices"
    ENDPOINTS = "endpoints"  # legacy v1 Endpoints, used when EndpointSlices are unavailable
    PODS = "pods"
    NAMESPACES = "namespaces"
    # The same Pod watch, kept only as a Pod IP → namespace index (autopath @kubernetes);
    # watching PODS maintains it too, so a source never runs two Pod watches.
    POD_IPS = "pod_ips"


# Either endpoints kind satisfies the other's sync requirement: the API source falls back
# from EndpointSlices to v1 Endpoints when the discovery group is missing.
_ENDPOINT_KINDS = frozenset({Kind.ENDPOINTSLICES, Kind.ENDPOINTS})
# Kinds whose listing also satisfies another's sync requirement.
_ALSO_SYNCS: dict[Kind, frozenset[Kind]] = {
    Kind.ENDPOINTSLICES: _ENDPOINT_KINDS,
    Kind.ENDPOINTS: _ENDPOINT_KINDS,
    Kind.PODS: frozenset({Kind.PODS, Kind.POD_IPS}),
}


@dataclass(frozen=True)
class Change:
    """What DNS-visible things one update changed."""

    services: frozenset[ServiceKey]  # Service record or its merged endpoints
    namespaces: frozenset[str]  # Namespace record, or (un)existence of a namespace
    pod_ips: frozenset[str]  # IPs whose Pods changed
    full: bool = False  # True: assume anything may have changed


class _SliceRecord(msgspec.Struct, frozen=True, gc=False):
    """Stored form of one EndpointSlice or v1 Endpoints object."""

    service: str | None
    endpoints: tuple[Endpoint, ...]


@dataclass
class _Pending:
    services: set[ServiceKey] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    pod_ips: set[str] = field(default_factory=set)
    dirty_services: set[ServiceKey] = field(default_factory=set)  # merge endpoints/owners

    def __bool__(self) -> bool:
        return bool(self.services or self.namespaces or self.pod_ips)


class ClusterModel:
    """Indexed cluster state. Mutated only from the event loop; readers never await."""

    def __init__(self, *, kinds: set[Kind]) -> None:
        self.kinds: frozenset[Kind] = frozenset(kinds)
        self.generation = 0
        self.synced = False
        self.synced_event = asyncio.Event()
        self._synced_kinds: set[Kind] = set()
        self._subscribers: list[Callable[[Change], None]] = []

        self._services: dict[ServiceKey, Service] = {}
        self._services_by_ns: dict[str, dict[str, Service]] = {}
        # (kind, namespace, object name) → stored slice; per service: slice keys
        self._slices: dict[tuple[Kind, str, str], _SliceRecord] = {}
        self._slices_by_service: dict[ServiceKey, set[tuple[Kind, str, str]]] = {}
        self._endpoints: dict[ServiceKey, tuple[Endpoint, ...]] = {}
        self._pods: dict[ServiceKey, Pod] = {}
        self._pods_by_ip: dict[str, tuple[Pod, ...]] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._owned_ips: dict[ServiceKey, tuple[tuple[str, IpOwner], ...]] = {}
        self._ip_owners: dict[str, tuple[IpOwner, ...]] = {}
        self._pod_ips = PodIPIndex()  # maintained only when POD_IPS is required
        if not self.kinds:
            self._set_synced()

    def require(self, kind: Kind) -> None:
        """Also require ``kind`` (a plugin asking for more than the owner's setup chose).

        Call it before any source runs: sources watch ``source.kinds | model.kinds``
        when they start, and sync now waits for ``kind`` too.
        """
        if kind in self.kinds:
            return
        self.kinds = self.kinds | {kind}
        if self.synced and kind not in self._synced_kinds:
            self.synced = False
            self.synced_event.clear()

    # --- sync and notification -----------------------------------------------------------

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until every required kind has been listed once; False on timeout."""
        try:
            await asyncio.wait_for(self.synced_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def subscribe(self, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` after every DNS-visible change, synchronously."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[Change], None]) -> None:
        """Stop calling ``callback`` (a plugin handing the model to its successor)."""
        self._subscribers = [c for c in self._subscribers if c != callback]

    def _mark_synced(self, kind: Kind) -> None:
        self._synced_kinds.add(kind)
        self._synced_kinds |= _ALSO_SYNCS.get(kind, frozenset())
        if not self.synced and self.kinds <= self._synced_kinds:
            self._set_synced()

    def _set_synced(self) -> None:
        self.synced = True
        self.synced_event.set()

    def _commit(self, pending: _Pending) -> None:
        for key in pending.dirty_services:
            self._refresh_service(key, pending)
        if not pending:
            return
        self.generation += 1
        change = Change(
            services=frozenset(pending.services),
            namespaces=frozenset(pending.namespaces),
            pod_ips=frozenset(pending.pod_ips),
        )
        for callback in self._subscribers:
            try:
                callback(change)
            except Exception:
                log.exception("sources: model subscriber %r failed", callback)

    # --- writers -------------------------------------------------------------------------

    def replace_all(self, kind: Kind, objects: Iterable[object]) -> None:
        """Swap the whole contents of ``kind`` for ``objects`` (a list) and mark it synced.

        Only the differences are applied, so a relist that finds nothing new bumps no
        generation and notifies nobody.
        """
        if kind is Kind.POD_IPS or (kind is Kind.PODS and Kind.POD_IPS in self.kinds):
            objects = list(objects)
            self._pod_ips.replace_all(objects)  # type: ignore[arg-type]
            if kind is Kind.POD_IPS:
                # Nothing the DNS plugin precomputes depends on it: no generation, no notice.
                self._mark_synced(kind)
                return
        pending = _Pending()
        fresh = dict(self._convert(kind, obj) for obj in objects)
        for key in [k for k in self._keys(kind) if k not in fresh]:
            self._put(kind, key, None, pending)
        for key, record in fresh.items():
            self._put(kind, key, record, pending)
        self._mark_synced(kind)
        self._commit(pending)

    def apply(self, kind: Kind, event: EventType, obj: object) -> None:
        """Apply one watch event. An update equal to the stored record (only the
        resourceVersion changed) bumps no generation and notifies nobody."""
        if kind is Kind.POD_IPS or (kind is Kind.PODS and Kind.POD_IPS in self.kinds):
            assert isinstance(obj, api.Pod), obj
            self._pod_ips.apply(obj, deleted=event == "DELETED")
            if kind is Kind.POD_IPS:
                return
        key, record = self._convert(kind, obj)
        pending = _Pending()
        self._put(kind, key, None if event == "DELETED" else record, pending)
        self._commit(pending)

    @staticmethod
    def _convert(kind: Kind, obj: object) -> tuple[ServiceKey, object]:
        if kind is Kind.SERVICES:
            assert isinstance(obj, api.Service), obj
            svc = to_service(obj)
            return (svc.namespace, svc.name), svc
        if kind is Kind.ENDPOINTSLICES:
            assert isinstance(obj, api.EndpointSlice), obj
            service, endpoints = to_slice_endpoints(obj)
            meta = obj.metadata
            return (meta.namespace, meta.name), _SliceRecord(service, endpoints)
        if kind is Kind.ENDPOINTS:
            assert isinstance(obj, api.Endpoints), obj
            meta = obj.metadata
            return (meta.namespace, meta.name), _SliceRecord(meta.name, to_endpoints(obj))
        if kind is Kind.PODS:
            assert isinstance(obj, api.Pod), obj
            pod = to_pod(obj)
            return (pod.namespace, pod.name), pod
        if kind is Kind.NAMESPACES:
            assert isinstance(obj, api.Namespace), obj
            ns = to_namespace(obj)
            return ("", ns.name), ns
        raise ValueError(f"unknown kind {kind!r}")

    def _keys(self, kind: Kind) -> list[ServiceKey]:
        if kind is Kind.SERVICES:
            return list(self._services)
        if kind in _ENDPOINT_KINDS:
            return [(ns, name) for k, ns, name in self._slices if k is kind]
        if kind is Kind.PODS:
            return list(self._pods)
        return [("", name) for name in self._namespaces]

    def _put(self, kind: Kind, key: ServiceKey, record: object, pending: _Pending) -> None:
        if kind is Kind.SERVICES:
            assert record is None or isinstance(record, Service)
            self._put_service(key, record, pending)
        elif kind in _ENDPOINT_KINDS:
            assert record is None or isinstance(record, _SliceRecord)
            self._put_slice((kind, *key), record, pending)
        elif kind is Kind.PODS:
            assert record is None or isinstance(record, Pod)
            self._put_pod(key, record, pending)
        else:
            assert record is None or isinstance(record, Namespace)
            self._put_namespace(key[1], record, pending)

    def _put_service(self, key: ServiceKey, svc: Service | None, pending: _Pending) -> None:
        old = self._services.get(key)
        if old == svc:
            return
        ns, name = key
        if svc is None:
            del self._services[key]
            in_ns = self._services_by_ns[ns]
            del in_ns[name]
            if not in_ns:
                del self._services_by_ns[ns]
                pending.namespaces.add(ns)
        else:
            self._services[key] = svc
            if ns not in self._services_by_ns:
                pending.namespaces.add(ns)
            self._services_by_ns.setdefault(ns, {})[name] = svc
        pending.services.add(key)
        pending.dirty_services.add(key)

    def _put_slice(
        self, key: tuple[Kind, str, str], record: _SliceRecord | None, pending: _Pending
    ) -> None:
        old = self._slices.get(key)
        if old == record:
            return
        ns = key[1]
        if old is not None and old.service is not None:
            svc_key = (ns, old.service)
            members = self._slices_by_service[svc_key]
            members.discard(key)
            if not members:
                del self._slices_by_service[svc_key]
            pending.dirty_services.add(svc_key)
        if record is None:
            del self._slices[key]
        else:
            self._slices[key] = record
            if record.service is not None:
                svc_key = (ns, record.service)
                self._slices_by_service.setdefault(svc_key, set()).add(key)
                pending.dirty_services.add(svc_key)

    def _refresh_service(self, key: ServiceKey, pending: _Pending) -> None:
        """Recompute a Service's merged endpoints and its reverse (PTR) entries."""
        merged: dict[str, Endpoint] = {}
        for slice_key in sorted(self._slices_by_service.get(key, ())):
            for ep in self._slices[slice_key].endpoints:
                first = ep.addresses[0]
                seen = merged.get(first)
                # The same address in two slices (during a migration): keep the first,
                # unless only the later one is ready.
                if seen is None or (ep.ready and not seen.ready):
                    merged[first] = ep
        endpoints = tuple(merged.values())
        if endpoints != self._endpoints.get(key, ()):
            pending.services.add(key)
            if endpoints:
                self._endpoints[key] = endpoints
            else:
                self._endpoints.pop(key, None)

        owned: dict[str, IpOwner] = {}
        svc = self._services.get(key)
        if svc is not None:
            ns, name = key
            for ip in svc.cluster_ips:
                owned[ip] = IpOwner(ns, name, None)
            for ep in endpoints:
                if ep.ready or svc.publish_not_ready:
                    for ip in ep.addresses:
                        owned.setdefault(ip, IpOwner(ns, name, ep.hostname))
        new_owned = tuple(owned.items())
        old_owned = self._owned_ips.get(key, ())
        if new_owned == old_owned:
            return
        for ip, owner in old_owned:
            rest = tuple(o for o in self._ip_owners[ip] if o is not owner)
            if rest:
                self._ip_owners[ip] = rest
            else:
                del self._ip_owners[ip]
        for ip, owner in new_owned:
            self._ip_owners[ip] = (*self._ip_owners.get(ip, ()), owner)
        if new_owned:
            self._owned_ips[key] = new_owned
        else:
            del self._owned_ips[key]

    def _put_pod(self, key: ServiceKey, pod: Pod | None, pending: _Pending) -> None:
        old = self._pods.get(key)
        if old == pod:
            return
        if old is not None:
            for ip in old.ips:
                rest = tuple(p for p in self._pods_by_ip[ip] if p is not old)
                if rest:
                    self._pods_by_ip[ip] = rest
                else:
                    del self._pods_by_ip[ip]
            pending.pod_ips.update(old.ips)
        if pod is None:
            del self._pods[key]
        else:
            self._pods[key] = pod
            for ip in pod.ips:
                self._pods_by_ip[ip] = (*self._pods_by_ip.get(ip, ()), pod)
            pending.pod_ips.update(pod.ips)

    def _put_namespace(self, name: str, ns: Namespace | None, pending: _Pending) -> None:
        old = self._namespaces.get(name)
        if old == ns:
            return
        if ns is None:
            del self._namespaces[name]
        else:
            self._namespaces[name] = ns
        pending.namespaces.add(name)

    # --- readers (O(1), no awaits) -------------------------------------------------------

    def service(self, namespace: str, name: str) -> Service | None:
        return self._services.get((namespace, name))

    def endpoints(self, namespace: str, service: str) -> tuple[Endpoint, ...]:
        """All endpoints of a Service, merged over its slices, deduplicated by address."""
        return self._endpoints.get((namespace, service), ())

    def namespace_exists(self, namespace: str) -> bool:
        """Namespace objects decide when they are watched; otherwise any Service in it."""
        if Kind.NAMESPACES in self.kinds:
            return namespace in self._namespaces
        return namespace in self._services_by_ns

    def namespace(self, name: str) -> Namespace | None:
        return self._namespaces.get(name)

    def namespaces(self) -> Iterable[Namespace]:
        return self._namespaces.values()

    def services(self) -> Iterable[Service]:
        return self._services.values()

    def services_in(self, namespace: str) -> Iterable[Service]:
        in_ns = self._services_by_ns.get(namespace)
        return in_ns.values() if in_ns is not None else ()

    def pods_by_ip(self, ip: str) -> tuple[Pod, ...]:
        return self._pods_by_ip.get(ip, ())

    def pod_namespace(self, ip: str) -> str | None:
        """The namespace of the Pod whose IP is ``ip`` (any valid text form), or None.

        With POD_IPS required: the slim index, which follows the current owner of a reused
        IP and leaves out host-network, terminating and finished Pods (see
        :mod:`clusterdns.sources.podips`). With only PODS: the namespace the Pods at ``ip``
        agree on (None when they disagree), as ``pods verified`` knows them. Else None.
        """
        if Kind.POD_IPS in self.kinds:
            return self._pod_ips.namespace_of(ip)
        if Kind.PODS not in self.kinds:
            return None
        canonical = canonical_ip(ip)
        pods = self._pods_by_ip.get(canonical, ()) if canonical is not None else ()
        namespaces = {p.namespace for p in pods}
        return namespaces.pop() if len(namespaces) == 1 else None

    def ip_owners(self, ip: str) -> tuple[IpOwner, ...]:
        """Reverse index for PTR: ClusterIPs, then ready (or published) endpoint addresses.

        Only Services that exist own IPs; ``ip`` must be canonical (see
        :func:`clusterdns.sources.convert.canonical_ip`).
        """
        return self._ip_owners.get(ip, ())
