"""The watch loop, kopf-shaped: four small functions of decreasing scope.

* :func:`run_forever` reconnects forever, with exponential backoff and full jitter;
* :func:`list_then_watch` lists into the model, then watches from the list's
  resourceVersion, resuming after dropped connections and relisting on 410 Gone;
* :func:`watch_once` makes one HTTP watch call and applies its events as they come.

Nothing here ever clears the model on an error: after the first sync, the last known
records keep being served until a successful relist replaces them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from ..model import ClusterModel, Kind
from . import objects as api
from .client import KubeClient, ResourceGone

__all__ = [
    "RESOURCE_PATHS",
    "Backoff",
    "Counters",
    "ReflectorState",
    "Resource",
    "list_then_watch",
    "resource_for",
    "run_forever",
    "watch_once",
]

log = logging.getLogger("clusterdns.sources.kube")


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> api.ObjectMeta: ...


T = TypeVar("T", bound=_HasMetadata)

RESOURCE_PATHS: dict[Kind, str] = {
    Kind.SERVICES: "/api/v1/services",
    Kind.ENDPOINTSLICES: "/apis/discovery.k8s.io/v1/endpointslices",
    Kind.ENDPOINTS: "/api/v1/endpoints",
    Kind.PODS: "/api/v1/pods",
    Kind.NAMESPACES: "/api/v1/namespaces",
    Kind.POD_IPS: "/api/v1/pods",  # the same objects, kept as the slim IP index only
    Kind.SERVICE_IMPORTS: "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports",
    # Imported slices: the same collection, selected by the MCS label (resource_for).
    Kind.MULTICLUSTER_SLICES: "/apis/discovery.k8s.io/v1/endpointslices",
}
# Selected always, whatever the user's label selector adds.
_KIND_SELECTORS: dict[Kind, str] = {
    Kind.MULTICLUSTER_SLICES: "multicluster.kubernetes.io/service-name",
}
_TYPES: dict[Kind, type[Any]] = {
    Kind.SERVICES: api.Service,
    Kind.ENDPOINTSLICES: api.EndpointSlice,
    Kind.ENDPOINTS: api.Endpoints,
    Kind.PODS: api.Pod,
    Kind.NAMESPACES: api.Namespace,
    Kind.POD_IPS: api.Pod,
    Kind.SERVICE_IMPORTS: api.ServiceImport,
    Kind.MULTICLUSTER_SLICES: api.EndpointSlice,
}
# Decoders are built once per type and reused.
_DECODERS: dict[Kind, tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]] = {
    kind: (msgspec.json.Decoder(api.ObjectList[t]), msgspec.json.Decoder(t))  # type: ignore[valid-type]
    for kind, t in _TYPES.items()
}

WATCH_TIMEOUT_RANGE = (270, 330)  # seconds, randomized so reflectors do not reconnect together
MIN_WATCH_SECONDS = 1.0  # an empty watch ending sooner is paced to this (no hot loop)


@dataclass(frozen=True)
class Resource(Generic[T]):
    """One watched collection: where it is and how to decode it."""

    kind: Kind
    path: str
    list_decoder: msgspec.json.Decoder[api.ObjectList[T]]
    decoder: msgspec.json.Decoder[T]
    label_selector: str | None = None


def resource_for(kind: Kind, *, label_selector: str | None = None) -> Resource[Any]:
    list_decoder, decoder = _DECODERS[kind]
    required = _KIND_SELECTORS.get(kind)
    if required is not None:
        label_selector = f"{required},{label_selector}" if label_selector else required
    return Resource(kind, RESOURCE_PATHS[kind], list_decoder, decoder, label_selector)


@dataclass
class Counters:
    """What the reflectors report, for metrics."""

    watch_restarts: int = 0  # watches resumed from a resourceVersion without a list
    relists: int = 0  # lists after the first successful one, per kind
    errors: int = 0
    last_error: str | None = None


@dataclass
class ReflectorState:
    """What survives a reconnect: resume from here instead of relisting."""

    resource_version: str | None = None  # None: list first
    listed: bool = False
    fresh_list: bool = False  # the next watch is the first after a list


@dataclass
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""

    base: float = 0.2
    cap: float = 30.0
    rng: Callable[[], float] = random.random
    attempt: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay: float = self.rng() * min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return delay

    def reset(self) -> None:
        self.attempt = 0


async def watch_once(
    *,
    client: KubeClient,
    resource: Resource[T],
    model: ClusterModel,
    state: ReflectorState,
    timeout_seconds: int | None = None,
    inactivity_timeout: float | None = None,
    on_progress: Callable[[], None] = lambda: None,
) -> int:
    """One HTTP watch from ``state.resource_version``; returns the number of events seen.

    Events are applied as they arrive and ``state.resource_version`` follows them, bookmarks
    included, so a dropped connection resumes exactly where it stopped. ``on_progress`` is
    called at the first event: the connection works.
    """
    assert state.resource_version is not None
    if timeout_seconds is None:
        timeout_seconds = random.randint(*WATCH_TIMEOUT_RANGE)
    if inactivity_timeout is None:
        inactivity_timeout = timeout_seconds + 30.0
    count = 0
    events = client.watch(
        resource.path,
        resource.decoder,
        _resource_version_of,
        resource_version=state.resource_version,
        timeout_seconds=timeout_seconds,
        inactivity_timeout=inactivity_timeout,
        label_selector=resource.label_selector,
    )
    async for event in events:
        count += 1
        if count == 1:
            on_progress()
        if event.type in ("ADDED", "MODIFIED", "DELETED"):
            assert event.object is not None
            model.apply(resource.kind, event.type, event.object)  # type: ignore[arg-type]
        elif event.type != "BOOKMARK":
            log.debug("kubernetes: ignoring %s watch event %r", resource.kind, event.type)
        if event.resource_version:
            state.resource_version = event.resource_version
    return count


def _resource_version_of(obj: _HasMetadata) -> str:
    return obj.metadata.resource_version


async def _list_into(client: KubeClient, resource: Resource[T], model: ClusterModel) -> str:
    """One full LIST into the model; returns its resourceVersion.

    Each page is converted to slim records as it arrives and its API objects dropped, so
    the peak is one page of them (pymalloc keeps the arenas a peak needed); the model
    changes only once the whole list is in.
    """
    listing = model.listing(resource.kind)
    version = ""
    pages = client.list_pages(
        resource.path, resource.list_decoder, label_selector=resource.label_selector
    )
    async for page in pages:
        listing.add(page.items or ())
        version = page.metadata.resource_version
        del page
    listing.commit()
    log.debug("kubernetes: listed %d %s at %s", listing.count, resource.kind, version)
    return version


async def list_then_watch(
    *,
    client: KubeClient,
    resource: Resource[T],
    model: ClusterModel,
    state: ReflectorState,
    counters: Counters,
    on_progress: Callable[[], None] = lambda: None,
    max_watches: int | None = None,
    timeout_seconds: int | None = None,
    inactivity_timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """List (unless resuming), then watch until an error; 410 Gone relists.

    Returns only after ``max_watches`` watch calls (a bound for tests); other errors raise
    to :func:`run_forever`.
    """
    watches = 0
    while True:
        if state.resource_version is None:
            if state.listed:
                counters.relists += 1
            rv = await _list_into(client, resource, model)
            state.resource_version, state.listed, state.fresh_list = rv, True, True
            on_progress()
        while max_watches is None or watches < max_watches:
            if not state.fresh_list:
                counters.watch_restarts += 1
            state.fresh_list = False
            watches += 1
            started = clock()
            try:
                seen = await watch_once(
                    client=client,
                    resource=resource,
                    model=model,
                    state=state,
                    timeout_seconds=timeout_seconds,
                    inactivity_timeout=inactivity_timeout,
                    on_progress=on_progress,
                )
            except ResourceGone:
                # 410 Gone is normal here: our resourceVersion was compacted away.
                log.info("kubernetes: %s watch expired (410 gone), relisting", resource.kind)
                state.resource_version = None
                break
            if not seen and (elapsed := clock() - started) < MIN_WATCH_SECONDS:
                # Ended at once with nothing, not even a bookmark (a proxy closing streams,
                # or a drop just after connecting): pace the next try instead of spinning.
                await sleep(MIN_WATCH_SECONDS - elapsed)
        else:
            return


async def run_forever(
    *,
    client: KubeClient,
    resource: Resource[T],
    model: ClusterModel,
    counters: Counters,
    max_iterations: int | None = None,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    timeout_seconds: int | None = None,
    inactivity_timeout: float | None = None,
) -> None:
    """Keep ``resource`` mirrored into ``model`` forever, backing off on errors."""
    backoff = backoff or Backoff()
    state = ReflectorState()
    failing = False

    def on_progress() -> None:
        nonlocal failing
        backoff.reset()
        if failing:
            failing = False
            log.info("kubernetes: %s watch re-established", resource.kind)

    iteration = 0
    while max_iterations is None or iteration < max_iterations:
        iteration += 1
        try:
            await list_then_watch(
                client=client,
                resource=resource,
                model=model,
                state=state,
                counters=counters,
                on_progress=on_progress,
                timeout_seconds=timeout_seconds,
                inactivity_timeout=inactivity_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            counters.errors += 1
            counters.last_error = f"{resource.kind}: {type(exc).__name__}: {exc}"
            delay = backoff.next_delay()
            level = logging.DEBUG if failing else logging.WARNING
            what = "lost connection to" if state.listed else "cannot list from"
            log.log(
                level,
                "kubernetes: %s the api server for %s (%s: %s), retrying in %.1fs",
                what,
                resource.kind,
                type(exc).__name__,
                exc,
                delay,
            )
            failing = True
            await sleep(delay)
