"""How to reach the Kubernetes API: explicit endpoint, kubeconfig file, or in-cluster.

Each loader returns a :class:`ClusterConnection`: the server URL, the TLS context and a
:class:`Credentials` provider giving the ``Authorization`` header value. Tokens that can
change (a service-account token file, an exec plugin) are refreshed by the provider; the
client calls :meth:`Credentials.invalidate` on a 401 to force a refresh.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import yaml

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterConnection",
    "ConfigError",
    "Credentials",
    "ExecCredentials",
    "StaticToken",
    "TokenFile",
    "from_endpoint",
    "from_kubeconfig",
    "in_cluster",
]

log = logging.getLogger("clusterdns.sources.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_RECHECK_SECONDS = 60.0

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class ConfigError(Exception):
    """The connection settings are unusable (message says which file and what)."""


class Credentials(Protocol):
    async def authorization(self) -> str | None:
        """The ``Authorization`` header value, or None to send none."""
        ...

    def invalidate(self) -> None:
        """The server answered 401: refresh before the next request."""
        ...


# Secrets are kept out of repr(): a connection or credential formatted into a log line or an
# error message must not carry them (tests/reliability/test_security.py).


@dataclass
class StaticToken:
    token: str = field(repr=False)

    async def authorization(self) -> str | None:
        return f"Bearer {self.token}"

    def invalidate(self) -> None:
        pass


@dataclass
class BasicAuth:
    username: str
    password: str = field(repr=False)

    async def authorization(self) -> str | None:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def invalidate(self) -> None:
        pass


@dataclass
class TokenFile:
    """A bearer token re-read when the file changes (projected tokens rotate hourly).

    The file's mtime is checked at most every ``recheck`` seconds, and at once after a 401.
    """

    path: Path
    recheck: float = TOKEN_RECHECK_SECONDS
    clock: Callable[[], float] = time.monotonic
    _token: str = field(default="", init=False, repr=False)
    _mtime: int = field(default=-1, init=False)
    _checked: float | None = field(default=None, init=False)

    async def authorization(self) -> str | None:
        now = self.clock()
        if self._checked is None or now - self._checked >= self.recheck:
            self._checked = now
            self._reload()
        return f"Bearer {self._token}" if self._token else None

    def invalidate(self) -> None:
        self._checked = None

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                self._token = self.path.read_text().strip()
                self._mtime = mtime
        except OSError as exc:
            log.warning("kubernetes: cannot read token file %s: %s", self.path, exc)


class _ExecConfig(msgspec.Struct, rename="camel"):
    command: str
    api_version: str = "client.authentication.k8s.io/v1"
    args: list[str] | None = None
    env: list[dict[str, str]] | None = None
    provide_cluster_info: bool = False


class _ExecStatus(msgspec.Struct, rename="camel"):
    token: str | None = None
    expiration_timestamp: str | None = None
    client_certificate_data: str | None = None
    client_key_data: str | None = None


class _ExecCredential(msgspec.Struct):
    status: _ExecStatus = msgspec.field(default_factory=_ExecStatus)


@dataclass
class ExecCredentials:
    """A client-go exec credential plugin: run once, run again when the token expires."""

    config: _ExecConfig
    base_dir: Path
    clock: Callable[[], float] = time.time  # wall clock: expirations are timestamps
    _token: str | None = field(default=None, init=False, repr=False)
    _expires: float | None = field(default=None, init=False)
    _lock: asyncio.Lock | None = field(default=None, init=False)

    async def authorization(self) -> str | None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or (self._expires is not None and self.clock() >= self._expires):
                await self._run()
        return f"Bearer {self._token}" if self._token else None

    def invalidate(self) -> None:
        self._token = None

    async def _run(self) -> None:
        cfg = self.config
        command = cfg.command
        if os.sep in command and not os.path.isabs(command):
            command = str(self.base_dir / command)
        env = dict(os.environ)
        for item in cfg.env or ():
            env[item["name"]] = item["value"]
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {
                "apiVersion": cfg.api_version,
                "kind": "ExecCredential",
                "spec": {"interactive": False},
            }
        )
        proc = await asyncio.create_subprocess_exec(
            command,
            *(cfg.args or ()),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise ConfigError(
                f"exec credential plugin {cfg.command} exited with {proc.returncode}: "
                f"{err.decode(errors='replace').strip()}"
            )
        try:
            status = msgspec.json.decode(out, type=_ExecCredential).status
        except msgspec.DecodeError as exc:
            raise ConfigError(f"exec credential plugin {cfg.command}: {exc}") from exc
        if not status.token:
            raise ConfigError(f"exec credential plugin {cfg.command} returned no token")
        self._token = status.token
        self._expires = None
        if status.expiration_timestamp:
            stamp = status.expiration_timestamp.replace("Z", "+00:00")
            self._expires = datetime.fromisoformat(stamp).timestamp()


@dataclass
class ClusterConnection:
    """Where the API server is and how to authenticate to it.

    ``ssl`` is what aiohttp takes: an SSLContext, None for default verification of an
    https server (and nothing for http), or False to skip verification.
    """

    server: str
    ssl: ssl.SSLContext | bool | None = None
    credentials: Credentials | None = None
    server_hostname: str | None = None  # TLS SNI/verification name (tls-server-name)

    async def headers(self) -> dict[str, str]:
        if self.credentials is None:
            return {}
        value = await self.credentials.authorization()
        return {"Authorization": value} if value else {}


def _tls_context(
    *,
    ca_file: str | None = None,
    ca_data: bytes | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    cert_data: bytes | None = None,
    key_data: bytes | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    if ca_data is not None:
        ctx = ssl.create_default_context(cadata=ca_data.decode("ascii"))
    else:
        ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_data is not None or key_data is not None:
        # ssl only loads certificates from files: write them to private temporary files and
        # remove those as soon as they are loaded.
        with tempfile.TemporaryDirectory(prefix="clusterdns-") as tmp:
            cert_path = os.path.join(tmp, "client.crt")
            key_path = os.path.join(tmp, "client.key")
            for path, data, fallback in (
                (cert_path, cert_data, cert_file),
                (key_path, key_data, key_file),
            ):
                if data is None:
                    if fallback is None:
                        raise ConfigError("client certificate and key must be given together")
                    data = Path(fallback).read_bytes()
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_path, key_path)
    elif cert_file is not None or key_file is not None:
        if cert_file is None or key_file is None:
            raise ConfigError("client certificate and key must be given together")
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def from_endpoint(
    url: str,
    *,
    tls: tuple[str, str, str] | None = None,
    token: str | None = None,
) -> ClusterConnection:
    """An explicit ``endpoint URL`` with optional ``tls CERT KEY CACERT`` (Corefile style)."""
    ctx: ssl.SSLContext | None = None
    if tls is not None:
        cert, key, ca = tls
        try:
            ctx = _tls_context(ca_file=ca or None, cert_file=cert or None, key_file=key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls {cert} {key} {ca}: {exc}") from exc
    return ClusterConnection(
        server=url.rstrip("/"),
        ssl=ctx,
        credentials=StaticToken(token) if token else None,
    )


def in_cluster(
    *,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> ClusterConnection:
    """The Pod's own service account: KUBERNETES_SERVICE_HOST/PORT, token and ca.crt."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are unset")
    if ":" in host:
        host = f"[{host}]"
    ca = service_account_dir / "ca.crt"
    try:
        ctx = _tls_context(ca_file=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{ca}: {exc}") from exc
    return ClusterConnection(
        server=f"https://{host}:{port}",
        ssl=ctx,
        credentials=TokenFile(service_account_dir / "token"),
    )


# --- kubeconfig ---------------------------------------------------------------------------


def _field(name: str) -> Any:
    return msgspec.field(default=None, name=name)


class _Cluster(msgspec.Struct):
    server: str = ""
    certificate_authority: str | None = _field("certificate-authority")
    certificate_authority_data: str | None = _field("certificate-authority-data")
    insecure_skip_tls_verify: bool = msgspec.field(default=False, name="insecure-skip-tls-verify")
    tls_server_name: str | None = _field("tls-server-name")


class _User(msgspec.Struct):
    token: str | None = None
    token_file: str | None = _field("tokenFile")
    client_certificate: str | None = _field("client-certificate")
    client_certificate_data: str | None = _field("client-certificate-data")
    client_key: str | None = _field("client-key")
    client_key_data: str | None = _field("client-key-data")
    username: str | None = None
    password: str | None = None
    exec: _ExecConfig | None = None
    auth_provider: dict[str, Any] | None = _field("auth-provider")


class _Context(msgspec.Struct):
    cluster: str = ""
    user: str = ""


class _NamedCluster(msgspec.Struct):
    name: str
    cluster: _Cluster


class _NamedUser(msgspec.Struct):
    name: str
    user: _User = msgspec.field(default_factory=_User)


class _NamedContext(msgspec.Struct):
    name: str
    context: _Context


class _KubeConfig(msgspec.Struct):
    clusters: list[_NamedCluster] | None = None
    users: list[_NamedUser] | None = None
    contexts: list[_NamedContext] | None = None
    current_context: str | None = _field("current-context")


def _b64(data: str, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ConfigError(f"{path}: {what} is not valid base64") from exc


def from_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> ClusterConnection:
    """Load a kubeconfig file; ``context`` defaults to its current-context."""
    path = Path(path).expanduser()
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)
        config = msgspec.convert(raw or {}, type=_KubeConfig)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    name = context or config.current_context
    if not name:
        raise ConfigError(f"{path}: no context given and no current-context set")
    contexts = {c.name: c.context for c in config.contexts or ()}
    if name not in contexts:
        raise ConfigError(f"{path}: context {name!r} not found")
    ctx = contexts[name]
    clusters = {c.name: c.cluster for c in config.clusters or ()}
    users = {u.name: u.user for u in config.users or ()}
    if ctx.cluster not in clusters:
        raise ConfigError(f"{path}: cluster {ctx.cluster!r} of context {name!r} not found")
    cluster = clusters[ctx.cluster]
    user = users.get(ctx.user, _User())
    if not cluster.server:
        raise ConfigError(f"{path}: cluster {ctx.cluster!r} has no server")
    base = path.parent

    def rel(p: str | None) -> str | None:
        return str(base / p) if p else None

    credentials: Credentials | None = None
    if user.token:
        credentials = StaticToken(user.token)
    elif user.token_file:
        credentials = TokenFile(Path(rel(user.token_file) or ""))
    elif user.exec is not None:
        credentials = ExecCredentials(user.exec, base)
    elif user.username and user.password:
        credentials = BasicAuth(user.username, user.password)
    elif user.auth_provider is not None:
        raise ConfigError(f"{path}: auth-provider is not supported, use an exec plugin")

    tls: ssl.SSLContext | bool | None = None
    if cluster.server.startswith("https"):
        try:
            tls = _tls_context(
                ca_file=rel(cluster.certificate_authority),
                ca_data=_b64(cluster.certificate_authority_data, "certificate-authority-data", path)
                if cluster.certificate_authority_data
                else None,
                cert_file=rel(user.client_certificate),
                key_file=rel(user.client_key),
                cert_data=_b64(user.client_certificate_data, "client-certificate-data", path)
                if user.client_certificate_data
                else None,
                key_data=_b64(user.client_key_data, "client-key-data", path)
                if user.client_key_data
                else None,
                insecure=cluster.insecure_skip_tls_verify,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{path}: context {name!r}: {exc}") from exc
    return ClusterConnection(
        server=cluster.server.rstrip("/"),
        ssl=tls,
        credentials=credentials,
        server_hostname=cluster.tls_server_name,
    )
