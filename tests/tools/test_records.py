"""clusterdns records: offline from the demo manifests (the plugin's own model and answer
table), from a running server's introspect endpoint, and its errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterdns import cli
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(60)

DEMO = Path(cli.demo_cluster_dir())


def demo_services() -> list[dict[str, Any]]:
    found = []
    for path in sorted(DEMO.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Service":
                found.append(doc)
    return found


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cli.main(["records", *argv, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (group,) = data["plugins"]
    return {row["name"]: row for row in group["names"]}


def test_offline_lists_every_demo_service(capsys: pytest.CaptureFixture[str]) -> None:
    names = by_name(run_json(capsys, "--manifests", str(DEMO)))
    for svc in demo_services():
        meta, spec = svc["metadata"], svc["spec"]
        name = f"{meta['name']}.{meta.get('namespace', 'default')}.svc.cluster.local."
        assert name in names
        row = names[name]
        if spec.get("type") == "ExternalName":
            assert row["rule"] == "externalname-cname"
            target = spec["externalName"].rstrip(".") + "."
            assert row["records"] == [f"{name} 30 IN CNAME {target}"]
        elif spec.get("clusterIP") == "None":
            assert row["rule"] == "headless-endpoint"
        else:
            assert row["rule"] == "clusterip"
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip:
                    kind = "AAAA" if ":" in ip else "A"
                    assert f"{name} 30 IN {kind} {ip}" in row["records"]


def test_offline_select_and_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["records", "mysql-service.default.svc.cluster.local", "--manifests",
                     str(DEMO)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("; kubernetes (cluster.local. in-addr.arpa. ip6.arpa.) via "
                               f"manifests {DEMO}")  # fmt: skip
    assert "; clusterip: Service default/mysql-service: ClusterIP 10.96.162.44" in lines
    assert "mysql-service.default.svc.cluster.local. 30 IN A 10.96.162.44" in lines
    owners = {line.split()[0] for line in lines if line and not line.startswith(";")}
    assert all(owner.endswith("mysql-service.default.svc.cluster.local.") for owner in owners)


def test_offline_reverse_names(capsys: pytest.CaptureFixture[str]) -> None:
    names = by_name(run_json(capsys, "--manifests", str(DEMO), "in-addr.arpa."))
    row = names["44.162.96.10.in-addr.arpa."]
    assert row["rule"] == "ptr"
    assert row["records"] == [
        "44.162.96.10.in-addr.arpa. 30 IN PTR mysql-service.default.svc.cluster.local."
    ]


def test_offline_uses_a_corefiles_kubernetes_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        f".:53 {{\n    kubernetes example.internal {{\n        manifests {DEMO}\n"
        "        ttl 7\n        namespaces shared\n    }\n}\n"
    )
    names = by_name(run_json(capsys, "--conf", str(corefile)))
    assert set(names) == {"queue.shared.svc.example.internal."} | {
        n for n in names if n.endswith(".queue.shared.svc.example.internal.")
    }
    assert all(" 7 IN " in line for row in names.values() for line in row["records"])


async def test_server_mode_matches_offline(capsys: pytest.CaptureFixture[str]) -> None:
    text = f"""\
.:0 {{
    introspect 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {DEMO}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
}}
"""
    async with running_server(text) as server:
        port = server.http_port("127.0.0.1", 0)
        argv = ["records", "default.svc.cluster.local", "--server", f"127.0.0.1:{port}", "--json"]
        assert await asyncio.to_thread(cli.main, argv) == 0
    served = by_name(json.loads(capsys.readouterr().out))
    argv = ["records", "default.svc.cluster.local", "--manifests", str(DEMO), "--json"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    offline = by_name(json.loads(capsys.readouterr().out))
    assert served == offline
    assert "web-1.web.default.svc.cluster.local." in served


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--server", "127.0.0.1:9"],
            "cannot reach the introspect endpoint at http://127.0.0.1:9/records",
        ),
        (
            ["--endpoint", "http://127.0.0.1:9"],
            "cannot reach the kubernetes api at http://127.0.0.1:9",
        ),
        (["--manifests", "/nonexistent"], "manifests /nonexistent: not a directory"),
        (["--conf", "/nonexistent/Corefile"], "/nonexistent/Corefile"),
    ],
    ids=["server down", "api down", "no folder", "no corefile"],
)
def test_errors_name_what_failed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["records", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clusterdns records: ")
    assert message in err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("records", "lookup"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out
        assert f"clusterdns {command} " in out


def test_no_arguments_lists_the_demo_cluster_of_the_built_in_corefile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./Corefile: the built-in one, as the other commands
    names = by_name(run_json(capsys))
    assert names == by_name(run_json(capsys, "--manifests", str(DEMO)))
    mysql = names["mysql-service.default.svc.cluster.local."]
    assert mysql["records"][0] == "mysql-service.default.svc.cluster.local. 30 IN A 10.96.162.44"
