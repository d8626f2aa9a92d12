"""The manifests source: a folder of Kubernetes YAML/JSON standing in for a cluster.

Every ``*.yaml``, ``*.yml`` and ``*.json`` under the folder (recursively; names starting with
a dot are skipped, which also skips the ``..data`` copies of a mounted ConfigMap) is read:
multi-document YAML, ``kind: List`` (as ``kubectl get -o yaml`` writes), and objects of kind
Service, EndpointSlice, Endpoints, Pod, Namespace and (for ``multicluster`` zones) the MCS
ServiceImport; other kinds are ignored.

What the API server and its controllers would add is filled in: the ``default`` namespace, a
Namespace for every namespace used, a ClusterIP from a deterministic allocator over
``service_cidr``, node ports (30000-32767) for NodePort and LoadBalancer Services, and
EndpointSlices derived from the folder's Pods for a Service with a selector and no endpoints
given. Logging stays short for a folder of 100k objects: one info
line per file read (``manifests: services.yaml: 3 Services, 2 EndpointSlices``) and one
summing up the fill-ins; each object's fill-in is logged at debug.

The folder is polled: file sizes and mtimes, then a content hash, and the differences go to
the model through its listings (as :meth:`ClusterModel.replace_all`), streamed from each
file's compact last good parse. A file that fails to parse is logged as
``manifests: path:line: message`` and keeps serving its last good objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import msgspec
import yaml
from msgspec.structs import replace

from .convert import MCS_SERVICE_NAME_LABEL, SERVICE_NAME_LABEL, canonical_ip, pod_is_ready
from .kube import objects as api
from .model import ClusterModel, Kind

__all__ = ["ClusterIPAllocator", "ManifestError", "ManifestsSource", "parse_manifest"]

log = logging.getLogger("clusterdns.sources.manifests")

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

SUFFIXES = (".yaml", ".yml", ".json")
_TYPES: dict[str, tuple[Kind, type[Any], bool]] = {  # kind → (model kind, type, namespaced)
    "Service": (Kind.SERVICES, api.Service, True),
    "EndpointSlice": (Kind.ENDPOINTSLICES, api.EndpointSlice, True),
    "Endpoints": (Kind.ENDPOINTS, api.Endpoints, True),
    "Pod": (Kind.PODS, api.Pod, True),
    "Namespace": (Kind.NAMESPACES, api.Namespace, False),
    "ServiceImport": (Kind.SERVICE_IMPORTS, api.ServiceImport, True),
}
_LIST_KINDS = {"List", *(f"{k}List" for k in _TYPES)}

ApiObject: TypeAlias = Any  # one of the api.* Structs above


class ManifestError(Exception):
    """A manifest that cannot be used; ``str()`` is ``path:line: message``."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Manifest:
    """One object read from a file, with where it came from."""

    kind: Kind
    obj: ApiObject
    path: str
    line: int
    defaulted: bool = False  # put in the "default" namespace, as the API server would

    @property
    def key(self) -> tuple[Kind, str, str]:
        meta = self.obj.metadata
        return (self.kind, meta.namespace, meta.name)


# --- parsing ------------------------------------------------------------------------------


def _yaml_documents(path: Path, text: str) -> Iterator[tuple[Any, int, list[int]]]:
    """(document, its line, the lines of its ``items``) for each YAML document."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            item_lines: list[int] = []
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == "items" and isinstance(value, yaml.SequenceNode):
                        item_lines = [n.start_mark.line + 1 for n in value.value]
            yield data, node.start_mark.line + 1, item_lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ManifestError(path, line, f"{exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(path, 1, str(exc)) from exc
    finally:
        loader.dispose()


def _json_documents(path: Path, text: str) -> Iterator[tuple[Any, int, list[int]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, exc.lineno, exc.msg) from exc
    yield data, 1, []


def parse_manifest(path: Path, text: str) -> list[Manifest]:
    """All usable objects of one file; raises :class:`ManifestError` on the first problem."""
    return list(_manifests(path, text))


def _manifests(path: Path, text: str) -> Iterator[Manifest]:
    """The objects of one file, each converted as its document is read."""
    documents = _json_documents if path.suffix == ".json" else _yaml_documents
    for data, line, item_lines in documents(path, text):
        if data is None:
            continue  # an empty document ("---" at the end)
        if not isinstance(data, dict):
            raise ManifestError(path, line, "expected a Kubernetes object (a mapping)")
        if data.get("kind") in _LIST_KINDS:
            items = data.get("items") or []
            if not isinstance(items, list):
                raise ManifestError(path, line, "items of a List must be a sequence")
            lines = item_lines if len(item_lines) == len(items) else [line] * len(items)
            for item, item_line in zip(items, lines, strict=True):
                if not isinstance(item, dict):
                    raise ManifestError(path, item_line, "expected a Kubernetes object (a mapping)")
                item.setdefault("kind", data["kind"].removesuffix("List") or None)
                manifest = _convert(path, item_line, item)
                if manifest is not None:
                    yield manifest
        else:
            manifest = _convert(path, line, data)
            if manifest is not None:
                yield manifest


def _convert(path: Path, line: int, data: dict[str, Any]) -> Manifest | None:
    kind = data.get("kind")
    if not kind or not isinstance(kind, str):
        raise ManifestError(path, line, "object has no kind")
    if kind not in _TYPES:
        log.debug("manifests: %s:%d: ignoring a %s", path, line, kind)
        return None
    try:
        obj = api.from_builtins(data, _TYPES[kind][1])
    except msgspec.ValidationError as exc:
        raise ManifestError(path, line, f"{kind}: {exc}") from exc
    return _manifest(path, line, kind, obj)


def _manifest(path: Path, line: int, kind: str, obj: ApiObject) -> Manifest:
    """``obj`` with the namespace the API server would give it."""
    model_kind, _, namespaced = _TYPES[kind]
    meta = obj.metadata
    if not meta.name:
        raise ManifestError(path, line, f"{kind} has no metadata.name")
    if namespaced and not meta.namespace:
        log.debug(
            'manifests: %s:%d: %s %s has no namespace, using "default"', path, line, kind, meta.name
        )
        obj = replace(obj, metadata=replace(meta, namespace="default"))
        return Manifest(model_kind, obj, str(path), line, defaulted=True)
    if not namespaced and meta.namespace:
        obj = replace(obj, metadata=replace(meta, namespace=""))
    return Manifest(model_kind, obj, str(path), line)


class _Fallback(Exception):
    """The JSON fast path met something only the general path can judge (or word)."""


class _JSONTop(msgspec.Struct, forbid_unknown_fields=False):
    kind: Any = None
    items: list[msgspec.Raw] | None = None


class _JSONKind(msgspec.Struct, forbid_unknown_fields=False):
    kind: Any = msgspec.UNSET


def _json_fast(path: Path, data: bytes) -> Iterator[Manifest]:
    """A JSON file decoded with msgspec straight into the API Structs, an item at a time,
    without building a dict per object (a 100k-service List file is 70 MB). Anything
    unusual raises :class:`_Fallback`, and the file is read again by :func:`_manifests`,
    which words the error as it does for YAML."""
    try:
        top = msgspec.json.decode(data, type=_JSONTop)
        if top.kind in _LIST_KINDS:
            default = top.kind.removesuffix("List") or None
            for raw in top.items or ():
                kind = msgspec.json.decode(raw, type=_JSONKind).kind
                kind = default if kind is msgspec.UNSET else kind
                manifest = _json_object(path, kind, raw)
                if manifest is not None:
                    yield manifest
        else:
            manifest = _json_object(path, top.kind, data)
            if manifest is not None:
                yield manifest
    except msgspec.DecodeError as exc:  # ValidationError included
        raise _Fallback from exc


def _json_object(path: Path, kind: Any, raw: bytes | msgspec.Raw) -> Manifest | None:
    if not kind or not isinstance(kind, str):
        raise _Fallback
    if kind not in _TYPES:
        log.debug("manifests: %s:1: ignoring a %s", path, kind)
        return None
    obj = msgspec.json.decode(raw, type=_TYPES[kind][1], strict=False)
    return _manifest(path, 1, kind, obj)


# --- ClusterIP allocation -----------------------------------------------------------------


class ClusterIPAllocator:
    """Deterministic ClusterIPs: a hash of namespace/name picks the offset in the CIDR;
    collisions probe linearly. Never the network or broadcast address, nor a taken IP."""

    def __init__(self, cidrs: str) -> None:
        self.networks = [ipaddress.ip_network(c.strip()) for c in cidrs.split(",") if c.strip()]
        if not self.networks:
            raise ValueError("service_cidr is empty")
        if len(self.networks) > 2 or (
            len(self.networks) == 2 and self.networks[0].version == self.networks[1].version
        ):
            raise ValueError(f"service_cidr {cidrs!r}: give one CIDR, or one per IP family")

    def allocate(self, namespace: str, name: str, network_index: int, taken: set[str]) -> str:
        network = self.networks[network_index]
        first = 1  # skip the network address
        last = network.num_addresses - (2 if network.version == 4 else 1)
        size = last - first + 1
        if size < 1:
            raise ValueError(f"service CIDR {network} has no usable addresses")
        digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
        start = int.from_bytes(digest[:8], "big") % size
        base = int(network.network_address)
        for probe in range(min(size, 1 << 20)):
            ip = str(ipaddress.ip_address(base + first + (start + probe) % size))
            if ip not in taken:
                taken.add(ip)
                return ip
        raise ValueError(f"service CIDR {network} is full")

    def family_index(self, family: str) -> int | None:
        version = 6 if family == "IPv6" else 4
        for index, network in enumerate(self.networks):
            if network.version == version:
                return index
        return None


# --- the source ---------------------------------------------------------------------------


_CHUNK = 1024  # objects per stored chunk
NODE_PORT_RANGE = (30000, 32767)  # the API server's default --service-node-port-range
_KIND_ORDER = (
    Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES, Kind.ENDPOINTS, Kind.PODS,
    Kind.SERVICE_IMPORTS,
)  # fmt: skip
_STRUCTS: dict[Kind, type[Any]] = {kind: struct for kind, struct, _ in _TYPES.values()}
_Location: TypeAlias = tuple[int, int, int]  # (file, chunk, position) of one object of a kind


class _Head(msgspec.Struct, forbid_unknown_fields=False):
    """Just the metadata of a stored object: decoding skips the rest."""

    metadata: api.ObjectMeta = msgspec.field(default_factory=api.ObjectMeta)


_ENCODER = msgspec.msgpack.Encoder()
_HEADS = msgspec.msgpack.Decoder(list[tuple[int, _Head]])
_DECODERS: dict[Kind, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(list[tuple[int, struct]])  # type: ignore[valid-type]
    for kind, struct in _STRUCTS.items()
}


@dataclass
class _FileState:
    """What a file's last good parse contributed, kept compact: its objects as zlib'd
    msgpack chunks of ``[line, object]`` per kind (~18 bytes an object for a generated
    cluster, where the decoded Structs took ~2.8 KB). Each build streams them through the
    model's listings a chunk at a time, so a broken edit can keep serving them."""

    stat: tuple[int, int]  # (mtime_ns, size)
    digest: bytes
    chunks: dict[Kind, list[bytes]] = field(default_factory=dict)
    count: int = 0


@dataclass
class _Counts:
    """What one read of a file found, for its summary line."""

    kinds: dict[Kind, int] = field(default_factory=dict)
    defaulted: int = 0  # objects put in the "default" namespace

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def summary(self) -> str:
        parts = [
            f"{n} {_KIND_NAMES[k]}{'' if n == 1 else 's'}"
            for k in _KIND_ORDER
            if (n := self.kinds.get(k, 0))
        ]
        text = ", ".join(parts) or "no objects clusterdns reads"
        if self.defaulted:
            text += f' ({self.defaulted} without a namespace, put in "default")'
        return text


_KIND_NAMES = {model_kind: kind for kind, (model_kind, _, _) in _TYPES.items()}


def _pack(manifests: Iterable[Manifest]) -> tuple[dict[Kind, list[bytes]], _Counts]:
    """Encode objects as they are decoded, so a file's Structs never all exist at once."""
    chunks: dict[Kind, list[bytes]] = {}
    pending: dict[Kind, list[tuple[int, ApiObject]]] = {}
    counts = _Counts()
    for manifest in manifests:
        counts.kinds[manifest.kind] = counts.kinds.get(manifest.kind, 0) + 1
        counts.defaulted += manifest.defaulted
        batch = pending.setdefault(manifest.kind, [])
        batch.append((manifest.line, manifest.obj))
        if len(batch) >= _CHUNK:
            chunks.setdefault(manifest.kind, []).append(zlib.compress(_ENCODER.encode(batch), 1))
            batch.clear()
    for kind, batch in pending.items():
        if batch:
            chunks.setdefault(kind, []).append(zlib.compress(_ENCODER.encode(batch), 1))
    return chunks, counts


class ManifestsSource:
    """Serve a folder of manifests as if it were a cluster; see the module docstring."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        kinds: set[Kind],
        service_cidr: str = "10.96.0.0/12",
        poll_interval: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.kinds = frozenset(kinds)
        self.allocator = ClusterIPAllocator(service_cidr)
        self.poll_interval = poll_interval
        self.errors = 0
        self.last_error: str | None = None
        self._files: dict[Path, _FileState] = {}
        self._stats: dict[Path, tuple[int, int]] | None = None
        self._logged: set[str] = set()  # fill-in messages of the last build
        self._missing_logged = False

    async def run(self, model: ClusterModel) -> None:
        """Load, then poll for changes until cancelled."""
        while True:
            self.poll_once(model)
            await asyncio.sleep(self.poll_interval)

    def poll_once(self, model: ClusterModel) -> bool:
        """Look at the folder once; push changes into ``model``. True if anything changed.

        Runs synchronously: a stat per file when nothing changed, which is cheap enough to
        do on the event loop for a folder of manifests.
        """
        stats = self._scan()
        first = self._stats is None
        if stats == self._stats:
            return False
        self._stats = stats
        changed = first
        for path in [p for p in self._files if p not in stats]:
            del self._files[path]
            changed = True
        for path, stat in stats.items():
            state = self._files.get(path)
            if state is not None and state.stat == stat:
                continue
            changed |= self._read(path, stat, state)
        if changed:
            self._push(model)
        return changed

    def _scan(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        if not self.directory.is_dir():
            if not self._missing_logged:
                log.warning("manifests: %s is not a directory, serving nothing", self.directory)
                self._missing_logged = True
            return found
        self._missing_logged = False
        for root, dirs, files in os.walk(self.directory, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or not name.endswith(SUFFIXES):
                    continue
                path = Path(root, name)
                try:
                    st = path.stat()
                except OSError:
                    continue  # vanished or a dangling link
                found[path] = (st.st_mtime_ns, st.st_size)
        return found

    def _read(self, path: Path, stat: tuple[int, int], state: _FileState | None) -> bool:
        """Re-read one file whose stat changed; True if its objects changed."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._error(f"manifests: {path}:1: {exc}")
            return False
        digest = hashlib.sha256(data).digest()
        if state is not None and state.digest == digest:
            state.stat = stat
            return False
        old_chunks = state.chunks if state is not None else {}
        old_count = state.count if state is not None else 0
        try:
            chunks, counts = _parse(path, data)
            count = counts.total
            log.info("manifests: %s: %s", self._relative(path), counts.summary())
        except UnicodeDecodeError as exc:
            self._error(f"manifests: {path}:1: not UTF-8 text: {exc}")
            chunks, count = old_chunks, old_count
        except ManifestError as exc:
            kept = f", keeping its {old_count} previous objects" if old_count else ""
            self._error(f"manifests: {exc}{kept}")
            chunks, count = old_chunks, old_count
        del data
        self._files[path] = _FileState(stat, digest, chunks, count)
        return chunks != old_chunks

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.directory))
        except ValueError:
            return str(path)

    def _error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.error("%s", message)

    # --- building the cluster ------------------------------------------------------------
    #
    # Every build streams the files' stored chunks through the model's listings, kind by
    # kind, a chunk at a time: only the few objects a fill-in needs (Services to allocate an
    # IP for, Services and Pods to derive endpoints from) are held whole. The model keeps
    # what did not change as it was, so an edit bumps the generation only for real changes.

    def _push(self, model: ClusterModel) -> None:
        paths = sorted(self._files)
        files = [self._files[p] for p in paths]
        messages: list[str] = []
        skip, namespaces = self._scan_keys(files, [str(p) for p in paths], messages)

        # Services: allocate ClusterIPs first (the taken ones span every file).
        allocated, selected = self._allocate_cluster_ips(files, skip, messages)
        wanted = self._without_endpoints(files, skip, selected) if selected else set()

        listing = model.listing(Kind.NAMESPACES)
        defined: set[str] = set()
        for _, objs in _chunks(files, Kind.NAMESPACES, skip):
            defined.update(o.metadata.name for o in objs)
            listing.add(objs)
        implied = sorted(namespaces - {""} - defined)
        for name in implied:
            messages.append(f"manifests: namespace {name} implied by its objects")
        listing.add(api.Namespace(metadata=api.ObjectMeta(name=name)) for name in implied)
        listing.commit()

        listing = model.listing(Kind.SERVICES)
        to_derive: list[api.Service] = []
        for where, objs in _chunks(files, Kind.SERVICES, skip):
            if allocated:
                objs = [allocated.get((*where, i), svc) for i, svc in enumerate(objs)]
            if wanted:
                to_derive += [s for s in objs if (s.metadata.namespace, s.metadata.name) in wanted]
            listing.add(objs)
        listing.commit()

        kinds = self.kinds | model.kinds  # autopath may have asked the model for POD_IPS
        pod_kind = (
            Kind.PODS if Kind.PODS in kinds else Kind.POD_IPS if Kind.POD_IPS in kinds else None
        )
        pods = model.listing(pod_kind) if pod_kind is not None else None
        pods_by_ns: dict[str, list[api.Pod]] = {}
        if pods is not None or to_derive:
            derive_in = {s.metadata.namespace for s in to_derive}
            for _, objs in _chunks(files, Kind.PODS, skip):
                for pod in objs:
                    if pod.metadata.namespace in derive_in:
                        pods_by_ns.setdefault(pod.metadata.namespace, []).append(pod)
                if pods is not None:
                    pods.add(objs)

        listing = model.listing(Kind.ENDPOINTSLICES)
        for _, objs in _chunks(files, Kind.ENDPOINTSLICES, skip):
            listing.add(objs)
        to_derive.sort(key=lambda s: (s.metadata.namespace, s.metadata.name))
        listing.add(self._derive_endpoints(to_derive, pods_by_ns, messages))
        listing.commit()

        listing = model.listing(Kind.ENDPOINTS)
        for _, objs in _chunks(files, Kind.ENDPOINTS, skip):
            listing.add(objs)
        listing.commit()

        if Kind.SERVICE_IMPORTS in kinds:
            listing = model.listing(Kind.SERVICE_IMPORTS)
            for _, objs in _chunks(files, Kind.SERVICE_IMPORTS, skip):
                listing.add(objs)
            listing.commit()
        if Kind.MULTICLUSTER_SLICES in kinds:
            # The folder's imported slices: those with the MCS label, as the API's
            # label selector would pick them.
            listing = model.listing(Kind.MULTICLUSTER_SLICES)
            for _, objs in _chunks(files, Kind.ENDPOINTSLICES, skip):
                listing.add(o for o in objs if MCS_SERVICE_NAME_LABEL in (o.metadata.labels or {}))
            listing.commit()
        if pods is not None:
            pods.commit()  # the POD_IPS index as well

        fresh = [m for m in messages if m not in self._logged]
        for message in fresh:
            # Duplicates are a mistake in the folder: each is worth a line of its own.
            log.log(logging.INFO if _DUPLICATE in message else logging.DEBUG, "%s", message)
        summary = _fill_in_summary(fresh)
        if summary:
            log.info("manifests: filled in as the API server would: %s", summary)
        self._logged = set(messages)

    def _scan_keys(
        self, files: list[_FileState], paths: list[str], messages: list[str]
    ) -> tuple[set[tuple[Kind, int, int, int]], set[str]]:
        """Objects defined again later (the last definition wins; skip the others), and
        every namespace used. Keys are hashed first: duplicates are rare, and 200k
        key tuples would outlive the build in pymalloc's arenas."""
        seen: set[int] = set()
        twice: set[int] = set()
        namespaces: set[str] = set()
        for kind in _KIND_ORDER:
            for _, heads in _chunks(files, kind, None, _HEADS):
                for _, head in heads:
                    meta = head.metadata
                    namespaces.add(meta.namespace)
                    key = hash((kind, meta.namespace, meta.name))
                    if key in seen:
                        twice.add(key)
                    else:
                        seen.add(key)
        del seen
        skip: set[tuple[Kind, int, int, int]] = set()
        if not twice:
            return skip, namespaces
        for kind in _KIND_ORDER:
            last: dict[tuple[str, str], tuple[tuple[int, int, int], int]] = {}
            for (f, c), heads in _chunks(files, kind, None, _HEADS):
                for i, (line, head) in enumerate(heads):
                    meta = head.metadata
                    if hash((kind, meta.namespace, meta.name)) not in twice:
                        continue
                    previous = last.get((meta.namespace, meta.name))
                    if previous is not None:
                        (pf, pc, pi), pline = previous
                        skip.add((kind, pf, pc, pi))
                        messages.append(
                            f"manifests: {paths[f]}:{line}: {kind} {meta.namespace}/{meta.name}"
                            f" also defined at {paths[pf]}:{pline}, using this one"
                        )
                    last[(meta.namespace, meta.name)] = ((f, c, i), line)
        return skip, namespaces

    def _allocate_cluster_ips(
        self, files: list[_FileState], skip: set[tuple[Kind, int, int, int]], messages: list[str]
    ) -> tuple[dict[_Location, api.Service], set[tuple[str, str]]]:
        """ClusterIPs (and node ports) for the Services without them (by location), and the
        Services whose endpoints may have to be derived from Pods (those with a selector)."""
        taken: set[str] = set()
        needy: list[tuple[_Location, api.Service]] = []
        selected: set[tuple[str, str]] = set()
        node_ports: set[int] = set()
        without_node_port: list[tuple[_Location, api.Service]] = []
        for (f, c), objs in _chunks(files, Kind.SERVICES, skip):
            for i, svc in enumerate(objs):
                spec = svc.spec
                if spec.type in ("NodePort", "LoadBalancer"):
                    node_ports.update(p.node_port for p in spec.ports or ())
                    if any(not p.node_port for p in spec.ports or ()):
                        without_node_port.append(((f, c, i), svc))
                for raw in [spec.cluster_ip, *(spec.cluster_ips or ())]:
                    ip = canonical_ip(raw) if raw and raw != "None" else None
                    if ip is not None:
                        taken.add(ip)
                if spec.selector and spec.type != "ExternalName":
                    selected.add((svc.metadata.namespace, svc.metadata.name))
                if not (spec.type == "ExternalName" or spec.cluster_ip or spec.cluster_ips):
                    needy.append(((f, c, i), svc))
        allocated: dict[_Location, api.Service] = {}
        for where, svc in sorted(
            needy, key=lambda n: (n[1].metadata.namespace, n[1].metadata.name)
        ):
            spec = svc.spec
            families = list(spec.ip_families or ())
            if not families:
                families = ["IPv6" if self.allocator.networks[0].version == 6 else "IPv4"]
                if spec.ip_family_policy in ("PreferDualStack", "RequireDualStack"):
                    families.append("IPv4" if families[0] == "IPv6" else "IPv6")
            ips = []
            for family in families:
                index = self.allocator.family_index(family)
                if index is None:
                    continue
                meta = svc.metadata
                try:
                    ips.append(self.allocator.allocate(meta.namespace, meta.name, index, taken))
                except ValueError as exc:
                    self._error(f"manifests: service {meta.namespace}/{meta.name}: {exc}")
            if not ips:
                continue
            messages.append(
                f"manifests: service {svc.metadata.namespace}/{svc.metadata.name} "
                f"has no clusterIP, allocated {', '.join(ips)}"
            )
            allocated[where] = replace(svc, spec=replace(spec, cluster_ip=ips[0], cluster_ips=ips))
        for where, svc in sorted(
            without_node_port, key=lambda n: (n[1].metadata.namespace, n[1].metadata.name)
        ):
            svc = allocated.get(where, svc)
            allocated[where] = self._allocate_node_ports(svc, node_ports, messages)
        return allocated, selected

    def _allocate_node_ports(
        self, svc: api.Service, taken: set[int], messages: list[str]
    ) -> api.Service:
        """A node port for each port without one, from 30000-32767 as the API server
        allocates them; deterministic (a hash of the Service and port picks the start)."""
        meta, spec = svc.metadata, svc.spec
        ports = []
        for port in spec.ports or ():
            if not port.node_port:
                key = f"{meta.namespace}/{meta.name}/{port.port}/{port.protocol}"
                start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
                size = NODE_PORT_RANGE[1] - NODE_PORT_RANGE[0] + 1
                for probe in range(size):
                    number = NODE_PORT_RANGE[0] + (start + probe) % size
                    if number not in taken:
                        break
                else:
                    self._error(f"manifests: service {meta.namespace}/{meta.name}: "
                                "no node port left in 30000-32767")  # fmt: skip
                    return svc
                taken.add(number)
                messages.append(
                    f"manifests: service {meta.namespace}/{meta.name} port "
                    f"{port.port}/{port.protocol} has no nodePort, allocated {number}"
                )
                port = replace(port, node_port=number)
            ports.append(port)
        return replace(svc, spec=replace(spec, ports=ports))

    def _without_endpoints(
        self,
        files: list[_FileState],
        skip: set[tuple[Kind, int, int, int]],
        selected: set[tuple[str, str]],
    ) -> set[tuple[str, str]]:
        """The Services of ``selected`` that no EndpointSlice or Endpoints names."""
        wanted = set(selected)
        for kind in (Kind.ENDPOINTSLICES, Kind.ENDPOINTS):
            for _, heads in _chunks(files, kind, skip, _HEADS):
                for _, head in heads:
                    meta = head.metadata
                    name = (
                        (meta.labels or {}).get(SERVICE_NAME_LABEL)
                        if kind is Kind.ENDPOINTSLICES
                        else meta.name
                    )
                    wanted.discard((meta.namespace, name or ""))
        return wanted

    def _derive_endpoints(
        self,
        services: list[api.Service],
        pods_by_ns: dict[str, list[api.Pod]],
        messages: list[str],
    ) -> list[api.EndpointSlice]:
        """What the EndpointSlice controller would make of the folder's Pods."""
        derived: list[api.EndpointSlice] = []
        for svc in services:
            meta, spec = svc.metadata, svc.spec
            assert spec.selector
            pods = [
                p
                for p in pods_by_ns.get(meta.namespace, ())
                if all((p.metadata.labels or {}).get(k) == v for k, v in spec.selector.items())
                and p.status.phase not in ("Succeeded", "Failed")
                and p.metadata.deletion_timestamp is None
            ]
            slices = _slices_for(svc, pods)
            derived.extend(slices)
            count = sum(len(s.endpoints or ()) for s in slices)
            messages.append(
                f"manifests: endpoints of service {meta.namespace}/{meta.name} derived "
                f"from {count} pod address(es) matching its selector"
            )
        return derived


_DUPLICATE = " also defined at "
_FILL_INS = (  # (what a message says, how the summary counts it)
    (" has no clusterIP, allocated ", "ClusterIP"),
    (" has no nodePort, allocated ", "NodePort"),
    (" implied by its objects", "Namespace"),
    (" derived from ", "Service's EndpointSlices from its Pods"),
)


def _fill_in_summary(messages: list[str]) -> str:
    """``1 ClusterIP, 1 Namespace, 6 Services' EndpointSlices from their Pods``."""
    parts = []
    for marker, what in _FILL_INS:
        n = sum(marker in m for m in messages)
        if n == 1:
            parts.append(f"1 {what}")
        elif n:
            plural = what.replace("Service's", "Services'").replace("its Pods", "their Pods")
            parts.append(f"{n} {plural if plural != what else what + 's'}")
    return ", ".join(parts)


def _parse(path: Path, data: bytes) -> tuple[dict[Kind, list[bytes]], _Counts]:
    """One file's objects, packed; raises :class:`ManifestError` (or UnicodeDecodeError)."""
    if path.suffix == ".json":
        try:
            return _pack(_json_fast(path, data))
        except _Fallback:
            pass  # read it again the general way, for the error and its line
    return _pack(_manifests(path, data.decode("utf-8")))


def _chunks(
    files: list[_FileState],
    kind: Kind,
    skip: set[tuple[Kind, int, int, int]] | None,
    decoder: msgspec.msgpack.Decoder[Any] | None = None,
) -> Iterator[tuple[tuple[int, int], list[Any]]]:
    """((file, chunk), objects) for each stored chunk of ``kind``, in file order, less the
    objects in ``skip``. With a ``decoder`` (such as :data:`_HEADS`) its (line, value)
    pairs instead. Positions in a chunk count the objects left after ``skip``."""
    for f, state in enumerate(files):
        for c, chunk in enumerate(state.chunks.get(kind, ())):
            if decoder is None:
                items: list[Any] = [
                    obj for _, obj in _DECODERS[kind].decode(zlib.decompress(chunk))
                ]
            else:
                items = decoder.decode(zlib.decompress(chunk))
            if skip:
                items = [o for i, o in enumerate(items) if (kind, f, c, i) not in skip]
            yield (f, c), items


def _pod_ips(pod: api.Pod) -> list[str]:
    status = pod.status
    raw = [p.ip for p in status.pod_ips] if status.pod_ips else [status.pod_ip or ""]
    return [ip for ip in (canonical_ip(r) for r in raw if r) if ip is not None]


def _target_port(port: api.ServicePortSpec, pod: api.Pod) -> int | None:
    target = port.target_port
    if target is None:
        return port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for container in pod.spec.containers or ():
        for cport in container.ports or ():
            if cport.name == target and cport.protocol.upper() == (port.protocol or "TCP").upper():
                return cport.container_port
    return None  # the controller leaves a port out when the Pod does not name it


def _slices_for(svc: api.Service, pods: Iterable[api.Pod]) -> list[api.EndpointSlice]:
    """One slice per (address family, resolved ports), as the controller groups them."""
    meta, spec = svc.metadata, svc.spec
    groups: dict[tuple[str, tuple[tuple[str, int, str], ...]], list[api.SliceEndpoint]] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        ports = tuple(
            (p.name, target, p.protocol or "TCP")
            for p in spec.ports or ()
            if (target := _target_port(p, pod)) is not None
        )
        hostname = (
            pod.spec.hostname if pod.spec.hostname and pod.spec.subdomain == meta.name else None
        )
        for ip in _pod_ips(pod):
            family = "IPv6" if ":" in ip else "IPv4"
            groups.setdefault((family, ports), []).append(
                api.SliceEndpoint(
                    addresses=[ip],
                    conditions=api.EndpointConditions(
                        ready=pod_is_ready(pod.status) or spec.publish_not_ready_addresses
                    ),
                    hostname=hostname,
                    target_ref=api.ObjectReference(kind="Pod", name=pod.metadata.name),
                )
            )
    slices = []
    for index, ((family, ports), endpoints) in enumerate(
        sorted(groups.items(), key=lambda g: g[0])
    ):
        slices.append(
            api.EndpointSlice(
                metadata=api.ObjectMeta(
                    name=f"{meta.name}-derived-{index}",
                    namespace=meta.namespace,
                    labels={**(meta.labels or {}), SERVICE_NAME_LABEL: meta.name},
                ),
                address_type=family,
                endpoints=endpoints,
                ports=[api.EndpointPort(name=n, port=p, protocol=pr) for n, p, pr in ports],
            )
        )
    return slices
