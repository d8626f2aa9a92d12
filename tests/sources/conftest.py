"""Fixtures for the sources tests: the Kubernetes API test server and a running source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from clusterdns.sources.kube.kubeconfig import from_endpoint
from clusterdns.sources.kube.source import KubeAPISource
from clusterdns.sources.manifests import ManifestsSource
from clusterdns.sources.model import ClusterModel, Kind
from tests.helpers.kubeapi import KubeAPIServer

ALL_BUT_PODS = {Kind.SERVICES, Kind.ENDPOINTSLICES, Kind.NAMESPACES}


@pytest.fixture
async def kubeapi() -> AsyncIterator[KubeAPIServer]:
    async with KubeAPIServer(bookmark_interval=0.2) as server:
        yield server


def make_source(server: KubeAPIServer, kinds: set[Kind], **kwargs: object) -> KubeAPISource:
    kwargs.setdefault("backoff_cap", 0.5)
    return KubeAPISource(from_endpoint(server.url), kinds=kinds, **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(
    source: KubeAPISource | ManifestsSource, model: ClusterModel
) -> AsyncIterator[None]:
    """Run a source against ``model`` for the duration of the block."""
    task = asyncio.create_task(source.run(model))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
