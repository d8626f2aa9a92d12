"""``clusterdns env``: the Service environment variables kubelet injects into a container.

kubelet's rules (pkg/kubelet/kubelet_pods.go getServiceEnvVarMap, pkg/kubelet/envvars):

* Services of the Pod's namespace, and the ``kubernetes`` Service of ``default`` (the
  "master service") always, even with ``enableServiceLinks: false``, which drops the
  others. A Service named ``kubernetes`` in the Pod's own namespace takes its place.
* Only Services with a ClusterIP: headless (``None``) and ExternalName Services get none.
* The name is upper-cased with ``-`` turned into ``_``. Per Service:
  ``{SVC}_SERVICE_HOST`` (the ClusterIP), ``{SVC}_SERVICE_PORT`` (the first port),
  ``{SVC}_SERVICE_PORT_{PORTNAME}`` per named port, then the Docker-link variables:
  ``{SVC}_PORT=tcp://IP:PORT`` for the first port and, per port,
  ``{SVC}_PORT_{PORT}_{PROTO}`` with ``_PROTO``, ``_PORT`` and ``_ADDR``.

kubelet hands them to the runtime from a Go map, so their order inside a container (what
``printenv`` shows) varies; here Services are in name order, each one's variables in the
order kubelet makes them.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable

from clusterdns.sources.records import Service

from .command import add_command, command

__all__ = ["add_parser", "env_name", "service_env", "visible_services"]

MASTER_NAMESPACE = "default"
MASTER_SERVICES = frozenset({"kubernetes"})


def env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def visible_services(
    services: Iterable[Service], namespace: str, *, enable_service_links: bool = True
) -> list[Service]:
    """The Services whose variables a Pod of ``namespace`` gets, by name."""
    chosen: dict[str, Service] = {}
    master: dict[str, Service] = {}
    for svc in services:
        if not svc.cluster_ips:  # IsServiceIPSet: not headless, not ExternalName
            continue
        if svc.namespace == MASTER_NAMESPACE and svc.name in MASTER_SERVICES:
            master[svc.name] = svc
        if svc.namespace == namespace and enable_service_links:
            chosen[svc.name] = svc
    for name, svc in master.items():
        chosen.setdefault(name, svc)
    return [chosen[name] for name in sorted(chosen)]


def service_env(svc: Service) -> list[tuple[str, str]]:
    """One Service's variables, in the order kubelet's envvars.FromServices makes them."""
    prefix = env_name(svc.name)
    ip = svc.cluster_ips[0]
    out = [(f"{prefix}_SERVICE_HOST", ip)]
    if not svc.ports:
        return out
    out.append((f"{prefix}_SERVICE_PORT", str(svc.ports[0].port)))
    out += [(f"{prefix}_SERVICE_PORT_{env_name(p.name)}", str(p.port)) for p in svc.ports if p.name]
    for index, port in enumerate(svc.ports):
        proto = (port.protocol or "TCP").lower()
        url = f"{proto}://{_host_port(ip, port.port)}"
        if index == 0:
            out.append((f"{prefix}_PORT", url))
        base = f"{prefix}_PORT_{port.port}_{proto.upper()}"
        out += [
            (base, url),
            (f"{base}_PROTO", proto),
            (f"{base}_PORT", str(port.port)),
            (f"{base}_ADDR", ip),
        ]
    return out


EXAMPLE = """\
examples:
  clusterdns env --namespace default
  clusterdns env -n default --pod mysql | grep _SERVICE_HOST
  clusterdns env -n shared --no-service-links
"""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cluster import add_connection_options

    parser = add_command(
        sub,
        "env",
        help="the Service environment variables kubelet injects into a Pod",
        description=textwrap.fill(
            "Print the {SVC}_SERVICE_HOST/_PORT and Docker-link variables kubelet "
            "gives the containers of a Pod in NAMESPACE, as NAME=value lines like printenv.",
            78,
        ),
        example=EXAMPLE,
        run=run,
    )
    parser.add_argument("--namespace", "-n", default="default", help="the Pod's namespace")
    parser.add_argument("--pod", help="honour this Pod's enableServiceLinks")
    parser.add_argument(
        "--no-service-links", action="store_true",
        help="as enableServiceLinks: false (only the kubernetes Service's variables)",
    )  # fmt: skip
    add_connection_options(parser)


@command("env")
def run(args: argparse.Namespace) -> int:
    from .cluster import load_from_args, quiet_logging, write_output

    quiet_logging()
    state = load_from_args(args)
    links = not args.no_service_links
    if args.pod is not None:
        pod = state.require_pod(args.namespace, args.pod)
        if pod.spec.enable_service_links is False:
            links = False
    if not state.namespace_exists(args.namespace):
        print(f"clusterdns env: warning: namespace {args.namespace} does not exist in "
              f"{state.source}", file=sys.stderr)  # fmt: skip
    services = visible_services(state.model.services(), args.namespace, enable_service_links=links)
    write_output("".join(f"{n}={v}\n" for svc in services for n, v in service_env(svc)))
    return 0
