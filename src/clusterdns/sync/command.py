"""``clusterdns sync``: its options, and building the syncer from them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable

from clusterdns.sources.etcd.client import EtcdClient, TLSConfig
from clusterdns.sources.model import ClusterModel, Kind

from .election import Election
from .records import domain_prefix
from .syncer import ClusterSource, Syncer

__all__ = ["add_parser", "build_source", "parse_seconds"]

log = logging.getLogger("clusterdns.sync")

# What sync needs from the cluster: Services, and endpoints for headless Services.
KINDS = {Kind.SERVICES, Kind.ENDPOINTSLICES}
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")


def parse_seconds(text: str) -> int:
    """``10s``, ``2m``, ``1h`` or a plain number of seconds (etcd leases are whole seconds)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration in whole seconds: {text!r}")
    value = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    if value < 2:
        raise argparse.ArgumentTypeError("the lease TTL must be at least 2s")
    return value


def add_parser(sub: argparse._SubParsersAction, func: Callable[[argparse.Namespace], int]) -> None:  # type: ignore[type-arg]
    sync = sub.add_parser(
        "sync",
        help="write SkyDNS records for the cluster's Services into etcd (like kube2sky)",
        description="Watch Services and EndpointSlices and keep SkyDNS records for them in "
        "etcd under PATH for DOMAIN, in kube2sky's layout. Several may run: one leader "
        "elected through an etcd lease writes.",
    )
    sync.add_argument("--etcd", nargs="+", default=["http://127.0.0.1:2379"], metavar="URL",
                      help="etcd client URLs (default http://127.0.0.1:2379)")  # fmt: skip
    sync.add_argument("--path", default="/skydns", help="etcd key prefix (default /skydns)")
    sync.add_argument("--domain", default="cluster.local", help="DNS domain (cluster.local)")
    sync.add_argument("--ttl", type=int, default=30, help="TTL in the records (default 30)")
    sync.add_argument("--lease-ttl", type=parse_seconds, default=10, metavar="DURATION",
                      help="leader lease TTL (default 10s)")  # fmt: skip
    sync.add_argument("--election-key", metavar="KEY",
                      help="leader election key (default /clusterdns/sync-leader/<domain>)")  # fmt: skip
    sync.add_argument("--credentials", nargs=2, metavar=("USER", "PASSWORD"),
                      help="etcd basic auth")  # fmt: skip
    sync.add_argument("--tls", nargs="+", metavar="FILE",
                      help="etcd TLS: CACERT, or CERT KEY, or CERT KEY CACERT")  # fmt: skip
    source = sync.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API")
    source.add_argument("--endpoint", metavar="URL", help="Kubernetes API URL (no auth)")
    source.add_argument("--manifests", metavar="DIR", help="a folder of manifests instead")
    sync.add_argument("--context", help="kubeconfig context (with --kubeconfig)")
    sync.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    sync.set_defaults(func=func)


def tls_config(files: list[str] | None) -> TLSConfig | None:
    """Corefile-style ``tls``: ``CACERT``, ``CERT KEY`` or ``CERT KEY CACERT``."""
    if not files:
        return None
    if len(files) == 1:
        return TLSConfig(ca=files[0])
    if len(files) == 2:
        return TLSConfig(cert=files[0], key=files[1])
    if len(files) == 3:
        return TLSConfig(cert=files[0], key=files[1], ca=files[2])
    raise ValueError("--tls takes CACERT, CERT KEY, or CERT KEY CACERT")


def build_source(args: argparse.Namespace) -> ClusterSource:
    """The cluster source, chosen as the kubernetes plugin chooses it."""
    if args.manifests is not None:
        from clusterdns.sources.manifests import ManifestsSource

        return ManifestsSource(args.manifests, kinds=set(KINDS))
    from clusterdns.sources.kube.kubeconfig import from_endpoint, from_kubeconfig, in_cluster
    from clusterdns.sources.kube.source import KubeAPISource

    if args.kubeconfig is not None:
        connection = from_kubeconfig(args.kubeconfig, args.context)
    elif args.endpoint is not None:
        connection = from_endpoint(args.endpoint)
    else:
        connection = in_cluster()
    return KubeAPISource(connection, kinds=set(KINDS), backoff_cap=5.0)


async def run(args: argparse.Namespace) -> int:
    source = build_source(args)
    domain = args.domain.strip(".").lower()
    key = args.election_key or f"/clusterdns/sync-leader/{domain}"
    credentials = tuple(args.credentials) if args.credentials else None
    # Requests must end well inside the lease: a keepalive is due every TTL/3.
    timeout = min(5.0, args.lease_ttl / 3)
    async with EtcdClient(
        args.etcd,
        credentials=credentials,
        tls=tls_config(args.tls),
        timeout=timeout,
    ) as client:
        election = Election(client, key, ttl=args.lease_ttl)
        syncer = Syncer(
            client=client,
            model=ClusterModel(kinds=set(KINDS), pod_names=False),
            source=source,
            election=election,
            path=args.path,
            domain=domain,
            ttl=args.ttl,
        )
        log.info("sync: writing %s for %s to etcd %s (election key %s)",
                 domain_prefix(args.path, domain), domain, " ".join(args.etcd), key)  # fmt: skip
        task = asyncio.create_task(syncer.run())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("sync: stopping")
        finally:
            # Hand over at once instead of after the lease TTL.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(election.resign(), 2.0)
    return 0
