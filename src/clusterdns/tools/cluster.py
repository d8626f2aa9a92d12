"""Loading the cluster once for the toolbox commands, the way the kubernetes plugin does.

Every command takes the plugin's connection options (``--kubeconfig FILE [--context C]``,
``--endpoint URL``, ``--manifests DIR``). Without them it reads the ``kubernetes`` block of a
Corefile: ``--conf``, else ``./Corefile`` as ``clusterdns serve`` would, else the one a
clusterdns or CoreDNS Pod mounts (``/etc/coredns/Corefile``). The commands then show the
cluster state the server answers from; a ``kubernetes`` block without ``endpoint`` or
``kubeconfig`` means the Pod's service account, as it does for the plugin. With no Corefile
at all: the Pod's service account inside a cluster (``KUBERNETES_SERVICE_HOST`` set), else
the built-in Corefile, which serves the demo cluster.

The state is read by the same sources the plugin runs (:class:`ManifestsSource`,
:class:`KubeAPISource`), listed once without a watch, into a :class:`ClusterModel` that
also keeps the API objects it was given: the slim records hold what DNS needs, and the
toolbox needs a few more fields (node ports, external IPs, session affinity, a Pod's
``enableServiceLinks`` and DNS settings).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import ClusterModel, Kind, Listing

from .command import ToolError

if TYPE_CHECKING:
    from clusterdns.plugins.kubernetes.config import KubernetesConfig

__all__ = [
    "KINDS",
    "ClusterState",
    "LoadError",
    "add_connection_options",
    "load",
    "load_async",
    "load_from_args",
    "quiet_logging",
    "write_output",
]

log = logging.getLogger("clusterdns.tools")

KINDS = frozenset({Kind.SERVICES, Kind.ENDPOINTSLICES, Kind.PODS, Kind.NAMESPACES})
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
LIST_TIMEOUT = 30.0  # seconds for the whole listing of an API server


class LoadError(ToolError):
    """The cluster could not be read; ``str()`` says from where and why."""


class _RecordingListing(Listing):
    """A model listing that also keeps the API objects it converts."""

    def __init__(self, model: _RecordingModel, kind: Kind) -> None:
        super().__init__(model, kind)
        self._owner = model
        self._objects: dict[tuple[str, str], Any] = {}

    def add(self, objects: Iterable[object]) -> None:
        batch = list(objects)
        for obj in batch:
            meta = obj.metadata  # type: ignore[attr-defined]
            self._objects[(meta.namespace, meta.name)] = obj
        super().add(batch)

    def commit(self) -> None:
        self._owner.objects[self.kind] = self._objects
        super().commit()


class _RecordingModel(ClusterModel):
    def __init__(self, *, kinds: set[Kind]) -> None:
        super().__init__(kinds=kinds, pod_names=True)
        self.objects: dict[Kind, dict[tuple[str, str], Any]] = {}

    def listing(self, kind: Kind) -> Listing:
        return _RecordingListing(self, kind)


@dataclass
class ClusterState:
    """The cluster as one listing saw it: the DNS model plus the API objects behind it."""

    model: ClusterModel
    source: str  # where it came from, for messages: "manifests DIR" or the API URL
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    objects: dict[Kind, dict[tuple[str, str], Any]] = field(default_factory=dict)
    # The Corefile's kubernetes block (zones, ttl, pods, ...) when the cluster came from
    # one; None when the connection options named the source.
    kubernetes: KubernetesConfig | None = None

    def service_object(self, namespace: str, name: str) -> api.Service | None:
        obj = self.objects.get(Kind.SERVICES, {}).get((namespace, name))
        return obj if isinstance(obj, api.Service) else None

    def pod_object(self, namespace: str, name: str) -> api.Pod | None:
        obj = self.objects.get(Kind.PODS, {}).get((namespace, name))
        return obj if isinstance(obj, api.Pod) else None

    def require_pod(self, namespace: str, name: str) -> api.Pod:
        """The Pod, else a :class:`ToolError` saying it is not in this cluster."""
        pod = self.pod_object(namespace, name)
        if pod is None:
            raise ToolError(f"no pod {namespace}/{name} in {self.source}")
        return pod

    def namespace_exists(self, namespace: str) -> bool:
        return self.model.namespace_exists(namespace)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The kubernetes plugin's connection options, shared by every toolbox command."""
    group = parser.add_argument_group(
        "cluster",
        textwrap.fill(
            "where the cluster state comes from; without these, from the kubernetes block of "
            "the Corefile: --conf, else ./Corefile, else /etc/coredns/Corefile; without one, "
            "the Pod's service account in a cluster, else the built-in Corefile, which "
            "serves the demo cluster",
            78,
        ),
    )
    source = group.add_mutually_exclusive_group()
    source.add_argument("--conf", metavar="COREFILE", help="take the cluster from this Corefile")
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API")
    source.add_argument("--endpoint", metavar="URL", help="Kubernetes API URL (no auth)")
    source.add_argument("--manifests", metavar="DIR", help="a folder of manifests")
    group.add_argument("--context", help="kubeconfig context (with --kubeconfig)")
    group.add_argument(
        "--service-cidr", metavar="CIDR",
        help="with --manifests: where missing ClusterIPs are allocated (default 10.96.0.0/12)",
    )  # fmt: skip


def _source_from_args(args: argparse.Namespace) -> tuple[Any, str, KubernetesConfig | None]:
    """(source, description, the kubernetes block's config or None) from explicit options
    or a Corefile."""
    kinds = set(KINDS)
    if args.manifests is not None:
        from clusterdns.sources.manifests import ManifestsSource

        if not os.path.isdir(args.manifests):
            raise LoadError(f"manifests {args.manifests}: not a directory")
        try:
            source = ManifestsSource(
                args.manifests, kinds=kinds, service_cidr=args.service_cidr or "10.96.0.0/12"
            )
        except ValueError as err:
            raise LoadError(f"--service-cidr: {err}") from None
        return source, f"manifests {args.manifests}", None
    from clusterdns.sources.kube.kubeconfig import ConfigError, from_endpoint, from_kubeconfig
    from clusterdns.sources.kube.source import KubeAPISource

    if args.kubeconfig is not None or args.endpoint is not None:
        try:
            if args.kubeconfig is not None:
                connection = from_kubeconfig(args.kubeconfig, args.context)
            else:
                connection = from_endpoint(args.endpoint)
        except (ConfigError, OSError) as err:
            raise LoadError(f"cannot reach the kubernetes api: {err}") from None
        return KubeAPISource(connection, kinds=kinds), connection.server, None
    return _source_from_corefile(args.conf)


POD_COREFILE = "/etc/coredns/Corefile"  # where deploy/kubernetes (and CoreDNS) mount it


def _source_from_corefile(path: str | None) -> tuple[Any, str, KubernetesConfig | None]:
    from clusterdns.cli import default_corefile
    from clusterdns.corefile import CorefileError, parse, parse_server_key
    from clusterdns.corefile import load as load_corefile
    from clusterdns.plugins.kubernetes.setup import build_source, model_kinds, parse_config

    if path is None:
        path = next((p for p in ("Corefile", POD_COREFILE) if os.path.exists(p)), None)
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        from clusterdns.sources.kube.kubeconfig import ConfigError, in_cluster
        from clusterdns.sources.kube.source import KubeAPISource

        try:
            connection = in_cluster()
        except (ConfigError, OSError) as err:
            raise LoadError(f"cannot reach the kubernetes api: {err}") from None
        return KubeAPISource(connection, kinds=set(KINDS)), connection.server, None
    try:
        corefile = load_corefile(path) if path else parse(default_corefile(), filename="<built-in>")
        for block in corefile.blocks:
            for directive in block.directives:
                if directive.name != "kubernetes":
                    continue
                zones = [a.zone for key in block.keys for a in parse_server_key(key)]
                config = parse_config(directive, zones)
                # The block's own kinds too (ServiceImports for its multicluster zones).
                source = build_source(directive, config, set(KINDS) | model_kinds(config))
                where = config.manifests and f"manifests {config.manifests}"
                server = getattr(getattr(source, "connection", None), "server", None)
                return source, where or server or "the kubernetes api", config
    except CorefileError as err:
        raise LoadError(str(err)) from None
    except OSError as err:
        raise LoadError(f"{path}: {err}") from None
    raise LoadError(
        f"{path or 'the built-in Corefile'} has no kubernetes block: "
        "give --kubeconfig, --endpoint or --manifests"
    )


def load_from_args(args: argparse.Namespace) -> ClusterState:
    source, where, config = _source_from_args(args)
    domain = (config.primary_zone.rstrip(".") or None) if config is not None else None
    state = load(source, where, cluster_domain=domain)
    state.kubernetes = config
    return state


def load(source: Any, where: str, *, cluster_domain: str | None = None) -> ClusterState:
    """List ``source`` once into a recording model; :class:`LoadError` naming ``where``."""
    return asyncio.run(load_async(source, where, cluster_domain=cluster_domain))


async def load_async(source: Any, where: str, *, cluster_domain: str | None = None) -> ClusterState:
    """:func:`load` inside a running event loop."""
    from clusterdns.sources.manifests import ManifestsSource

    model = _RecordingModel(kinds=set(KINDS) | set(source.kinds))
    if isinstance(source, ManifestsSource):
        source.poll_once(model)  # a broken file is logged and skipped, as the server does
    else:
        try:
            await asyncio.wait_for(source.list_once(model), LIST_TIMEOUT)
        except TimeoutError:
            raise LoadError(
                f"cannot reach the kubernetes api at {where}: no answer in {LIST_TIMEOUT:.0f}s"
            ) from None
        except aiohttp.ClientError as err:
            raise LoadError(f"cannot reach the kubernetes api at {where}: {err}") from None
        except Exception as err:  # ApiError, a bad token file, a failing exec plugin...
            raise LoadError(f"kubernetes api at {where}: {type(err).__name__}: {err}") from None
    return ClusterState(
        model=model,
        source=where,
        cluster_domain=cluster_domain or DEFAULT_CLUSTER_DOMAIN,
        objects=model.objects,
    )


def quiet_logging() -> None:
    """Warnings and errors only: the manifests source's summary lines are not output."""
    from clusterdns.cli import configure_logging

    configure_logging(os.environ.get("CLUSTERDNS_LOG_LEVEL", "warning"))


def write_output(text: str) -> None:
    """Print a command's output; a reader that stops early (``| head``) is no error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again flushing stdout at exit: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
