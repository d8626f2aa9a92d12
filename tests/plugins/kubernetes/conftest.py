"""Fixtures of the kubernetes plugin tests: the test cluster served from manifests and from the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.helpers.kubeapi import KubeAPIServer
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import corefile, objects, write_manifests

INSECURE = "pods insecure"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manifests_server(tmp_path_factory: object) -> AsyncIterator[RunningServer]:
    folder = write_manifests(Path(tmp_path_factory.mktemp("manifests")))  # type: ignore[attr-defined]
    async with running_server(corefile(f"manifests {folder}", extra=INSECURE)) as server:
        plugin = server.plugin("kubernetes")
        assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api_server() -> AsyncIterator[RunningServer]:
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        async with running_server(corefile(f"endpoint {api.url}", extra=INSECURE)) as server:
            plugin = server.plugin("kubernetes")
            assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
            yield server
