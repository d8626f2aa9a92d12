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
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import msgspec

from .convert import (
    EndpointEntry,
    canonical_ip,
    expand,
    to_endpoints_entries,
    to_import_slice_entries,
    to_namespace,
    to_pod,
    to_service,
    to_service_import,
    to_slice_entries,
)
from .kube import objects as api
from .podips import PodIPIndex
from .records import Endpoint, IpOwner, Namespace, Pod, Service, ServiceImport, ServicePort

__all__ = [
    "Change",
    "ClusterModel",
    "Endpoint",
    "EventType",
    "IpOwner",
    "Kind",
    "Listing",
    "Namespace",
    "Pod",
    "Service",
    "ServiceImport",
    "ServicePort",
]

log = logging.getLogger("clusterdns.sources")

EventType: TypeAlias = Literal["ADDED", "MODIFIED", "DELETED"]
ServiceKey: TypeAlias = tuple[str, str]  # (namespace, name)
FULL_CHANGE = 10_000  # services (and pod IPs) changed by one update above which it is "full"
_intern = sys.intern


class Kind(enum.StrEnum):
    SERVICES = "services"
    ENDPOINTSLICES = "endpointslices"
    ENDPOINTS = "endpoints"  # legacy v1 Endpoints, used when EndpointSlices are unavailable
    PODS = "pods"
    NAMESPACES = "namespaces"
    # The same Pod watch, kept only as a Pod IP → namespace index (autopath @kubernetes);
    # watching PODS maintains it too, so a source never runs two Pod watches.
    POD_IPS = "pod_ips"
    # Multi-Cluster Services (KEP-1645), watched for ``multicluster`` zones only: the
    # ServiceImports, and the EndpointSlices an MCS implementation imports for them
    # (those labelled multicluster.kubernetes.io/service-name).
    SERVICE_IMPORTS = "serviceimports"
    MULTICLUSTER_SLICES = "multiclusterslices"


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
    # IPs a changed Service owned (ClusterIPs, served endpoints) before or after the
    # update: their PTR answers may differ. Not filled with ``full``.
    ips: frozenset[str] = frozenset()
    # ServiceImports whose record or imported endpoints changed (multicluster zones).
    imports: frozenset[ServiceKey] = frozenset()
    # Services created or deleted (a subset of ``services``): the names a namespace has
    # changed, so its "no such Service" answers may differ. Endpoint churn leaves it empty.
    named: frozenset[ServiceKey] = frozenset()


class _SliceRecord(msgspec.Struct, frozen=True, gc=False):
    """Stored form of one EndpointSlice.

    ``entries`` are :data:`~clusterdns.sources.convert.EndpointEntry`: a bare IP stands for
    a ready endpoint with that one address, no hostname and ``ports``.
    """

    name: str
    service: str | None
    ports: tuple[ServicePort, ...]
    entries: tuple[EndpointEntry, ...]


class _EndpointsRecord(_SliceRecord, frozen=True, gc=False):
    """Stored form of one legacy v1 Endpoints object (a type, not a field: 8 bytes less
    for every slice)."""


class _ImportSlice(_SliceRecord, frozen=True, gc=False):
    """Stored form of one imported EndpointSlice (``service``: its ServiceImport) with its
    source cluster; merged per cluster as a Service's slices are."""

    cluster: str


def _slice_order(record: _SliceRecord) -> tuple[bool, str]:
    # As (kind, name) sort: "endpoints" before "endpointslices".
    return (not isinstance(record, _EndpointsRecord), record.name)


_Members: TypeAlias = tuple[_SliceRecord, ...]  # a Service's slices, in _slice_order
# Stored: the record itself for a Service with one slice (nearly all), no 1-tuple.
_StoredMembers: TypeAlias = "_SliceRecord | tuple[_SliceRecord, ...]"
# ip → the Service (or Services, in the order they claimed it) answering its PTR query
_Owners: TypeAlias = "Service | tuple[Service, ...]"


def _merge(members: _Members) -> list[tuple[EndpointEntry, tuple[ServicePort, ...]]]:
    """A Service's endpoints over its slices with their ports, deduplicated by first address.

    The same address in two slices (during a migration): the first is kept, unless only a
    later one is ready (it then takes the first one's place).
    """
    if not members:
        return []
    if len(members) == 1:
        record = members[0]
        entries = record.entries
        if all(isinstance(e, str) for e in entries) and len(set(entries)) == len(entries):
            return [(e, record.ports) for e in entries]  # the usual slice: nothing to merge
    merged: dict[str, tuple[EndpointEntry, tuple[ServicePort, ...]]] = {}
    for record in members:
        for entry in record.entries:
            first = entry if isinstance(entry, str) else entry.addresses[0]
            seen = merged.get(first)
            if seen is None or (_ready(entry) and not _ready(seen[0])):
                merged[first] = (entry, record.ports)
    return list(merged.values())


def _ready(entry: EndpointEntry) -> bool:
    return isinstance(entry, str) or entry.ready


def _has_entries(members: _Members) -> bool:
    return any(record.entries for record in members)


def _owned(svc: Service | None, members: _Members) -> tuple[str, ...]:
    """The IPs a Service answers PTR queries for: ClusterIPs, then served endpoints."""
    if svc is None:
        return ()
    if not members:
        return svc.cluster_ips
    owned = dict.fromkeys(svc.cluster_ips)
    if len(members) == 1:
        entries = members[0].entries
        if all(isinstance(e, str) for e in entries):
            owned.update(dict.fromkeys(entries))  # type: ignore[arg-type]  # all bare IPs
            return tuple(owned)
    publish = svc.publish_not_ready
    for entry, _ in _merge(members):
        if isinstance(entry, str):
            owned[entry] = None
        elif entry.ready or publish:
            for ip in entry.addresses:
                owned[ip] = None
    return tuple(owned)


def _set_in(table: dict[str, dict[str, Any]], ns: str, name: str, record: object) -> None:
    """Store ``record`` under namespace and name, or (None) remove what is there; a
    namespace left empty goes (the caller knows the name was there when removing)."""
    in_ns = table.get(ns)
    if record is None:
        assert in_ns is not None
        del in_ns[name]
        if not in_ns:
            del table[ns]
        return
    if in_ns is None:
        in_ns = table[ns] = {}
    in_ns[name] = record


def _key_of(svc: Service) -> ServiceKey:
    return (svc.namespace, svc.name)


@dataclass
class _Pending:
    services: set[ServiceKey] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    pod_ips: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)  # reverse entries of changed Services
    imports: set[ServiceKey] = field(default_factory=set)  # ServiceImports (or their slices)
    named: set[ServiceKey] = field(default_factory=set)  # Services created or deleted
    # Services whose record or slices this update touches, as they were before it: their
    # endpoints and reverse entries are compared and refreshed at commit. The record alone
    # (or None) when it had no slices: a LIST touches 100k of them at once.
    before: dict[ServiceKey, Service | tuple[Service | None, _Members] | None] = field(
        default_factory=dict
    )

    full: bool = False  # too many changes to list: notify a full change

    def __bool__(self) -> bool:
        return bool(self.full or self.services or self.namespaces or self.pod_ips or self.imports)


class Listing:
    """One LIST being received: each page is converted as it arrives (so the decoded page
    can go), and :meth:`commit` applies the whole as :meth:`ClusterModel.replace_all` does.

    A record equal to the stored one is kept as the stored object, so a relist holds one
    copy of what did not change, not two.
    """

    def __init__(self, model: ClusterModel, kind: Kind) -> None:
        self.model = model
        self.kind = kind
        self.count = 0
        self._records: dict[str, dict[str, object]] = {}
        self._pod_ips: dict[int, int] | None = None
        if kind is Kind.POD_IPS or (kind is Kind.PODS and Kind.POD_IPS in model.kinds):
            self._pod_ips = {}

    def add(self, objects: Iterable[object]) -> None:
        """Convert one page of API objects."""
        model, kind = self.model, self.kind
        if self._pod_ips is not None:
            objects = list(objects)
            model._pod_ips.collect(objects, self._pod_ips)  # type: ignore[arg-type]
            if kind is Kind.POD_IPS:
                self.count += len(objects)
                return
        records = self._records
        for obj in objects:
            ns, name, record = model._convert(kind, obj)
            old = model._get(kind, ns, name)
            if old is not None and old == record:
                record = old
            in_ns = records.get(ns)
            if in_ns is None:
                in_ns = records[ns] = {}
            in_ns[name] = record
            self.count += 1

    def commit(self) -> None:
        """Swap the kind's contents for what was added, and mark it synced."""
        records, self._records = self._records, {}
        self.model._replace(self.kind, records, self._pod_ips)


class ClusterModel:
    """Indexed cluster state. Mutated only from the event loop; readers never await.

    Records are kept by namespace, then name (no key tuple per object). A Service's
    endpoints are not stored merged: its slices are, and merging is done when asked
    (rarely more than one slice). The reverse index holds the owning Service records.
    """

    def __init__(self, *, kinds: set[Kind], pod_names: bool = True) -> None:
        self.kinds: frozenset[Kind] = frozenset(kinds)
        # Keep the Pod names of endpoints (only ``endpoint_pod_names`` reads them): without
        # them the usual endpoint is stored as its bare IP.
        self.pod_names = pod_names
        self.generation = 0
        self.synced = False
        self.synced_event = asyncio.Event()
        self._synced_kinds: set[Kind] = set()
        self._subscribers: list[Callable[[Change], None]] = []

        self._services: dict[str, dict[str, Service]] = {}
        self._slices: dict[Kind, dict[str, dict[str, _SliceRecord]]] = {
            kind: {} for kind in _ENDPOINT_KINDS
        }
        self._members: dict[str, dict[str, _StoredMembers]] = {}  # by Service namespace, name
        self._pods: dict[str, dict[str, Pod]] = {}
        self._pods_by_ip: dict[str, tuple[Pod, ...]] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._ip_owners: dict[str, _Owners] = {}
        self._pod_ips = PodIPIndex()  # maintained only when POD_IPS is required
        # Multi-Cluster Services: ServiceImports by namespace and name, imported slices by
        # namespace and slice name, and each ServiceImport's slices (ordered by name).
        self._imports: dict[str, dict[str, ServiceImport]] = {}
        self._import_slices: dict[str, dict[str, _ImportSlice]] = {}
        self._import_members: dict[ServiceKey, tuple[_ImportSlice, ...]] = {}
        self._namespace_index: Mapping[str, object] = (
            self._namespaces if Kind.NAMESPACES in self.kinds else self._services
        )
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
        self._namespace_index = (
            self._namespaces if Kind.NAMESPACES in self.kinds else self._services
        )
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

    def _settle(self, pending: _Pending) -> None:
        """Refresh the Services touched so far (a LIST does it a namespace at a time, so
        what it remembers stays small: pymalloc keeps the arenas of a peak)."""
        for key, old in pending.before.items():
            if isinstance(old, tuple):
                self._refresh_service(key, old[0], old[1], pending)
            else:
                self._refresh_service(key, old, (), pending)
        pending.before.clear()
        if len(pending.services) + len(pending.pod_ips) + len(pending.imports) > FULL_CHANGE:
            # Changed this much: subscribers start over anyway, no need to say what.
            pending.full = True
            pending.services.clear()
            pending.pod_ips.clear()
            pending.ips.clear()
            pending.imports.clear()
            pending.named.clear()

    def _commit(self, pending: _Pending) -> None:
        self._settle(pending)
        if not pending:
            return
        self.generation += 1
        if pending.full:
            change = Change(frozenset(), frozenset(), frozenset(), full=True)
        else:
            change = Change(
                services=frozenset(pending.services),
                namespaces=frozenset(pending.namespaces),
                pod_ips=frozenset(pending.pod_ips),
                ips=frozenset(pending.ips),
                imports=frozenset(pending.imports),
                named=frozenset(pending.named),
            )
        for callback in self._subscribers:
            try:
                callback(change)
            except Exception:
                log.exception("sources: model subscriber %r failed", callback)

    # --- writers -------------------------------------------------------------------------

    def listing(self, kind: Kind) -> Listing:
        """Start receiving a full list of ``kind`` page by page (see :class:`Listing`)."""
        return Listing(self, kind)

    def replace_all(self, kind: Kind, objects: Iterable[object]) -> None:
        """Swap the whole contents of ``kind`` for ``objects`` and mark it synced.

        Only the differences are applied, so a relist that finds nothing new bumps no
        generation and notifies nobody.
        """
        listing = self.listing(kind)
        listing.add(objects)
        listing.commit()

    def apply(self, kind: Kind, event: EventType, obj: object) -> None:
        """Apply one watch event. An update equal to the stored record (only the
        resourceVersion changed) bumps no generation and notifies nobody."""
        if kind is Kind.POD_IPS or (kind is Kind.PODS and Kind.POD_IPS in self.kinds):
            assert isinstance(obj, api.Pod), obj
            self._pod_ips.apply(obj, deleted=event == "DELETED")
            if kind is Kind.POD_IPS:
                return
        ns, name, record = self._convert(kind, obj)
        pending = _Pending()
        self._put(kind, ns, name, None if event == "DELETED" else record, pending)
        self._commit(pending)

    def _replace(
        self, kind: Kind, records: dict[str, dict[str, object]], pod_ips: dict[int, int] | None
    ) -> None:
        if pod_ips is not None:
            self._pod_ips.swap(pod_ips)
            if kind is Kind.POD_IPS:
                # Nothing the DNS plugin precomputes depends on it: no generation, no notice.
                self._mark_synced(kind)
                return
        pending = _Pending()
        for ns, names in list(self._table(kind).items()):
            fresh = records.get(ns, {})
            for name in [n for n in names if n not in fresh]:
                self._put(kind, ns, name, None, pending)
            self._settle(pending)
        for ns in list(records):
            fresh = records.pop(ns)  # in list order (popitem() is the reverse)
            for name, record in fresh.items():
                self._put(kind, ns, name, record, pending)
            del fresh
            self._settle(pending)
        self._mark_synced(kind)
        self._commit(pending)

    def _convert(self, kind: Kind, obj: object) -> tuple[str, str, object]:
        if kind is Kind.SERVICES:
            assert isinstance(obj, api.Service), obj
            svc = to_service(obj)
            return svc.namespace, svc.name, svc
        if kind is Kind.ENDPOINTSLICES:
            assert isinstance(obj, api.EndpointSlice), obj
            service, ports, entries = to_slice_entries(obj, pod_names=self.pod_names)
            meta = obj.metadata
            ns = _intern(meta.namespace)
            if service is not None:
                owner = self.service(ns, service)
                service = owner.name if owner is not None else service  # one copy of the name
            return ns, meta.name, _SliceRecord(meta.name, service, ports, entries)
        if kind is Kind.ENDPOINTS:
            assert isinstance(obj, api.Endpoints), obj
            meta = obj.metadata
            ports, entries = to_endpoints_entries(obj, pod_names=self.pod_names)
            ns = _intern(meta.namespace)
            owner = self.service(ns, meta.name)
            name = owner.name if owner is not None else meta.name  # also its Service's name
            return ns, name, _EndpointsRecord(name, name, ports, entries)
        if kind is Kind.PODS:
            assert isinstance(obj, api.Pod), obj
            pod = to_pod(obj)
            return pod.namespace, pod.name, pod
        if kind is Kind.NAMESPACES:
            assert isinstance(obj, api.Namespace), obj
            namespace = to_namespace(obj)
            return "", namespace.name, namespace
        if kind is Kind.SERVICE_IMPORTS:
            assert isinstance(obj, api.ServiceImport), obj
            imported = to_service_import(obj)
            return imported.namespace, imported.name, imported
        if kind is Kind.MULTICLUSTER_SLICES:
            assert isinstance(obj, api.EndpointSlice), obj
            service, cluster, ports, entries = to_import_slice_entries(
                obj, pod_names=self.pod_names
            )
            meta = obj.metadata
            return (
                _intern(meta.namespace),
                meta.name,
                _ImportSlice(meta.name, service, ports, entries, cluster),
            )
        raise ValueError(f"unknown kind {kind!r}")

    def _table(self, kind: Kind) -> dict[str, dict[str, Any]]:
        """The stored records of ``kind``, by namespace then name."""
        if kind is Kind.SERVICES:
            return self._services
        if kind in _ENDPOINT_KINDS:
            return self._slices[kind]
        if kind is Kind.PODS:
            return self._pods
        if kind is Kind.SERVICE_IMPORTS:
            return self._imports
        if kind is Kind.MULTICLUSTER_SLICES:
            return self._import_slices
        return {"": self._namespaces} if self._namespaces else {}

    def _get(self, kind: Kind, ns: str, name: str) -> object:
        if kind is Kind.NAMESPACES:
            return self._namespaces.get(name)
        in_ns = self._table(kind).get(ns)
        return None if in_ns is None else in_ns.get(name)

    def _put(self, kind: Kind, ns: str, name: str, record: object, pending: _Pending) -> None:
        if kind is Kind.SERVICES:
            assert record is None or isinstance(record, Service)
            self._put_service(ns, name, record, pending)
        elif kind in _ENDPOINT_KINDS:
            assert record is None or isinstance(record, _SliceRecord)
            self._put_slice(kind, ns, name, record, pending)
        elif kind is Kind.PODS:
            assert record is None or isinstance(record, Pod)
            self._put_pod(ns, name, record, pending)
        elif kind is Kind.SERVICE_IMPORTS:
            assert record is None or isinstance(record, ServiceImport)
            self._put_import(ns, name, record, pending)
        elif kind is Kind.MULTICLUSTER_SLICES:
            assert record is None or isinstance(record, _ImportSlice)
            self._put_import_slice(ns, name, record, pending)
        else:
            assert record is None or isinstance(record, Namespace)
            self._put_namespace(name, record, pending)

    def _touch(self, key: ServiceKey, pending: _Pending) -> None:
        """Remember how Service ``key`` was before this update first changes it."""
        if key not in pending.before:
            svc = self.service(*key)
            members = self._members_of(*key)
            pending.before[key] = (svc, members) if members else svc

    def _put_service(self, ns: str, name: str, svc: Service | None, pending: _Pending) -> None:
        in_ns = self._services.get(ns)
        old = None if in_ns is None else in_ns.get(name)
        if old is svc or old == svc:
            return
        key = (ns, name)
        self._touch(key, pending)
        if svc is None:
            assert in_ns is not None
            del in_ns[name]
            if not in_ns:
                del self._services[ns]
                pending.namespaces.add(ns)
        else:
            if in_ns is None:
                in_ns = self._services[ns] = {}
                pending.namespaces.add(ns)
            in_ns[name] = svc
        pending.services.add(key)
        if old is None or svc is None:
            pending.named.add(key)

    def _members_of(self, ns: str, service: str) -> _Members:
        in_ns = self._members.get(ns)
        members = None if in_ns is None else in_ns.get(service)
        if members is None:
            return ()
        return members if isinstance(members, tuple) else (members,)

    def _set_members(self, ns: str, service: str, members: _Members) -> None:
        if members:
            in_ns = self._members.get(ns)
            if in_ns is None:
                in_ns = self._members[ns] = {}
            in_ns[service] = members[0] if len(members) == 1 else members
            return
        in_ns = self._members.get(ns)
        if in_ns is not None:
            in_ns.pop(service, None)
            if not in_ns:
                del self._members[ns]

    def _put_slice(
        self, kind: Kind, ns: str, name: str, record: _SliceRecord | None, pending: _Pending
    ) -> None:
        table = self._slices[kind]
        in_ns = table.get(ns)
        old = None if in_ns is None else in_ns.get(name)
        if old is record or old == record:
            return
        if old is not None and old.service is not None:
            self._touch((ns, old.service), pending)
            rest = tuple(r for r in self._members_of(ns, old.service) if r is not old)
            self._set_members(ns, old.service, rest)
        _set_in(table, ns, name, record)
        if record is not None and record.service is not None:
            self._touch((ns, record.service), pending)
            members = self._members_of(ns, record.service)
            members = tuple(sorted((*members, record), key=_slice_order)) if members else (record,)
            self._set_members(ns, record.service, members)

    def _refresh_service(
        self, key: ServiceKey, old_svc: Service | None, old_members: _Members, pending: _Pending
    ) -> None:
        """Compare a Service's merged endpoints with before, and move its reverse entries."""
        ns, name = key
        svc = self.service(ns, name)
        members = self._members_of(ns, name)
        if members is not old_members and members != old_members:
            if not _has_entries(old_members):
                changed = _has_entries(members)
            elif not _has_entries(members):
                changed = True
            else:
                old_eps = [expand(e, p) for e, p in _merge(old_members)]
                changed = old_eps != [expand(e, p) for e, p in _merge(members)]
            if changed:
                pending.services.add(key)
        if svc is None and old_svc is None:
            return
        old_owned = _owned(old_svc, old_members)
        new_owned = _owned(svc, members)
        if key in pending.services:
            # Owners, names or hostnames behind these IPs' PTR answers may have changed.
            pending.ips.update(old_owned)
            pending.ips.update(new_owned)
        if svc is old_svc and old_owned == new_owned:
            return
        index = self._ip_owners
        old_set = set(old_owned)
        if svc is not None and not old_set.isdisjoint(new_owned) and svc is not old_svc:
            for ip in new_owned:
                if ip in old_set:
                    self._own(ip, key, svc, replace=True)  # the same IP, the new record
        if old_owned:
            new_set = set(new_owned)
            for ip in old_owned:
                if ip not in new_set:
                    self._disown(ip, key)
        for ip in new_owned:
            if ip not in old_set:
                if index.get(ip) is None:
                    index[ip] = svc  # type: ignore[assignment]
                else:
                    self._own(ip, key, svc, replace=False)  # type: ignore[arg-type]

    def _own(self, ip: str, key: ServiceKey, svc: Service, *, replace: bool) -> None:
        index = self._ip_owners
        current = index.get(ip)
        if current is None:
            index[ip] = svc
        elif isinstance(current, tuple):
            if replace:
                index[ip] = tuple(svc if _key_of(o) == key else o for o in current)
            else:
                index[ip] = (*current, svc)
        elif replace and _key_of(current) == key:
            index[ip] = svc
        else:
            index[ip] = (current, svc)

    def _disown(self, ip: str, key: ServiceKey) -> None:
        index = self._ip_owners
        current = index.get(ip)
        if current is None:
            return
        if isinstance(current, tuple):
            rest = tuple(o for o in current if _key_of(o) != key)
            if len(rest) == 1:
                index[ip] = rest[0]
            elif rest:
                index[ip] = rest
            else:
                del index[ip]
        elif _key_of(current) == key:
            del index[ip]

    def _put_pod(self, ns: str, name: str, pod: Pod | None, pending: _Pending) -> None:
        in_ns = self._pods.get(ns)
        old = None if in_ns is None else in_ns.get(name)
        if old is pod or old == pod:
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
            assert in_ns is not None
            del in_ns[name]
            if not in_ns:
                del self._pods[ns]
            return
        if in_ns is None:
            in_ns = self._pods[ns] = {}
        in_ns[name] = pod
        for ip in pod.ips:
            self._pods_by_ip[ip] = (*self._pods_by_ip.get(ip, ()), pod)
        pending.pod_ips.update(pod.ips)

    def _put_import(
        self, ns: str, name: str, imported: ServiceImport | None, pending: _Pending
    ) -> None:
        table = self._imports
        in_ns = table.get(ns)
        old = None if in_ns is None else in_ns.get(name)
        if old is imported or old == imported:
            return
        _set_in(table, ns, name, imported)
        pending.imports.add((ns, name))

    def _put_import_slice(
        self, ns: str, name: str, record: _ImportSlice | None, pending: _Pending
    ) -> None:
        table = self._import_slices
        in_ns = table.get(ns)
        old = None if in_ns is None else in_ns.get(name)
        if old is record or old == record:
            return
        members = self._import_members
        if old is not None and old.service is not None:
            key = (ns, old.service)
            rest = tuple(r for r in members.get(key, ()) if r is not old)
            if rest:
                members[key] = rest
            else:
                members.pop(key, None)
            pending.imports.add(key)
        _set_in(table, ns, name, record)
        if record is not None and record.service is not None:
            key = (ns, record.service)
            members[key] = tuple(sorted((*members.get(key, ()), record), key=lambda r: r.name))
            pending.imports.add(key)

    def _put_namespace(self, name: str, ns: Namespace | None, pending: _Pending) -> None:
        old = self._namespaces.get(name)
        if old is ns or old == ns:
            return
        if ns is None:
            del self._namespaces[name]
        else:
            self._namespaces[name] = ns
        pending.namespaces.add(name)

    # --- readers (O(1), no awaits) -------------------------------------------------------

    def service(self, namespace: str, name: str) -> Service | None:
        in_ns = self._services.get(namespace)
        return None if in_ns is None else in_ns.get(name)

    def services_of(self, namespace: str) -> Mapping[str, Service] | None:
        """The Services of a namespace by name (read-only), None when it has none."""
        return self._services.get(namespace)

    def endpoints(self, namespace: str, service: str) -> tuple[Endpoint, ...]:
        """All endpoints of a Service, merged over its slices, deduplicated by address."""
        return tuple(expand(e, p) for e, p in _merge(self._members_of(namespace, service)))

    def namespace_exists(self, namespace: str) -> bool:
        """Namespace objects decide when they are watched; otherwise any Service in it."""
        # Both dicts are only ever changed in place, so which one decides is set once
        # per change of ``kinds`` (a set lookup per question is a cost on the fast path).
        return namespace in self._namespace_index

    def namespace(self, name: str) -> Namespace | None:
        return self._namespaces.get(name)

    def namespaces(self) -> Iterable[Namespace]:
        return self._namespaces.values()

    def services(self) -> Iterator[Service]:
        for in_ns in self._services.values():
            yield from in_ns.values()

    def service_count(self) -> int:
        return sum(len(in_ns) for in_ns in self._services.values())

    def services_in(self, namespace: str) -> Iterable[Service]:
        in_ns = self._services.get(namespace)
        return in_ns.values() if in_ns is not None else ()

    def service_import(self, namespace: str, name: str) -> ServiceImport | None:
        in_ns = self._imports.get(namespace)
        return None if in_ns is None else in_ns.get(name)

    def service_imports(self) -> Iterator[ServiceImport]:
        for in_ns in self._imports.values():
            yield from in_ns.values()

    def import_endpoints(self, namespace: str, name: str) -> tuple[tuple[str, Endpoint], ...]:
        """A ServiceImport's imported endpoints as (source cluster, endpoint): each
        cluster's slices merged as a Service's are, clusters in the order of their slices."""
        members = self._import_members.get((namespace, name))
        if not members:
            return ()
        by_cluster: dict[str, list[_SliceRecord]] = {}
        for record in members:
            by_cluster.setdefault(record.cluster, []).append(record)
        return tuple(
            (cluster, expand(entry, ports))
            for cluster, records in by_cluster.items()
            for entry, ports in _merge(tuple(records))
        )

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

    def ip_services(self, ip: str) -> tuple[Service, ...]:
        """The Services answering the PTR query of ``ip`` (canonical), in claim order."""
        current = self._ip_owners.get(ip)
        if current is None:
            return ()
        return current if isinstance(current, tuple) else (current,)

    def ip_owners(self, ip: str) -> tuple[IpOwner, ...]:
        """Reverse index for PTR: ClusterIPs, then ready (or published) endpoint addresses.

        Only Services that exist own IPs; ``ip`` must be canonical (see
        :func:`clusterdns.sources.convert.canonical_ip`).
        """
        return tuple(
            IpOwner(svc.namespace, svc.name, self._hostname_of(svc, ip))
            for svc in self.ip_services(ip)
        )

    def hostname_of(self, svc: Service, ip: str) -> str | None:
        """The hostname of the endpoint of ``svc`` at ``ip`` (None: a ClusterIP, or none set)."""
        return self._hostname_of(svc, ip)

    def _hostname_of(self, svc: Service, ip: str) -> str | None:
        if ip in svc.cluster_ips:
            return None
        for entry, _ in _merge(self._members_of(svc.namespace, svc.name)):
            if isinstance(entry, str):
                if entry == ip:
                    return None
            elif (entry.ready or svc.publish_not_ready) and ip in entry.addresses:
                return entry.hostname
        return None
