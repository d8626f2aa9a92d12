"""Parse the ``kubernetes`` directive and wire the plugin to its cluster source."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import (
    Plugin,
    SetupContext,
    only_once,
    parse_duration,
    parse_int,
    parse_zones,
)
from clusterdns.corefile import Directive
from clusterdns.plugins.kubernetes import metrics
from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
from clusterdns.plugins.kubernetes.handler import Kubernetes, Source
from clusterdns.plugins.kubernetes.selector import LabelSelector, SelectorError
from clusterdns.sources.model import ClusterModel, Kind

log = logging.getLogger("clusterdns.plugins.kubernetes")

UNSUPPORTED = {
    "transfer": "transfer is not supported as a kubernetes option: use the transfer plugin",
}
IGNORED = {"upstream", "resyncperiod"}  # accepted by old CoreDNS Corefiles, no effect


def parse_config(directive: Directive, ctx_zones: Sequence[str]) -> KubernetesConfig:
    """The options of one ``kubernetes`` directive; CorefileError naming file:line on misuse."""
    config = KubernetesConfig(zones=parse_zones(directive, ctx_zones))
    seen: set[str] = set()
    for option in directive.block_items():
        name = option.name
        option.no_block()
        if name in UNSUPPORTED:
            raise option.error(UNSUPPORTED[name])
        if name in seen and name != "fallthrough":
            raise option.error(f"{name} given more than once")
        seen.add(name)
        if name in IGNORED:
            log.warning("kubernetes: %s:%d: %s is ignored", option.file, option.line, name)
            continue
        _parse_option(option, config)
    if config.manifests is not None and (config.endpoint or config.kubeconfig or config.tls):
        raise directive.error("manifests cannot be combined with endpoint, tls or kubeconfig")
    if config.endpoint is not None and config.kubeconfig is not None:
        log.warning("kubernetes: both endpoint and kubeconfig given; kubeconfig wins (as CoreDNS)")
    return config


def _parse_option(option: Directive, config: KubernetesConfig) -> None:
    name = option.name
    if name == "endpoint":
        args = option.expect_args(1)
        if len(args) > 1:
            log.warning("kubernetes: only the first endpoint is used (%s)", args[0])
        if not args[0].startswith(("http://", "https://")):
            raise option.error(f"endpoint must be an http:// or https:// URL, got {args[0]!r}")
        config.endpoint = args[0]
    elif name == "tls":
        cert, key, ca = option.expect_args(3, 3)
        config.tls = (cert, key, ca)
    elif name == "kubeconfig":
        args = option.expect_args(1, 2)
        config.kubeconfig = args[0]
        config.kubeconfig_context = args[1] if len(args) > 1 else None
    elif name == "manifests":
        (config.manifests,) = option.expect_args(1, 1)
    elif name == "service_cidr":
        (text,) = option.expect_args(1, 1)
        for part in text.split(","):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError as err:
                raise option.error(f"invalid CIDR {part!r}: {err}") from None
        config.service_cidr = text
    elif name == "namespaces":
        config.namespaces = frozenset(ns.lower() for ns in option.expect_args(1))
    elif name in ("labels", "namespace_labels"):
        text = " ".join(option.expect_args(1))
        try:
            selector = LabelSelector.parse(text)
        except SelectorError as err:
            raise option.error(str(err)) from None
        if name == "labels":
            config.labels = selector
        else:
            config.namespace_labels = selector
    elif name == "pods":
        (mode,) = option.expect_args(1, 1)
        try:
            config.pods = PodMode(mode.lower())
        except ValueError:
            raise option.error(
                f"invalid pods mode {mode!r} (expected disabled, insecure or verified)"
            ) from None
    elif name == "endpoint_pod_names":
        option.expect_args(0, 0)
        config.endpoint_pod_names = True
    elif name == "ttl":
        (text,) = option.expect_args(1, 1)
        config.ttl = parse_int(option, text, what="ttl", minimum=0, maximum=3600)
    elif name == "noendpoints":
        option.expect_args(0, 0)
        config.noendpoints = True
    elif name == "fallthrough":
        config.fallthrough = Fallthrough.parse(option)
    elif name == "ignore":
        (what,) = option.expect_args(1, 1)
        if what != "empty_service":
            raise option.error(f"unknown ignore {what!r} (expected empty_service)")
        config.ignore_empty_service = True
    elif name == "startup_timeout":
        (text,) = option.expect_args(1, 1)
        config.startup_timeout = parse_duration(option, text)
    elif name == "apiserver_qps":
        (text,) = option.expect_args(1, 1)
        try:
            qps = float(text)
        except ValueError:
            raise option.error(f"apiserver_qps must be a number, got {text!r}") from None
        if qps <= 0:
            raise option.error(f"apiserver_qps must be positive, got {text}")
        config.apiserver_qps = qps
    elif name == "apiserver_burst":
        (text,) = option.expect_args(1, 1)
        config.apiserver_burst = parse_int(option, text, what="apiserver_burst", minimum=1)
    elif name == "apiserver_max_inflight":
        (text,) = option.expect_args(1, 1)
        # 0: no bound (CoreDNS's default).
        config.apiserver_max_inflight = parse_int(option, text, what="apiserver_max_inflight")
    elif name == "multicluster":
        # As CoreDNS: the zones given (invalid ones dropped), none when no argument is.
        config.multicluster_zones = parse_zones(option, ()) if option.args else ()
        for zone in config.multicluster_zones:
            if zone not in config.zones:
                raise option.error(
                    f"is not authoritative for the multicluster zone {zone} "
                    f"(authoritative zones: {' '.join(config.zones)})"
                )
    else:
        raise option.error(f"unknown property '{name}'")


def model_kinds(config: KubernetesConfig) -> set[Kind]:
    kinds = {Kind.SERVICES, Kind.NAMESPACES}
    if not config.noendpoints:
        kinds.add(Kind.ENDPOINTSLICES)
    if config.pods is PodMode.VERIFIED:
        kinds.add(Kind.PODS)
    if config.multicluster_zones:
        kinds.add(Kind.SERVICE_IMPORTS)
        if not config.noendpoints:
            kinds.add(Kind.MULTICLUSTER_SLICES)
    return kinds


def build_source(directive: Directive, config: KubernetesConfig, kinds: set[Kind]) -> Source:
    if config.manifests is not None:
        from clusterdns.sources.manifests import ManifestsSource

        try:
            return ManifestsSource(config.manifests, kinds=kinds, service_cidr=config.service_cidr)
        except ValueError as err:
            raise directive.error(f"service_cidr: {err}") from None
    from clusterdns.sources.kube.kubeconfig import (
        ConfigError,
        from_endpoint,
        from_kubeconfig,
        in_cluster,
    )
    from clusterdns.sources.kube.source import KubeAPISource

    try:
        if config.kubeconfig is not None:
            connection = from_kubeconfig(config.kubeconfig, config.kubeconfig_context)
        elif config.endpoint is not None:
            connection = from_endpoint(config.endpoint, tls=config.tls)
        else:
            connection = in_cluster()
    except (ConfigError, OSError) as err:
        raise directive.error(f"cannot reach the kubernetes api: {err}") from None
    return KubeAPISource(
        connection,
        kinds=kinds,
        label_selector=config.labels.text if config.labels else None,
        namespace_label_selector=config.namespace_labels.text if config.namespace_labels else None,
        qps=config.apiserver_qps,
        burst=config.apiserver_burst,
        max_inflight=config.apiserver_max_inflight,
    )


def own_addresses(ctx: SetupContext) -> tuple[str, ...]:
    """What ns.dns.<zone> answers without a kube-system/kube-dns Service: our own address."""
    found: list[str] = []
    for host in ctx.settings.bind_hosts:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not ip.is_unspecified:
            found.append(str(ip))
    if found:
        return tuple(found)
    try:
        # No packet is sent: connecting a UDP socket only picks the outgoing address.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 53))
            address = sock.getsockname()[0]
        if address and address != "0.0.0.0":
            return (str(address),)
    except OSError:
        pass
    return ("127.0.0.1",)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    config = parse_config(directive, ctx.zones)
    kinds = model_kinds(config)
    source = build_source(directive, config, kinds)
    model = ClusterModel(kinds=kinds, pod_names=config.endpoint_pod_names)
    metrics.register(ctx.process, ctx.process.metrics.registry)
    return Kubernetes(config, model, source, own_addresses=own_addresses(ctx))
