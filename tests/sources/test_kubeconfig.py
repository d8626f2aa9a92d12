"""Connection loading: kubeconfig, in-cluster service account, explicit endpoint."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterdns.sources.kube.kubeconfig import (
    ClusterConnection,
    ConfigError,
    ExecCredentials,
    StaticToken,
    TokenFile,
    from_endpoint,
    from_kubeconfig,
    in_cluster,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate and its key (it serves as CA and as client certificate)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
            "-days", "1", "-subj", "/CN=clusterdns-test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return {"cert": d / "cert.pem", "key": d / "key.pem"}


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path, users: dict[str, Any], cluster: dict[str, Any] | None = None
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://10.0.0.1:6443", **(cluster or {})}},
            {"name": "c2", "cluster": {"server": "http://127.0.0.1:8080/"}},
        ],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [
            {"name": "main", "context": {"cluster": "c1", "user": "u1"}},
            {"name": "other", "context": {"cluster": "c2", "user": "u2"}},
            {"name": "broken", "context": {"cluster": "nope", "user": "u1"}},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def auth(connection: ClusterConnection) -> str | None:
    return (await connection.headers()).get("Authorization")


async def test_token_and_ca_data(tmp_path: Path, pki: dict[str, Path]) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        {"u1": {"token": "abc"}},
        {"certificate-authority-data": b64(pki["cert"])},
    )
    conn = from_kubeconfig(path)
    assert conn.server == "https://10.0.0.1:6443"
    assert isinstance(conn.ssl, ssl.SSLContext) and len(conn.ssl.get_ca_certs()) == 1
    assert conn.ssl.verify_mode == ssl.CERT_REQUIRED
    assert await auth(conn) == "Bearer abc"


async def test_client_certificate_data(tmp_path: Path, pki: dict[str, Path]) -> None:
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("clusterdns-*"))
    user = {"client-certificate-data": b64(pki["cert"]), "client-key-data": b64(pki["key"])}
    path = write_kubeconfig(
        tmp_path / "config", {"u1": user}, {"certificate-authority-data": b64(pki["cert"])}
    )
    conn = from_kubeconfig(path)
    assert isinstance(conn.ssl, ssl.SSLContext)
    assert conn.credentials is None
    # the temporary copies of the key are gone once loaded
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("clusterdns-*")) == before


async def test_relative_files_and_insecure(tmp_path: Path, pki: dict[str, Path]) -> None:
    shutil.copy(pki["cert"], tmp_path / "ca.pem")
    shutil.copy(pki["cert"], tmp_path / "client.pem")
    shutil.copy(pki["key"], tmp_path / "client.key")
    (tmp_path / "token").write_text("from-file\n")
    user = {"client-certificate": "client.pem", "client-key": "client.key", "tokenFile": "token"}
    path = write_kubeconfig(
        tmp_path / "config",
        {"u1": user},
        {
            "certificate-authority": "ca.pem",
            "insecure-skip-tls-verify": True,
            "tls-server-name": "kubernetes",
        },
    )
    conn = from_kubeconfig(path)
    assert isinstance(conn.ssl, ssl.SSLContext) and conn.ssl.verify_mode == ssl.CERT_NONE
    assert conn.server_hostname == "kubernetes"
    assert isinstance(conn.credentials, TokenFile)
    assert await auth(conn) == "Bearer from-file"


@pytest.mark.parametrize(
    ("context", "error"),
    [
        pytest.param("other", None, id="explicit context"),
        pytest.param("missing", "context 'missing' not found", id="unknown context"),
        pytest.param("broken", "cluster 'nope'", id="context naming an unknown cluster"),
    ],
)
async def test_context_selection(tmp_path: Path, context: str, error: str | None) -> None:
    path = write_kubeconfig(
        tmp_path / "config", {"u1": {"token": "a"}, "u2": {"username": "x", "password": "y"}}
    )
    if error is not None:
        with pytest.raises(ConfigError, match=error):
            from_kubeconfig(path, context)
        return
    conn = from_kubeconfig(path, context)
    assert conn.server == "http://127.0.0.1:8080"
    assert conn.ssl is None
    assert await auth(conn) == "Basic " + base64.b64encode(b"x:y").decode()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("clusters: [", "config", id="YAML error"),
        pytest.param("clusters: 3", r"got `int` - at `\$.clusters`", id="wrong shape"),
        pytest.param("clusters: []", "no context", id="no current-context"),
    ],
)
def test_bad_kubeconfig(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        from_kubeconfig(path)


def test_bad_base64(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"u1": {}}, {"certificate-authority-data": "@@@"})
    with pytest.raises(ConfigError, match="certificate-authority-data is not valid base64"):
        from_kubeconfig(path)


async def test_exec_plugin_reruns_when_expired(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = tmp_path / "cred.py"
    expires = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    script.write_text(
        textwrap.dedent(
            f"""
            import json, os, pathlib
            p = pathlib.Path({str(counter)!r})
            n = int(p.read_text()) + 1 if p.exists() else 1
            p.write_text(str(n))
            assert json.loads(os.environ["KUBERNETES_EXEC_INFO"])["kind"] == "ExecCredential"
            print(json.dumps({{
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {{"token": os.environ["PREFIX"] + str(n),
                            "expirationTimestamp": {expires!r}}},
            }}))
            """
        )
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script)],
            "env": [{"name": "PREFIX", "value": "tok-"}],
            "interactiveMode": "Never",
        }
    }
    conn = from_kubeconfig(write_kubeconfig(tmp_path / "config", {"u1": user}))
    creds = conn.credentials
    assert isinstance(creds, ExecCredentials)
    now = [datetime.now(UTC).timestamp()]
    creds.clock = lambda: now[0]
    assert await auth(conn) == "Bearer tok-1"
    assert await auth(conn) == "Bearer tok-1"  # cached until it expires
    now[0] += 11 * 60
    assert await auth(conn) == "Bearer tok-2"
    assert counter.read_text() == "2"


async def test_exec_plugin_failure(tmp_path: Path) -> None:
    user = {"exec": {"command": "false", "apiVersion": "client.authentication.k8s.io/v1"}}
    conn = from_kubeconfig(write_kubeconfig(tmp_path / "config", {"u1": user}))
    with pytest.raises(ConfigError, match="exited with 1"):
        await auth(conn)


async def test_in_cluster_token_rotation(tmp_path: Path, pki: dict[str, Path]) -> None:
    shutil.copy(pki["cert"], tmp_path / "ca.crt")
    token = tmp_path / "token"
    token.write_text("one")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conn = in_cluster(service_account_dir=tmp_path, environ=env)
    assert conn.server == "https://10.96.0.1:443"
    assert isinstance(conn.ssl, ssl.SSLContext) and len(conn.ssl.get_ca_certs()) == 1
    creds = conn.credentials
    assert isinstance(creds, TokenFile)
    now = [0.0]
    creds.clock = lambda: now[0]
    assert await auth(conn) == "Bearer one"
    token.write_text("two-rotated")
    now[0] += 30
    assert await auth(conn) == "Bearer one"  # checked at most every minute
    now[0] += 31
    assert await auth(conn) == "Bearer two-rotated"
    token.write_text("three-rotated-again")
    creds.invalidate()  # what the client does on a 401
    assert await auth(conn) == "Bearer three-rotated-again"


def test_in_cluster_ipv6_and_errors(tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="not running in a cluster"):
        in_cluster(service_account_dir=tmp_path, environ={})
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ConfigError, match=r"ca\.crt"):
        in_cluster(service_account_dir=tmp_path, environ=env)
    shutil.copy(pki["cert"], tmp_path / "ca.crt")
    assert in_cluster(service_account_dir=tmp_path, environ=env).server == "https://[fd00::1]:443"


async def test_from_endpoint(pki: dict[str, Path]) -> None:
    plain = from_endpoint("http://127.0.0.1:8080/", token="t")
    assert plain.server == "http://127.0.0.1:8080" and plain.ssl is None
    assert isinstance(plain.credentials, StaticToken)
    tls = from_endpoint(
        "https://k8s:6443", tls=(str(pki["cert"]), str(pki["key"]), str(pki["cert"]))
    )
    assert isinstance(tls.ssl, ssl.SSLContext) and len(tls.ssl.get_ca_certs()) == 1
    with pytest.raises(ConfigError, match="tls"):
        from_endpoint("https://k8s:6443", tls=("/nonexistent", "/nonexistent", "/nonexistent"))
