"""``clusterdns vservers``: the IPVS table kube-proxy (``--proxy-mode ipvs``) would program.

kube-proxy's rules (pkg/proxy/ipvs/proxier.go), per Service port and IP family:

* a virtual server on each ClusterIP, each ``spec.externalIPs`` address, each
  ``status.loadBalancer.ingress`` IP, and, when the port has a ``nodePort``, on each node
  address (``--node-ip``; kube-proxy uses the node's own addresses);
* scheduler ``--scheduler`` (kube-proxy's default ``rr``); ``sessionAffinity: ClientIP``
  makes it persistent for ``sessionAffinityConfig.clientIP.timeoutSeconds`` (10800);
* real servers: the ready endpoints of that family, on the endpoint port of the same name
  and protocol as the Service port (so a named targetPort is already resolved), Masq
  forwarding, weight 1;
* headless and ExternalName Services get none.

Not modelled: ``externalTrafficPolicy``/``internalTrafficPolicy: Local`` (they narrow the
real servers to the node's own endpoints) and terminating endpoints used when none is ready.

The table prints like ``ipvsadm -Ln`` (sorted as ipvsadm sorts it, counters at 0) or like
``ipvsadm -Sn``, which ``ipvsadm-restore`` loads.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field

from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import ClusterModel
from clusterdns.sources.records import Service

from .command import ToolError, add_command, command

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "RealServer",
    "VirtualServer",
    "add_parser",
    "format_ipvsadm",
    "format_restore",
    "sort_table",
    "virtual_servers",
]

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: the API's default for ClientIP affinity
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")
_PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
_RESTORE_FLAGS = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}
HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


@dataclass(frozen=True)
class RealServer:
    address: str
    port: int


@dataclass
class VirtualServer:
    protocol: str  # TCP, UDP or SCTP
    address: str
    port: int
    scheduler: str = "rr"
    persistent: int | None = None  # timeout in seconds
    real_servers: list[RealServer] = field(default_factory=list)
    service: str = ""  # namespace/name, for --service and messages

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def virtual_servers(
    model: ClusterModel,
    objects: dict[tuple[str, str], api.Service],
    *,
    scheduler: str = "rr",
    node_ips: Iterable[str] = (),
    only: tuple[str, str] | None = None,
    notes: list[str] | None = None,
) -> list[VirtualServer]:
    """The virtual servers of every Service (or of ``only``), unsorted."""
    node_ips = list(node_ips)
    notes = notes if notes is not None else []
    out: list[VirtualServer] = []
    for svc in model.services():
        if only is not None and (svc.namespace, svc.name) != only:
            continue
        if not svc.cluster_ips:
            continue  # headless or ExternalName: kube-proxy leaves it alone
        obj = objects.get((svc.namespace, svc.name))
        out += _service_servers(model, svc, obj, scheduler, node_ips, notes)
    return out


def _service_servers(
    model: ClusterModel,
    svc: Service,
    obj: api.Service | None,
    scheduler: str,
    node_ips: list[str],
    notes: list[str],
) -> list[VirtualServer]:
    spec = obj.spec if obj is not None else api.ServiceSpec()
    persistent = None
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config
        timeout = config.client_ip.timeout_seconds if config and config.client_ip else None
        persistent = timeout or DEFAULT_AFFINITY_TIMEOUT
    external = [ip for ip in spec.external_ips or () if _valid(ip)]
    ingress = obj.status.load_balancer.ingress if obj and obj.status and obj.status.load_balancer else None  # fmt: skip
    balancers = [i.ip for i in ingress or () if i.ip and _valid(i.ip)]
    node_ports = {(p.port, (p.protocol or "TCP").upper()): p.node_port for p in spec.ports or ()}
    endpoints = [e for e in model.endpoints(svc.namespace, svc.name) if e.ready]
    key = f"{svc.namespace}/{svc.name}"
    out: list[VirtualServer] = []
    for port in svc.ports:
        protocol = port.protocol.upper()
        reals: dict[int, list[RealServer]] = {4: [], 6: []}
        for ep in endpoints:
            target = next(
                (p.port for p in ep.ports if p.name == port.name and p.protocol == protocol),
                None,
            )
            if target is None:
                continue
            for address in ep.addresses:
                reals[_family(address)].append(RealServer(address, target))
        addresses = [(ip, port.port) for ip in (*svc.cluster_ips, *external, *balancers)]
        node_port = node_ports.get((port.port, protocol), 0)
        if node_port:
            addresses += [(ip, node_port) for ip in node_ips]
        elif svc.type in ("NodePort", "LoadBalancer") and node_ips:
            notes.append(
                f"{key} port {port.port}/{protocol} has no nodePort set (the API server "
                "allocates one from 30000-32767): no node virtual servers"
            )
        families = {_family(ip) for ip in svc.cluster_ips}
        for ip, number in addresses:
            if _family(ip) not in families:
                continue  # kube-proxy of that family does not handle this Service
            out.append(
                VirtualServer(
                    protocol=protocol,
                    address=ip,
                    port=number,
                    scheduler=scheduler,
                    persistent=persistent,
                    real_servers=list(dict.fromkeys(reals[_family(ip)])),
                    service=key,
                )
            )
    return out


def _valid(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


# --- ordering and printing, as ipvsadm does it ------------------------------------------


def _wrapped(difference: int) -> int:
    """A C ``int`` holding the difference of two ``uint32``: ipvsadm compares addresses
    this way, so 10.x sorts after 192.168.x (0x0A.. - 0xC0.. wraps to a positive int)."""
    difference &= 0xFFFFFFFF
    return difference - (1 << 32) if difference & 0x80000000 else difference


def _words(address: str) -> list[int]:
    packed = ipaddress.ip_address(address).packed
    return [int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4)]


def _compare_addresses(a: str, b: str) -> int:
    for x, y in zip(_words(a), _words(b), strict=True):
        r = _wrapped(x - y)
        if r:
            return r
    return 0


def _compare_servers(a: VirtualServer, b: VirtualServer) -> int:
    # ipvs_cmp_services: fwmark (0 here), address family, protocol number, address, port.
    r = (2 if a.version == 4 else 10) - (2 if b.version == 4 else 10)
    r = r or _PROTOCOL_NUMBERS[a.protocol] - _PROTOCOL_NUMBERS[b.protocol]
    return r or _compare_addresses(a.address, b.address) or a.port - b.port


def _compare_reals(a: RealServer, b: RealServer) -> int:
    return _compare_addresses(a.address, b.address) or a.port - b.port


def sort_table(servers: Iterable[VirtualServer]) -> list[VirtualServer]:
    """Virtual servers and their real servers in ``ipvsadm -L`` order."""
    out = sorted(servers, key=functools.cmp_to_key(_compare_servers))
    for vs in out:
        vs.real_servers.sort(key=functools.cmp_to_key(_compare_reals))
    return out


def _addrport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def format_ipvsadm(servers: Iterable[VirtualServer]) -> str:
    """``ipvsadm -Ln``: printf widths kept, trailing blanks included."""
    lines = [HEADER]
    for vs in servers:
        name = f"{vs.protocol}  {_addrport(vs.address, vs.port)}"
        if vs.version == 4:
            name = name[:33]
        line = f"{name} {vs.scheduler}"
        if vs.persistent is not None:
            line += f" persistent {vs.persistent}"
        lines.append(line + "\n")
        for real in vs.real_servers:
            dest = _addrport(real.address, real.port)
            if vs.version == 4:
                dest = dest[:28]
            lines.append(f"  -> {dest:<28} {'Masq':<7} {1:<6} {0:<10} {0:<10}\n")
    return "".join(lines)


def format_restore(servers: Iterable[VirtualServer]) -> str:
    """``ipvsadm -Sn``, the input of ``ipvsadm-restore``."""
    lines = []
    for vs in servers:
        name = f"{_RESTORE_FLAGS[vs.protocol]} {_addrport(vs.address, vs.port)}"
        line = f"-A {name} -s {vs.scheduler}"
        if vs.persistent is not None:
            line += f" -p {vs.persistent}"
        lines.append(line + "\n")
        for real in vs.real_servers:
            lines.append(f"-a {name} -r {_addrport(real.address, real.port)} -m -w 1\n")
    return "".join(lines)


# --- the command ------------------------------------------------------------------------

EXAMPLE = """\
examples:
  clusterdns vservers
  clusterdns vservers --service kube-system/kube-dns
  clusterdns vservers --node-ip 192.168.49.2 --format ipvsadm-restore | ipvsadm-restore
"""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cluster import add_connection_options

    parser = add_command(
        sub,
        "vservers",
        help="the IPVS virtual servers kube-proxy in IPVS mode would program",
        description=textwrap.fill(
            "Print the IPVS table kube-proxy (--proxy-mode ipvs) would program for "
            "the cluster's Services, like ipvsadm -Ln, or as ipvsadm-restore input.",
            78,
        ),
        example=EXAMPLE,
        run=run,
    )
    parser.add_argument("--service", metavar="NS/NAME", help="only this Service")
    parser.add_argument(
        "--scheduler", "-s", default="rr", choices=SCHEDULERS,
        help="kube-proxy's --ipvs-scheduler (default rr)",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=("ipvsadm", "ipvsadm-restore"), default="ipvsadm",
        help="ipvsadm -Ln (default) or ipvsadm -Sn / ipvsadm-restore input",
    )  # fmt: skip
    parser.add_argument(
        "--node-ip", nargs="+", default=[], metavar="IP",
        help="the node's addresses, where NodePort virtual servers go (default: none)",
    )  # fmt: skip
    add_connection_options(parser)


@command("vservers")
def run(args: argparse.Namespace) -> int:
    from .cluster import load_from_args, quiet_logging, write_output

    quiet_logging()
    only = None
    if args.service is not None:
        namespace, slash, name = args.service.partition("/")
        if not slash or not namespace or not name:
            print("clusterdns vservers: --service wants NAMESPACE/NAME", file=sys.stderr)
            return 2
        only = (namespace, name)
    for ip in args.node_ip:
        if not _valid(ip):
            print(f"clusterdns vservers: --node-ip {ip}: not an IP address", file=sys.stderr)
            return 2
    state = load_from_args(args)
    if only is not None and state.model.service(*only) is None:
        raise ToolError(f"no service {args.service} in {state.source}")
    from clusterdns.sources.model import Kind

    notes: list[str] = []
    table = sort_table(
        virtual_servers(
            state.model,
            state.objects.get(Kind.SERVICES, {}),
            scheduler=args.scheduler,
            node_ips=[str(ipaddress.ip_address(ip)) for ip in args.node_ip],
            only=only,
            notes=notes,
        )
    )
    if not args.node_ip and any(s.type in ("NodePort", "LoadBalancer") for s in _services(state.model, only)):  # fmt: skip
        notes.append("NodePort Services have virtual servers on each node address too: "
                     "give --node-ip to see them")  # fmt: skip
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    write_output(format_ipvsadm(table) if args.format == "ipvsadm" else format_restore(table))
    return 0


def _services(model: ClusterModel, only: tuple[str, str] | None) -> list[Service]:
    return [s for s in model.services() if only is None or (s.namespace, s.name) == only]
