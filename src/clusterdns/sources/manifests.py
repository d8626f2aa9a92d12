"""The manifests source: a folder of Kubernetes YAML/JSON standing in for a cluster.

Every ``*.yaml``, ``*.yml`` and ``*.json`` under the folder (recursively; names starting with
a dot are skipped, which also skips the ``..data`` copies of a mounted ConfigMap) is read:
multi-document YAML, ``kind: List`` (as ``kubectl get -o yaml`` writes), and objects of kind
Service, EndpointSlice, Endpoints, Pod and Namespace; other kinds are ignored.

What the API server and its controllers would add is filled in, each fill-in logged at info:
the ``default`` namespace, a Namespace for every namespace used, a ClusterIP from a
deterministic allocator over ``service_cidr``, and EndpointSlices derived from the folder's
Pods for a Service with a selector and no endpoints given.

The folder is polled: file sizes and mtimes, then a content hash, and the differences go to
the model through :meth:`ClusterModel.replace_all`. A file that fails to parse is logged as
``manifests: path:line: message`` and keeps serving its last good objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import msgspec
import yaml
from msgspec.structs import replace

from .convert import SERVICE_NAME_LABEL, canonical_ip, pod_is_ready
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
    documents = _json_documents if path.suffix == ".json" else _yaml_documents
    found: list[Manifest] = []
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
                _add(found, path, item_line, item)
        else:
            _add(found, path, line, data)
    return found


def _add(found: list[Manifest], path: Path, line: int, data: dict[str, Any]) -> None:
    kind = data.get("kind")
    if not kind or not isinstance(kind, str):
        raise ManifestError(path, line, "object has no kind")
    if kind not in _TYPES:
        log.debug("manifests: %s:%d: ignoring a %s", path, line, kind)
        return
    model_kind, struct_type, namespaced = _TYPES[kind]
    try:
        obj = api.from_builtins(data, struct_type)
    except msgspec.ValidationError as exc:
        raise ManifestError(path, line, f"{kind}: {exc}") from exc
    meta = obj.metadata
    if not meta.name:
        raise ManifestError(path, line, f"{kind} has no metadata.name")
    if namespaced and not meta.namespace:
        log.info(
            'manifests: %s:%d: %s %s has no namespace, using "default"', path, line, kind, meta.name
        )
        obj = replace(obj, metadata=replace(meta, namespace="default"))
    elif not namespaced and meta.namespace:
        obj = replace(obj, metadata=replace(meta, namespace=""))
    found.append(Manifest(model_kind, obj, str(path), line))


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


@dataclass
class _FileState:
    stat: tuple[int, int]  # (mtime_ns, size)
    digest: bytes
    manifests: list[Manifest] = field(default_factory=list)  # the last good parse


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
        old = state.manifests if state is not None else []
        try:
            manifests = parse_manifest(path, data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self._error(f"manifests: {path}:1: not UTF-8 text: {exc}")
            manifests = old
        except ManifestError as exc:
            kept = f", keeping its {len(old)} previous objects" if old else ""
            self._error(f"manifests: {exc}{kept}")
            manifests = old
        self._files[path] = _FileState(stat, digest, manifests)
        return manifests != old

    def _error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.error("%s", message)

    # --- building the cluster ------------------------------------------------------------

    def build(self) -> dict[Kind, list[ApiObject]]:
        """All objects of the folder's last good parse, with the fill-ins applied."""
        messages: list[str] = []
        unique: dict[tuple[Kind, str, str], Manifest] = {}
        for path in sorted(self._files):
            for manifest in self._files[path].manifests:
                previous = unique.get(manifest.key)
                if previous is not None:
                    messages.append(
                        f"manifests: {manifest.path}:{manifest.line}: {manifest.key[0]} "
                        f"{manifest.key[1]}/{manifest.key[2]} also defined at "
                        f"{previous.path}:{previous.line}, using this one"
                    )
                unique[manifest.key] = manifest
        objects: dict[Kind, list[ApiObject]] = {kind: [] for kind in Kind}
        for manifest in unique.values():
            objects[manifest.kind].append(manifest.obj)

        defined = {obj.metadata.name for obj in objects[Kind.NAMESPACES]}
        used = sorted(
            {obj.metadata.namespace for kind, objs in objects.items() for obj in objs}
            - {""}
            - defined
        )
        for name in used:
            messages.append(f"manifests: namespace {name} implied by its objects")
            objects[Kind.NAMESPACES].append(api.Namespace(metadata=api.ObjectMeta(name=name)))

        objects[Kind.SERVICES] = self._allocate_cluster_ips(objects[Kind.SERVICES], messages)
        objects[Kind.ENDPOINTSLICES] += self._derive_endpoints(objects, messages)

        for message in messages:
            if message not in self._logged:
                log.info("%s", message)
        self._logged = set(messages)
        return objects

    def _push(self, model: ClusterModel) -> None:
        objects = self.build()
        for kind in (Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES, Kind.ENDPOINTS):
            model.replace_all(kind, objects[kind])
        kinds = self.kinds | model.kinds  # autopath may have asked the model for POD_IPS
        if Kind.PODS in kinds:
            model.replace_all(Kind.PODS, objects[Kind.PODS])  # the POD_IPS index as well
        elif Kind.POD_IPS in kinds:
            model.replace_all(Kind.POD_IPS, objects[Kind.PODS])

    def _allocate_cluster_ips(
        self, services: list[api.Service], messages: list[str]
    ) -> list[api.Service]:
        taken: set[str] = set()
        for svc in services:
            for raw in [svc.spec.cluster_ip, *(svc.spec.cluster_ips or ())]:
                ip = canonical_ip(raw) if raw and raw != "None" else None
                if ip is not None:
                    taken.add(ip)
        result = []
        for svc in sorted(services, key=lambda s: (s.metadata.namespace, s.metadata.name)):
            spec = svc.spec
            if spec.type == "ExternalName" or spec.cluster_ip or spec.cluster_ips:
                result.append(svc)
                continue
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
                result.append(svc)
                continue
            messages.append(
                f"manifests: service {svc.metadata.namespace}/{svc.metadata.name} "
                f"has no clusterIP, allocated {', '.join(ips)}"
            )
            result.append(replace(svc, spec=replace(spec, cluster_ip=ips[0], cluster_ips=ips)))
        return result

    def _derive_endpoints(
        self, objects: dict[Kind, list[ApiObject]], messages: list[str]
    ) -> list[api.EndpointSlice]:
        """What the EndpointSlice controller would make of the folder's Pods."""
        given = {
            (s.metadata.namespace, (s.metadata.labels or {}).get(SERVICE_NAME_LABEL))
            for s in objects[Kind.ENDPOINTSLICES]
        } | {(e.metadata.namespace, e.metadata.name) for e in objects[Kind.ENDPOINTS]}
        pods_by_ns: dict[str, list[api.Pod]] = {}
        for pod in objects[Kind.PODS]:
            pods_by_ns.setdefault(pod.metadata.namespace, []).append(pod)
        derived: list[api.EndpointSlice] = []
        for svc in objects[Kind.SERVICES]:
            meta, spec = svc.metadata, svc.spec
            if not spec.selector or spec.type == "ExternalName":
                continue
            if (meta.namespace, meta.name) in given:
                continue
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
