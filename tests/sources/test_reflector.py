"""The API source against the Kubernetes API test server, through the real client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from clusterdns.sources.kube.client import KubeClient, ResourceGone, TokenBucket
from clusterdns.sources.kube.kubeconfig import ClusterConnection, TokenFile, from_endpoint
from clusterdns.sources.kube.reflector import (
    Backoff,
    Counters,
    ReflectorState,
    list_then_watch,
    resource_for,
    run_forever,
    watch_once,
)
from clusterdns.sources.model import Change, ClusterModel, IpOwner, Kind
from tests.helpers.kubeapi import KubeAPIServer, endpoint_slice, endpoints, namespace, service

from .conftest import ALL_BUT_PODS, eventually, make_source, running


def seed(server: KubeAPIServer) -> None:
    server.create(namespace("default"))
    server.create(service("web", cluster_ip="10.96.0.20", selector={"app": "web"}))
    server.create(endpoint_slice("web-a", "web", addresses=["10.244.0.5", ("10.244.0.6", False)]))


async def test_initial_list_and_sync(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds=ALL_BUT_PODS)
    source = make_source(kubeapi, ALL_BUT_PODS)
    async with running(source, model):
        assert await model.wait_synced(5)
        svc = model.service("default", "web")
        assert svc is not None and svc.cluster_ips == ("10.96.0.20",)
        assert [(e.addresses[0], e.ready) for e in model.endpoints("default", "web")] == [
            ("10.244.0.5", True),
            ("10.244.0.6", False),
        ]
        assert model.namespace_exists("default")
        assert source.endpoints_kind is Kind.ENDPOINTSLICES
        assert (source.relists, source.errors) == (0, 0)
    assert kubeapi.requests["/apis/discovery.k8s.io/v1"] == 1


async def test_events_propagate_one_change_each(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds=ALL_BUT_PODS)
    changes: asyncio.Queue[Change] = asyncio.Queue()
    async with running(make_source(kubeapi, ALL_BUT_PODS), model):
        assert await model.wait_synced(5)
        model.subscribe(changes.put_nowait)

        kubeapi.create(service("api", cluster_ip="10.96.0.30"))
        change = await asyncio.wait_for(changes.get(), 2)
        assert change.services == {("default", "api")}
        assert model.ip_owners("10.96.0.30") == (IpOwner("default", "api", None),)

        generation = model.generation
        kubeapi.update(service("api", cluster_ip="10.96.0.30"))  # resourceVersion-only change
        kubeapi.update(service("api", cluster_ip="10.96.0.31"))
        change = await asyncio.wait_for(changes.get(), 2)
        assert model.generation == generation + 1
        assert model.ip_owners("10.96.0.31") == (IpOwner("default", "api", None),)

        kubeapi.delete(service("api"))
        await asyncio.wait_for(changes.get(), 2)
        assert model.service("default", "api") is None
        assert changes.empty()


async def test_dropped_watch_resumes_without_relist(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds=ALL_BUT_PODS)
    source = make_source(kubeapi, ALL_BUT_PODS)
    async with running(source, model):
        assert await model.wait_synced(5)
        await eventually(lambda: kubeapi.open_watches == 3)
        lists = sum(kubeapi.list_requests.values())
        kubeapi.drop_watches()
        kubeapi.create(service("after-drop", cluster_ip="10.96.0.40"))  # replayed from history
        await eventually(lambda: model.service("default", "after-drop") is not None)
        await eventually(lambda: kubeapi.open_watches == 3)
        kubeapi.create(service("later", cluster_ip="10.96.0.41"))
        await eventually(lambda: model.service("default", "later") is not None)
        assert source.relists == 0
        assert sum(kubeapi.list_requests.values()) == lists
        assert source.watch_restarts >= 3


async def test_compaction_gives_410_then_relist(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds=ALL_BUT_PODS)
    source = make_source(kubeapi, ALL_BUT_PODS)
    async with running(source, model):
        assert await model.wait_synced(5)
        await eventually(lambda: kubeapi.open_watches == 3)
        kubeapi.drop_watches()
        kubeapi.delete(service("web"))
        kubeapi.create(service("fresh", cluster_ip="10.96.0.50"))
        kubeapi.compact()
        await eventually(lambda: model.service("default", "fresh") is not None)
        assert model.service("default", "web") is None
        assert source.relists >= 1  # services relisted (others too: their history is gone)
        assert source.errors == 0  # 410 Gone is normal, not an error


async def test_server_errors_back_off_and_keep_the_model(
    kubeapi: KubeAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds=ALL_BUT_PODS)
    source = make_source(kubeapi, ALL_BUT_PODS)
    async with running(source, model):
        assert await model.wait_synced(5)
        await eventually(lambda: kubeapi.open_watches == 3)
        with caplog.at_level(logging.INFO, logger="clusterdns.sources.kube"):
            kubeapi.fail_requests(500, seconds=1.5)
            kubeapi.drop_watches()
            await eventually(lambda: source.errors >= 3)
            assert "500" in (source.last_error or "")
            assert model.service("default", "web") is not None  # still served
            assert model.endpoints("default", "web")
            kubeapi.create(service("recovered", cluster_ip="10.96.0.60"))
            await eventually(lambda: model.service("default", "recovered") is not None, timeout=5)
        assert model.service("default", "web") is not None
        assert any(r.getMessage().startswith("kubernetes: lost connection") for r in caplog.records)
        assert any("re-established" in r.getMessage() for r in caplog.records)


async def test_api_down_at_start(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    await kubeapi.stop()
    model = ClusterModel(kinds=ALL_BUT_PODS)
    source = make_source(kubeapi, ALL_BUT_PODS)
    async with running(source, model):
        await asyncio.sleep(0.5)
        assert not model.synced
        assert source.errors >= 1
        await kubeapi.start()
        assert await model.wait_synced(5)
        assert model.service("default", "web") is not None


async def test_endpointslices_disabled_falls_back_to_endpoints() -> None:
    async with KubeAPIServer(disable_endpointslices=True) as server:
        server.create(service("web", cluster_ip="None"))
        server.create(endpoints("web", ready=["10.244.0.5"], not_ready=["10.244.0.6"]))
        model = ClusterModel(kinds={Kind.SERVICES, Kind.ENDPOINTSLICES})
        source = make_source(server, {Kind.SERVICES, Kind.ENDPOINTSLICES})
        async with running(source, model):
            assert await model.wait_synced(5)
            assert source.endpoints_kind is Kind.ENDPOINTS
            assert [(e.addresses[0], e.ready) for e in model.endpoints("default", "web")] == [
                ("10.244.0.5", True),
                ("10.244.0.6", False),
            ]
            server.update(endpoints("web", ready=["10.244.0.5", "10.244.0.6"]))
            await eventually(lambda: all(e.ready for e in model.endpoints("default", "web")))
        assert server.list_requests["/apis/discovery.k8s.io/v1/endpointslices"] == 0


async def test_label_selectors(kubeapi: KubeAPIServer) -> None:
    kubeapi.create(service("yes", cluster_ip="10.96.0.1", labels={"dns": "on"}))
    kubeapi.create(service("no", cluster_ip="10.96.0.2", labels={"dns": "off"}))
    kubeapi.create(namespace("default", {"team": "a"}))
    kubeapi.create(namespace("hidden", {"team": "b"}))
    model = ClusterModel(kinds={Kind.SERVICES, Kind.NAMESPACES})
    source = make_source(
        kubeapi,
        {Kind.SERVICES, Kind.NAMESPACES},
        label_selector="dns=on",
        namespace_label_selector="team=a",
    )
    async with running(source, model):
        assert await model.wait_synced(5)
        assert [s.name for s in model.services()] == ["yes"]
        assert model.namespace_exists("default") and not model.namespace_exists("hidden")


async def test_pagination(kubeapi: KubeAPIServer) -> None:
    for i in range(1100):
        kubeapi.create(service(f"s{i:04}", "many", cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}"))
    model = ClusterModel(kinds={Kind.SERVICES})
    async with running(make_source(kubeapi, {Kind.SERVICES}), model):
        assert await model.wait_synced(5)
    assert len(list(model.services_in("many"))) == 1100
    assert kubeapi.list_requests["/api/v1/services"] == 3  # 500 + 500 + 100


async def test_token_rotation_picked_up_on_401(kubeapi: KubeAPIServer, tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    kubeapi.token = "first"
    connection = ClusterConnection(server=kubeapi.url, credentials=TokenFile(token))
    async with KubeClient(connection) as client:
        await client.get("/api/v1")
        token.write_text("second-and-longer\n")
        kubeapi.token = "second-and-longer"
        await client.get("/api/v1")  # 401 → re-read the file → retry
    assert kubeapi.auth_headers[-3:] == [
        "Bearer first",
        "Bearer first",
        "Bearer second-and-longer",
    ]


# --- the loop functions alone -------------------------------------------------------------


async def test_watch_once_follows_bookmarks(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds={Kind.SERVICES})
    state = ReflectorState(resource_version=kubeapi.resource_version)
    kubeapi.create(namespace("bump"))  # advances the resourceVersion; not a service event
    async with KubeClient(from_endpoint(kubeapi.url)) as client:
        seen = await watch_once(
            client=client,
            resource=resource_for(Kind.SERVICES),
            model=model,
            state=state,
            timeout_seconds=1,
        )
    assert seen >= 1  # only bookmarks
    assert state.resource_version == kubeapi.resource_version
    assert model.generation == 0


@pytest.mark.parametrize("as_http", [False, True], ids=["ERROR event 410", "HTTP 410"])
async def test_watch_once_too_old_raises_gone(kubeapi: KubeAPIServer, as_http: bool) -> None:
    seed(kubeapi)
    kubeapi.expired_as_http_410 = as_http
    kubeapi.compact()
    state = ReflectorState(resource_version="1")
    async with KubeClient(from_endpoint(kubeapi.url)) as client:
        with pytest.raises(ResourceGone) as info:
            await watch_once(
                client=client,
                resource=resource_for(Kind.SERVICES),
                model=ClusterModel(kinds=set()),
                state=state,
                timeout_seconds=5,
            )
    assert info.value.code == 410


async def test_list_then_watch_resumes_from_state(kubeapi: KubeAPIServer) -> None:
    seed(kubeapi)
    model = ClusterModel(kinds={Kind.SERVICES})
    state, counters = ReflectorState(), Counters()
    progress: list[int] = []
    async with KubeClient(from_endpoint(kubeapi.url)) as client:
        await list_then_watch(
            client=client,
            resource=resource_for(Kind.SERVICES),
            model=model,
            state=state,
            counters=counters,
            on_progress=lambda: progress.append(1),
            max_watches=1,
            timeout_seconds=1,
        )
        assert model.synced and state.listed
        kubeapi.create(service("while-away", cluster_ip="10.96.0.70"))
        await list_then_watch(
            client=client,
            resource=resource_for(Kind.SERVICES),
            model=model,
            state=state,
            counters=counters,
            max_watches=1,
            timeout_seconds=1,
        )
    assert model.service("default", "while-away") is not None
    assert (counters.relists, counters.watch_restarts) == (0, 1)
    assert kubeapi.list_requests["/api/v1/services"] == 1
    assert progress


async def test_run_forever_backs_off_with_jitter() -> None:
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    counters = Counters()
    # Nothing listens on this port: every iteration fails to connect.
    async with KubeClient(from_endpoint("http://127.0.0.1:9")) as client:
        await run_forever(
            client=client,
            resource=resource_for(Kind.SERVICES),
            model=ClusterModel(kinds={Kind.SERVICES}),
            counters=counters,
            max_iterations=6,
            backoff=Backoff(base=0.2, cap=1.0, rng=lambda: 1.0),
            sleep=fake_sleep,
        )
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert counters.errors == 6 and counters.last_error is not None


def test_backoff_full_jitter_and_reset() -> None:
    backoff = Backoff(base=0.2, cap=30.0, rng=lambda: 0.5)
    assert [backoff.next_delay() for _ in range(3)] == [0.1, 0.2, 0.4]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(qps=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay() == pytest.approx(0.5)
    now[0] = 10.0
    assert bucket.delay() == 0.0
