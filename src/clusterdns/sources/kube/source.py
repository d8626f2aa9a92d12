"""KubeAPISource: mirror Services, endpoints, Pods and Namespaces from the API server."""

from __future__ import annotations

import asyncio
import logging

from ..model import ClusterModel, Kind
from .client import KubeClient
from .kubeconfig import ClusterConnection
from .reflector import Backoff, Counters, _list_into, resource_for, run_forever

__all__ = ["ENDPOINTSLICE_GROUP_VERSION", "KubeAPISource"]

log = logging.getLogger("clusterdns.sources.kube")

ENDPOINTSLICE_GROUP_VERSION = "/apis/discovery.k8s.io/v1"
MCS_GROUP_VERSION = "/apis/multicluster.x-k8s.io/v1alpha1"
# Kinds from API groups a cluster may not serve: until it does, the model holds none of
# them (and counts them synced, so readiness does not wait for a CRD nobody installed).
OPTIONAL_GROUPS: dict[Kind, str] = {
    Kind.SERVICE_IMPORTS: MCS_GROUP_VERSION,
    Kind.MULTICLUSTER_SLICES: ENDPOINTSLICE_GROUP_VERSION,
}
OPTIONAL_RECHECK = 60.0  # seconds between discovery checks for a missing optional group


class KubeAPISource(Counters):
    """One reflector per kind, run concurrently into one model.

    ``label_selector`` filters Services and their endpoints (EndpointSlices and Endpoints
    carry their Service's labels); ``namespace_label_selector`` filters the Namespaces, so
    with it (and Kind.NAMESPACES watched) ``model.namespace_exists()`` is False for the
    namespaces it excludes. The counters (``watch_restarts``, ``relists``, ``errors``,
    ``last_error``) add up over all reflectors.
    """

    def __init__(
        self,
        connection: ClusterConnection,
        *,
        kinds: set[Kind],
        label_selector: str | None = None,
        namespace_label_selector: str | None = None,
        qps: float | None = None,
        burst: int | None = None,
        max_inflight: int | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        watch_timeout: int | None = None,
        inactivity_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.connection = connection
        self.kinds = frozenset(kinds)
        self.label_selector = label_selector
        self.namespace_label_selector = namespace_label_selector
        self.qps = qps
        self.burst = burst
        self.max_inflight = max_inflight
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.watch_timeout = watch_timeout
        self.inactivity_timeout = inactivity_timeout
        self.endpoints_kind: Kind | None = None  # decided by discovery
        self.optional_recheck = OPTIONAL_RECHECK

    def _backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)

    async def run(self, model: ClusterModel) -> None:
        """Run until cancelled. Errors are logged, counted and retried, never raised."""
        async with (
            KubeClient(
                self.connection, qps=self.qps, burst=self.burst, max_inflight=self.max_inflight
            ) as client,
            asyncio.TaskGroup() as group,
        ):
            # What the model was asked for after setup (autopath's POD_IPS) is watched too.
            kinds = self.kinds | model.kinds
            for kind in sorted(kinds):
                if kind is Kind.ENDPOINTSLICES:
                    group.create_task(self._reflect_endpoints(client, model))
                elif kind is Kind.ENDPOINTS and Kind.ENDPOINTSLICES in kinds:
                    continue
                elif kind is Kind.POD_IPS and Kind.PODS in kinds:
                    continue  # the full Pod watch maintains the index as well
                elif kind in OPTIONAL_GROUPS:
                    group.create_task(self._reflect_optional(client, model, kind))
                else:
                    group.create_task(self._reflect(client, model, kind))

    async def list_once(self, model: ClusterModel) -> None:
        """List every kind once into ``model``, without watching, and raise the first error.

        For one-shot commands (the toolbox), which must fail with the reason instead of
        retrying; the same discovery, selectors and conversion as :meth:`run`.
        """
        async with KubeClient(self.connection, qps=self.qps, burst=self.burst) as client:
            kinds = set(self.kinds | model.kinds)
            if Kind.ENDPOINTSLICES in kinds:
                found = await client.has_group_version(ENDPOINTSLICE_GROUP_VERSION)
                self.endpoints_kind = Kind.ENDPOINTSLICES if found else Kind.ENDPOINTS
                kinds.discard(Kind.ENDPOINTSLICES)
                kinds.add(self.endpoints_kind)
            if Kind.PODS in kinds:
                kinds.discard(Kind.POD_IPS)
            # Services first: slices and Endpoints look their Service up when converted.
            for kind in sorted(kinds, key=lambda k: (k is not Kind.SERVICES, k)):
                optional = OPTIONAL_GROUPS.get(kind)
                if optional is not None and not await client.has_group_version(optional):
                    model.replace_all(kind, ())
                    continue
                resource = resource_for(kind, label_selector=self._selector_for(kind))
                await _list_into(client, resource, model)

    def _selector_for(self, kind: Kind) -> str | None:
        if kind is Kind.NAMESPACES:
            return self.namespace_label_selector
        if kind in (Kind.PODS, Kind.POD_IPS, Kind.SERVICE_IMPORTS):
            return None  # ServiceImports carry no Service labels to select on
        return self.label_selector

    async def _reflect(self, client: KubeClient, model: ClusterModel, kind: Kind) -> None:
        await run_forever(
            client=client,
            resource=resource_for(kind, label_selector=self._selector_for(kind)),
            model=model,
            counters=self,
            backoff=self._backoff(),
            timeout_seconds=self.watch_timeout,
            inactivity_timeout=self.inactivity_timeout,
        )

    async def _reflect_optional(self, client: KubeClient, model: ClusterModel, kind: Kind) -> None:
        """Watch ``kind`` once its API group is served (OPTIONAL_GROUPS); until then the
        model holds none of it, and discovery is asked again every ``optional_recheck``."""
        group_version = OPTIONAL_GROUPS[kind]
        announced = False
        while not await self._discover(client, group_version):
            if not announced:
                log.warning(
                    "kubernetes: the API server does not serve %s, so there are no %s "
                    "(install the Multi-Cluster Services CRDs); asking again every %gs",
                    group_version.removeprefix("/apis/"), kind.value, self.optional_recheck,
                )  # fmt: skip
                model.replace_all(kind, ())
                announced = True
            await asyncio.sleep(self.optional_recheck)
        if announced:
            log.info("kubernetes: %s is served now, watching %s", group_version, kind.value)
        await self._reflect(client, model, kind)

    async def _discover(self, client: KubeClient, group_version: str) -> bool:
        """Does the API server serve ``group_version``? Errors are counted and retried
        with backoff until it answers."""
        backoff = self._backoff()
        while True:
            try:
                return await client.has_group_version(group_version)
            except Exception as exc:
                self.errors += 1
                self.last_error = f"discovery: {type(exc).__name__}: {exc}"
                delay = backoff.next_delay()
                log.warning("kubernetes: api discovery failed (%s), retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _reflect_endpoints(self, client: KubeClient, model: ClusterModel) -> None:
        """EndpointSlices when the API has them, else legacy v1 Endpoints."""
        while self.endpoints_kind is None:
            found = await self._discover(client, ENDPOINTSLICE_GROUP_VERSION)
            if found:
                self.endpoints_kind = Kind.ENDPOINTSLICES
            else:
                log.info("kubernetes: no discovery.k8s.io/v1, watching v1 endpoints instead")
                self.endpoints_kind = Kind.ENDPOINTS
        await self._reflect(client, model, self.endpoints_kind)
