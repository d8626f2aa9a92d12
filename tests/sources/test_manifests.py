"""The manifests source: the examples folder, fill-ins, polling, bad files."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from clusterdns.sources.manifests import (
    ClusterIPAllocator,
    ManifestError,
    ManifestsSource,
    parse_manifest,
)
from clusterdns.sources.model import ClusterModel, IpOwner, Kind

from .conftest import eventually, running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cluster"
KINDS = {Kind.SERVICES, Kind.ENDPOINTSLICES, Kind.NAMESPACES, Kind.PODS}


def load(directory: Path, **kwargs: object) -> tuple[ManifestsSource, ClusterModel]:
    model = ClusterModel(kinds=KINDS)
    source = ManifestsSource(directory, kinds=KINDS, **kwargs)  # type: ignore[arg-type]
    source.poll_once(model)
    return source, model


def test_examples_load() -> None:
    source, model = load(EXAMPLES)
    assert model.synced and source.errors == 0
    mysql = model.service("default", "mysql-service")
    assert mysql is not None and mysql.cluster_ips == ("10.96.162.44",)
    assert [
        (e.addresses, e.pod_name, e.ports[0].port)
        for e in model.endpoints("default", "mysql-service")
    ] == [(("10.244.1.7",), "mysql", 3306)]
    dns = model.service("kube-system", "kube-dns")
    assert dns is not None and dns.cluster_ips == ("10.96.0.10",)
    assert [(p.name, p.port, p.protocol) for p in dns.ports] == [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    ]
    kubernetes = model.service("default", "kubernetes")
    assert kubernetes is not None and kubernetes.cluster_ips == ("10.96.0.1",)
    assert model.endpoints("default", "kubernetes")[0].addresses == (
        "192.168.49.2",
    )  # explicit slice
    # derived endpoints: named targetPort resolved to the container port, pods in order
    demo = model.endpoints("default", "demoapp-svc")
    assert [(e.addresses[0], e.ports[0].name, e.ports[0].port, e.ready) for e in demo] == [
        ("10.244.1.11", "http", 8080, True),
        ("10.244.2.12", "http", 8080, True),
    ]
    web = model.service("default", "web")
    assert web is not None and web.headless
    assert [(e.hostname, e.pod_name) for e in model.endpoints("default", "web")] == [
        ("web-0", "web-0"),
        ("web-1", "web-1"),
    ]
    assert model.ip_owners("10.244.1.20") == (IpOwner("default", "web", "web-0"),)
    search = model.service("default", "search")
    assert search is not None and search.external_name == "www.example.com"
    echo = model.service("default", "echo")
    assert echo is not None and echo.cluster_ips == ("10.96.200.20", "fd00:10:96::c8")
    assert {e.addresses[0] for e in model.endpoints("default", "echo")} == {
        "10.244.1.30",
        "fd00:10:244:1::1e",
    }
    assert [p.name for p in model.pods_by_ip("10.244.1.7")] == ["mysql"]
    for ns in ("default", "kube-system", "shared"):
        assert model.namespace_exists(ns)
    shared = model.namespace("shared")
    assert shared is not None and shared.labels == (("team", "platform"),)


def test_allocated_cluster_ip_is_deterministic() -> None:
    _, first = load(EXAMPLES)
    _, second = load(EXAMPLES)
    queue = first.service("shared", "queue")
    again = second.service("shared", "queue")
    assert queue is not None and again is not None
    assert queue.cluster_ips == again.cluster_ips
    (ip,) = queue.cluster_ips
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert ip == ClusterIPAllocator("10.96.0.0/12").allocate("shared", "queue", 0, set())
    assert first.ip_owners(ip) == (IpOwner("shared", "queue", None),)
    assert [e.addresses for e in first.endpoints("shared", "queue")] == [("10.244.2.15",)]


def test_allocator_probes_and_skips_reserved() -> None:
    allocator = ClusterIPAllocator("192.168.0.0/30")  # .1 and .2 usable
    taken: set[str] = set()
    got = {allocator.allocate("ns", "a", 0, taken), allocator.allocate("ns", "b", 0, taken)}
    assert got == {"192.168.0.1", "192.168.0.2"}
    with pytest.raises(ValueError, match="full"):
        allocator.allocate("ns", "c", 0, taken)
    wanted = ClusterIPAllocator("10.96.0.0/12").allocate("ns", "x", 0, set())
    other = ClusterIPAllocator("10.96.0.0/12").allocate("ns", "x", 0, {wanted})
    assert other != wanted  # an explicit IP elsewhere is never handed out
    dual = ClusterIPAllocator("10.96.0.0/12, fd00:10:96::/112")
    assert dual.family_index("IPv6") == 1
    assert ":" in dual.allocate("ns", "x", 1, set())
    with pytest.raises(ValueError):
        ClusterIPAllocator("10.0.0.0/8,10.1.0.0/16")


def test_dual_stack_allocation(tmp_path: Path) -> None:
    (tmp_path / "svc.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: dual}
            spec:
              ipFamilyPolicy: PreferDualStack
              ports: [{port: 80}]
            """
        )
    )
    _, model = load(tmp_path, service_cidr="10.96.0.0/12,fd00:10:96::/112")
    svc = model.service("default", "dual")
    assert svc is not None and len(svc.cluster_ips) == 2 and ":" in svc.cluster_ips[1]


def test_list_json_and_fill_ins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "a", "namespace": "x"},
                "spec": {"clusterIP": "10.96.0.5"},
            },
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ignored"}},
        ],
    }
    (tmp_path / "list.json").write_text(json.dumps(listing))
    (tmp_path / "typed.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: ServiceList
            items:
            - metadata: {name: b}
              spec: {clusterIP: 10.96.0.6}
            """
        )
    )
    with caplog.at_level(logging.DEBUG, logger="clusterdns.sources.manifests"):
        _, model = load(tmp_path)
    assert model.service("x", "a") is not None
    assert model.service("default", "b") is not None
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    # Details at debug, one summary per file and one for the fill-ins at info.
    assert any('typed.yaml:5: Service b has no namespace, using "default"' in m for m in debug)
    assert any("namespace x implied" in m for m in debug)
    assert info == [
        "manifests: list.json: 1 Service",
        'manifests: typed.yaml: 1 Service (1 without a namespace, put in "default")',
        "manifests: filled in as the API server would: 2 Namespaces",
    ]
    assert model.namespace_exists("x") and model.namespace_exists("default")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("kind: Service\nmetadata: {name: a\n", 3, "expected", id="YAML error"),
        pytest.param(
            "kind: Namespace\nmetadata: {name: ok}\n---\nkind: Service\nmetadata: {name: b}\nspec:\n  ports: nope\n",
            4,
            "$.spec.ports",
            id="wrong shape in the second document",
        ),
        pytest.param("- just\n- a list\n", 1, "expected a Kubernetes object", id="not a mapping"),
        pytest.param("metadata: {name: a}\n", 1, "no kind", id="no kind"),
        pytest.param("kind: Pod\nmetadata: {}\n", 1, "no metadata.name", id="no name"),
        pytest.param(
            "kind: List\nitems:\n- kind: Service\n  metadata: {name: a}\n- 3\n",
            5,
            "mapping",
            id="bad List item",
        ),
    ],
)
def test_parse_errors_carry_lines(text: str, line: int, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(Path("bad.yaml"), text)
    assert info.value.line == line
    assert message in info.value.message
    assert str(info.value).startswith(f"bad.yaml:{line}: ")


def test_json_error_line() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(Path("bad.json"), '{\n  "kind": "Service",\n  oops\n}')
    assert info.value.line == 3


async def test_changes_are_picked_up(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    shutil.copytree(EXAMPLES, folder)
    model = ClusterModel(kinds=KINDS)
    source = ManifestsSource(folder, kinds=KINDS, poll_interval=0.02)
    async with running(source, model):
        assert await model.wait_synced(2)
        generation = model.generation

        os.utime(folder / "search.yaml")  # touched, same content: nothing changes
        await asyncio.sleep(0.1)
        assert model.generation == generation

        text = (folder / "search.yaml").read_text().replace("www.example.com", "search.example.org")
        (folder / "search.yaml").write_text(text)
        await eventually(
            lambda: (
                getattr(model.service("default", "search"), "external_name", None)
                == "search.example.org"
            )
        )

        # a new pod matching demoapp's selector shows up in the derived endpoints
        demo = (folder / "demoapp.yaml").read_text()
        third = (
            demo.split("---")[-1].replace("lvx5m", "zzzzz").replace("10.244.2.12", "10.244.3.13")
        )
        (folder / "demoapp.yaml").write_text(demo + "---" + third)
        await eventually(lambda: len(model.endpoints("default", "demoapp-svc")) == 3)

        (folder / "sub").mkdir()
        (folder / "sub" / "extra.yml").write_text(
            "kind: Service\nmetadata: {name: extra, namespace: shared}\nspec: {clusterIP: 10.96.9.9}\n"
        )
        await eventually(lambda: model.service("shared", "extra") is not None)

        (folder / "web.yaml").unlink()
        await eventually(lambda: model.service("default", "web") is None)
        assert model.endpoints("default", "web") == ()
        assert model.pods_by_ip("10.244.1.20") == ()


async def test_bad_file_keeps_its_last_good_objects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cluster"
    shutil.copytree(EXAMPLES, folder)
    model = ClusterModel(kinds=KINDS)
    source = ManifestsSource(folder, kinds=KINDS, poll_interval=0.02)
    with caplog.at_level(logging.ERROR, logger="clusterdns.sources.manifests"):
        async with running(source, model):
            assert await model.wait_synced(2)
            (folder / "mysql.yaml").write_text(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"
            )
            (folder / "broken-new.yaml").write_text("kind: Service\nspec: {ports: 7}\n")
            await eventually(lambda: source.errors >= 2)
            # other files keep loading
            (folder / "search.yaml").write_text(
                (folder / "search.yaml").read_text().replace("www.example.com", "x.example")
            )
            await eventually(
                lambda: (
                    getattr(model.service("default", "search"), "external_name", None)
                    == "x.example"
                )
            )
            mysql = model.service("default", "mysql-service")
            assert mysql is not None and mysql.cluster_ips == ("10.96.162.44",)
            assert model.endpoints("default", "mysql-service")
            errors = source.errors
            await asyncio.sleep(0.1)
            assert source.errors == errors  # an unchanged bad file is not re-reported
            (folder / "mysql.yaml").write_text(
                (EXAMPLES / "mysql.yaml").read_text().replace("10.96.162.44", "10.96.162.45")
            )
            await eventually(
                lambda: (
                    getattr(model.service("default", "mysql-service"), "cluster_ips", None)
                    == ("10.96.162.45",)
                )
            )
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f"manifests: {folder / 'mysql.yaml'}:5: " in m and "keeping its 2 previous objects" in m
        for m in messages
    ), messages
    assert any(f"manifests: {folder / 'broken-new.yaml'}:1: " in m for m in messages), messages


def test_configmap_data_dirs_are_skipped(tmp_path: Path) -> None:
    real = tmp_path / "..2024_01_01_00_00_00.123"
    real.mkdir()
    (real / "svc.yaml").write_text(
        "kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.7}\n"
    )
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "svc.yaml").symlink_to("..data/svc.yaml")
    source, model = load(tmp_path)
    assert source.errors == 0
    assert [s.name for s in model.services()] == ["a"]


def test_missing_directory_serves_nothing(tmp_path: Path) -> None:
    _, model = load(tmp_path / "nope")
    assert model.synced and list(model.services()) == []


def _json_list(*services: tuple[str, str, str]) -> str:
    items = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
        }
        for name, ns, ip in services
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1)


async def test_broken_edit_of_a_json_list_keeps_every_object(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON Lists are read item by item without keeping the decoded objects: a broken edit
    must still leave all of the file's last good objects served, and name its line."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    many = [(f"s{i}", "big", f"10.96.{i // 250}.{i % 250 + 1}") for i in range(3000)]
    (folder / "big.json").write_text(_json_list(*many))
    model = ClusterModel(kinds=KINDS)
    source = ManifestsSource(folder, kinds=KINDS, poll_interval=0.02)
    with caplog.at_level(logging.ERROR, logger="clusterdns.sources.manifests"):
        async with running(source, model):
            assert await model.wait_synced(2)
            assert model.service("big", "s2999") is not None
            text = (folder / "big.json").read_text()
            (folder / "big.json").write_text(text.replace('"s17"', '"s17",,', 1))
            await eventually(lambda: source.errors >= 1)
            assert all(model.service("big", f"s{i}") is not None for i in range(3000))
            edited = text.replace("10.96.0.18", "10.96.99.18")  # s17's address
            (folder / "big.json").write_text(edited)
            await eventually(
                lambda: (
                    getattr(model.service("big", "s17"), "cluster_ips", None) == ("10.96.99.18",)
                )
            )
            assert model.service("big", "s2999") is not None
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"s17"' in row)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f"{folder / 'big.json'}:{line}:" in m and "keeping its 3000 previous objects" in m
        for m in messages
    ), messages


def test_an_object_defined_in_two_json_files_is_served_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.json").write_text(_json_list(("web", "x", "10.96.0.10")))
    (tmp_path / "b.json").write_text(
        _json_list(("web", "x", "10.96.0.11"), ("api", "x", "10.96.0.12"))
    )
    with caplog.at_level(logging.INFO, logger="clusterdns.sources.manifests"):
        _, model = load(tmp_path)
    web = model.service("x", "web")
    assert web is not None and web.cluster_ips in (("10.96.0.10",), ("10.96.0.11",))
    assert model.service("x", "api") is not None
    assert any("also defined at" in r.getMessage() for r in caplog.records)


def test_info_log_is_a_line_per_file_not_per_object(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
        f"spec: {{selector: {{app: a{i}}}, ports: [{{port: 80}}]}}\n"
        for i in range(300)
    ]
    (tmp_path / "services.yaml").write_text("---\n".join(docs))
    with caplog.at_level(logging.INFO, logger="clusterdns.sources.manifests"):
        _, model = load(tmp_path)
    assert model.service_count() == 300
    assert [r.getMessage() for r in caplog.records] == [
        'manifests: services.yaml: 300 Services (300 without a namespace, put in "default")',
        "manifests: filled in as the API server would: 300 ClusterIPs, 1 Namespace, "
        "300 Services' EndpointSlices from their Pods",
    ]
