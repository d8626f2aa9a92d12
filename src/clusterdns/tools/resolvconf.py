"""``clusterdns resolv-conf``: the /etc/resolv.conf kubelet would give a Pod.

The rules are kubelet's (pkg/kubelet/network/dns/dns.go):

* ``ClusterFirst`` (the default) and ``ClusterFirstWithHostNet``: the cluster DNS servers
  only; search ``<ns>.svc.<domain> svc.<domain> <domain>`` then the host's search domains
  (duplicates dropped); ``options ndots:5`` (the host's options are not kept). A
  ``ClusterFirst`` Pod on the host network falls back to ``Default``, and so does any
  cluster-first Pod when kubelet has no cluster DNS address (with kubelet's warning).
* ``Default``: the host's resolv.conf (kubelet's ``--resolv-conf``); an empty path means
  ``nameserver 127.0.0.1`` and ``search .``.
* ``None``: nothing but the Pod's ``dnsConfig``.
* ``dnsConfig`` is then merged in: nameservers and searches appended (duplicates dropped),
  options merged by name, the Pod's value winning.
* Limits: at most 3 nameservers, 32 search domains, each at most 253 characters, 2048
  characters on the search line; what does not fit is dropped with kubelet's warning.

The file is written as containerd writes it: ``search``, then ``nameserver`` lines, then
``options``. kubelet keeps merged options in a Go map, so their order in a real Pod can
vary; here it is the order they were first seen.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import yaml

from clusterdns.sources.kube import objects as api

from .command import ToolError, add_command, command

__all__ = [
    "POLICIES",
    "DNSConfig",
    "add_parser",
    "merge_options",
    "parse_dns_config",
    "parse_resolv_conf",
    "pod_dns",
    "render",
]

POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
DEFAULT_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LINE_CHARS = 2048
MAX_SEARCH_PATH_CHARS = 253  # a DNS-1123 subdomain
DEFAULT_HOST_RESOLV = "/etc/resolv.conf"


@dataclass
class DNSConfig:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> DNSConfig:
    """kubelet's reading of the host file: nameservers accumulate, the last ``search`` and
    the last ``options`` line win, a trailing dot on a search domain is dropped."""
    config = DNSConfig()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        fields = stripped.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            config.servers.append(fields[1])
        elif fields[0] == "search":
            config.searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            config.options = fields[1:]
    return config


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def merge_options(existing: Sequence[str], pod: Sequence[api.PodDNSConfigOption]) -> list[str]:
    """Options by name; the Pod's entries replace the existing value of the same name."""
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for entry in pod:
        merged[entry.name] = entry.value or ""
    return [f"{name}:{value}" if value else name for name, value in merged.items()]


def _fit_search(searches: list[str], warnings: list[str]) -> list[str]:
    exceeded = False
    if len(searches) > MAX_SEARCH_PATHS:
        searches = searches[:MAX_SEARCH_PATHS]
        exceeded = True
    kept = [s for s in searches if len(s) <= MAX_SEARCH_PATH_CHARS]
    exceeded |= len(kept) != len(searches)
    searches = kept
    length = len(" ".join(searches))
    if length > MAX_SEARCH_LINE_CHARS:
        # Drop domains from the end until the line fits.
        while searches and length > MAX_SEARCH_LINE_CHARS:
            length -= len(searches.pop()) + 1
        exceeded = True
    if exceeded:
        warnings.append(
            "Search Line limits were exceeded, some search paths have been omitted, "
            f"the applied search line is: {' '.join(searches)}"
        )
    return searches


def _fit_servers(servers: list[str], warnings: list[str]) -> list[str]:
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append(
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            f"the applied nameserver line is: {' '.join(servers)}"
        )
    return servers


def pod_dns(
    *,
    namespace: str,
    dns_policy: str = "ClusterFirst",
    host_network: bool = False,
    cluster_dns: Sequence[str] = (),
    cluster_domain: str = "cluster.local",
    host: DNSConfig | None = None,
    dns_config: api.PodDNSConfig | None = None,
) -> tuple[DNSConfig, list[str]]:
    """The Pod's resolver configuration and kubelet's warnings forming it.

    ``host`` is the parsed host resolv.conf, None when kubelet's ``--resolv-conf`` is "".
    """
    if dns_policy not in POLICIES:
        raise ValueError(f"unknown dnsPolicy {dns_policy!r} (one of {', '.join(POLICIES)})")
    warnings: list[str] = []
    base = DNSConfig() if host is None else DNSConfig(
        list(host.servers), list(host.searches), list(host.options)
    )  # fmt: skip
    if dns_policy == "None":
        config = DNSConfig()
    else:
        cluster = dns_policy == "ClusterFirstWithHostNet" or (
            dns_policy == "ClusterFirst" and not host_network
        )
        config = base
        if cluster and cluster_dns:
            config.servers = list(cluster_dns)
            domain = cluster_domain.strip(".")
            if domain:
                own = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
                config.searches = _unique([*own, *config.searches])
            config.options = list(DEFAULT_OPTIONS)
        else:
            if cluster:
                warnings.append(
                    "kubelet does not have ClusterDNS IP configured and cannot create Pod using "
                    '"ClusterFirst" policy. Falling back to "Default" policy.'
                )
            if host is None:
                config.servers = ["127.0.0.1"]
                config.searches = ["."]
    if dns_config is not None:
        config.servers = _unique([*config.servers, *(dns_config.nameservers or ())])
        config.searches = _unique([*config.searches, *(dns_config.searches or ())])
        config.options = merge_options(config.options, dns_config.options or ())
    config.servers = _fit_servers(config.servers, warnings)
    config.searches = _fit_search(config.searches, warnings)
    return config, warnings


def render(config: DNSConfig) -> str:
    """resolv.conf text as containerd writes it for a Pod sandbox."""
    lines = []
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    lines.extend(f"nameserver {server}" for server in config.servers)
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(f"{line}\n" for line in lines)


def parse_dns_config(text: str) -> api.PodDNSConfig:
    """A Pod's ``dnsConfig`` from YAML (or JSON), with or without the ``dnsConfig:`` key."""
    data = yaml.safe_load(text)
    if isinstance(data, dict) and set(data) == {"dnsConfig"}:
        data = data["dnsConfig"]
    if data is None:
        return api.PodDNSConfig()
    if not isinstance(data, dict):
        raise ValueError("dnsConfig must be a mapping of nameservers, searches and options")
    unknown = set(data) - {"nameservers", "searches", "options"}
    if unknown:
        raise ValueError(f"dnsConfig: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        return api.from_builtins(data, api.PodDNSConfig)
    except msgspec.ValidationError as err:
        raise ValueError(f"dnsConfig: {err}") from None


# --- the command ------------------------------------------------------------------------

EXAMPLE = """\
examples:
  clusterdns resolv-conf --namespace default
  clusterdns resolv-conf -n shared --host-resolv /run/systemd/resolve/resolv.conf
  clusterdns resolv-conf -n default --dns-policy None \\
      --dns-config '{nameservers: [1.1.1.1], options: [{name: ndots, value: "2"}]}'
"""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cluster import add_connection_options

    parser = add_command(
        sub,
        "resolv-conf",
        help="the /etc/resolv.conf kubelet would write for a Pod",
        description=textwrap.fill(
            "Print the resolv.conf kubelet would give a Pod of NAMESPACE, with "
            "kubelet's warnings on stderr. The cluster is read for the namespace, the Pod "
            "(--pod), the kube-system/kube-dns ClusterIP and the cluster domain.",
            78,
        ),
        example=EXAMPLE,
        run=run,
    )
    parser.add_argument("--namespace", "-n", default="default", help="the Pod's namespace")
    parser.add_argument(
        "--pod", help="take dnsPolicy, hostNetwork and dnsConfig from this Pod (options win)"
    )
    parser.add_argument("--dns-policy", choices=POLICIES, help="default ClusterFirst")
    parser.add_argument(
        "--host-network", action="store_true", default=None, help="the Pod uses hostNetwork"
    )
    parser.add_argument(
        "--cluster-dns", nargs="+", metavar="IP",
        help="kubelet's --cluster-dns (default: the ClusterIP of kube-system/kube-dns)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster-domain", metavar="ZONE",
        help="kubelet's --cluster-domain (default: the kubernetes plugin's first zone, "
        "else cluster.local)",
    )  # fmt: skip
    parser.add_argument(
        "--host-resolv", metavar="FILE", default=DEFAULT_HOST_RESOLV,
        help='kubelet\'s --resolv-conf (default /etc/resolv.conf; "" for none)',
    )  # fmt: skip
    parser.add_argument(
        "--dns-config", metavar="YAML", help="the Pod's dnsConfig: a file, or inline YAML"
    )
    add_connection_options(parser)


@command("resolv-conf")
def run(args: argparse.Namespace) -> int:
    from .cluster import load_from_args, quiet_logging, write_output

    quiet_logging()
    try:
        dns_config = _read_dns_config(args.dns_config) if args.dns_config else None
        host = _read_host(args.host_resolv)
        state = load_from_args(args)
    except (ValueError, OSError) as err:
        raise ToolError(str(err)) from None
    policy, host_network = args.dns_policy, args.host_network
    if args.pod is not None:
        pod = state.require_pod(args.namespace, args.pod)
        policy = policy or pod.spec.dns_policy
        host_network = pod.spec.host_network if host_network is None else host_network
        dns_config = dns_config or pod.spec.dns_config
    if not state.namespace_exists(args.namespace):
        print(f"clusterdns resolv-conf: warning: namespace {args.namespace} does not exist "
              f"in {state.source}", file=sys.stderr)  # fmt: skip
    cluster_dns = args.cluster_dns
    if cluster_dns is None:
        kube_dns = state.model.service("kube-system", "kube-dns")
        cluster_dns = list(kube_dns.cluster_ips[:1]) if kube_dns is not None else []
    try:
        config, warnings = pod_dns(
            namespace=args.namespace,
            dns_policy=policy or "ClusterFirst",
            host_network=bool(host_network),
            cluster_dns=cluster_dns,
            cluster_domain=args.cluster_domain or state.cluster_domain,
            host=host,
            dns_config=dns_config,
        )
    except ValueError as err:
        raise ToolError(str(err)) from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_output(render(config))
    return 0


def _read_dns_config(value: str) -> api.PodDNSConfig:
    text = value
    if os.path.exists(value):
        with open(value, encoding="utf-8") as f:
            text = f.read()
    return parse_dns_config(text)


def _read_host(path: str) -> DNSConfig | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return parse_resolv_conf(f.read())
