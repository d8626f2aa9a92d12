"""``clusterdns records``: what the kubernetes plugin would answer, name by name.

Offline, the cluster is read from the same sources and with the same options as the
plugin (``--manifests DIR``, ``--kubeconfig FILE [--context C]``, ``--endpoint URL``, or
the ``kubernetes`` block of ``--conf Corefile``) into the same model and answer table, so
every record printed is what the plugin's decision gives for that name. With
``--server HTTP_ADDR`` a running server's ``introspect`` endpoint is asked instead, which
also lists hosts entries and sees the server's real configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

EXAMPLE = """\
examples:
  clusterdns records --manifests src/clusterdns/demo/cluster default.svc.cluster.local
  clusterdns records --kubeconfig ~/.kube/config --context kind-kind kube-system.svc.cluster.local
  clusterdns records --server 127.0.0.1:8182 mysql-service.default.svc.cluster.local
"""
DEFAULT_ZONES = ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")
SYNC_TIMEOUT = 10.0


class ToolError(Exception):
    """A failure to report in one line (exit status 1), e.g. a cluster that can't be reached."""


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The connection options of the kubernetes plugin, for commands that read the cluster."""
    group = parser.add_argument_group("cluster (as the kubernetes plugin's options)")
    group.add_argument("--manifests", metavar="DIR", help="a folder of manifests (the demo: "
                       "src/clusterdns/demo/cluster)")  # fmt: skip
    group.add_argument("--kubeconfig", metavar="FILE", help="a kubeconfig file")
    group.add_argument("--context", help="the kubeconfig context (default: its current one)")
    group.add_argument("--endpoint", metavar="URL", help="the API server's URL (no auth)")
    group.add_argument(
        "--conf", metavar="COREFILE",
        help="take the zones, options and source from this Corefile's kubernetes block",
    )  # fmt: skip
    group.add_argument(
        "--sync-timeout", type=float, default=SYNC_TIMEOUT, metavar="SECONDS",
        help=f"how long to wait for the cluster's lists (default {SYNC_TIMEOUT:g})",
    )  # fmt: skip


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "records",
        help="list the names the kubernetes plugin answers, with their records",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "select", nargs="?", metavar="ZONE|NAME",
        help="only this name and the names below it (e.g. default.svc.cluster.local)",
    )  # fmt: skip
    add_cluster_options(parser)
    parser.add_argument(
        "--server", metavar="HTTP_ADDR",
        help="ask a running server's introspect endpoint (e.g. 127.0.0.1:8182) instead",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        select = _absolute(args.select) if args.select else None
        if args.server:
            groups = fetch_records(args.server, select)
        else:
            groups = asyncio.run(offline_records(args, select))
    except ToolError as err:
        print(f"clusterdns records: {err}", file=sys.stderr)
        return 1
    try:
        return _print(args, select, groups)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        sys.stderr.close()
        return 0


def _print(args: argparse.Namespace, select: str | None, groups: list[dict[str, Any]]) -> int:
    if args.json:
        print(json.dumps({"select": select, "plugins": groups}, indent=2))
        return 0
    count = 0
    for group in groups:
        print(f"; {group['plugin']} ({' '.join(group['zones'])}) via {group['source']}")
        for row in group["names"]:
            count += 1
            print(f"; {row['rule']}: {row['detail']}")
            for line in row["records"]:
                print(line)
        print()
    if not count:
        where = f" at or below {select}" if select else ""
        print(f"clusterdns records: no names{where}", file=sys.stderr)
    return 0


def _absolute(text: str) -> str:
    text = text.strip().lower()
    return text if text.endswith(".") else text + "."


def fetch_records(server: str, select: str | None) -> list[dict[str, Any]]:
    """Ask a running server's ``introspect`` endpoint (``/records``)."""
    url = f"http://{server}/records"
    if select is not None:
        url += "?" + urllib.parse.urlencode({"name": select})
    data = get_json(url)
    groups = []
    for group in data.get("plugins", []):
        group["source"] = f"{group.get('server', '')} at {server}"
        groups.append(group)
    return groups


def get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET ``url`` as JSON; ToolError naming the URL when it can't be had."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace").strip()
        raise ToolError(f"{url}: HTTP {err.code}: {body}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ToolError(
            f"cannot reach the introspect endpoint at {url}: {reason} (is the introspect "
            "plugin in the server's Corefile?)"
        ) from None
    except ValueError as err:
        raise ToolError(f"{url}: not JSON: {err}") from None


async def offline_records(args: argparse.Namespace, select: str | None) -> list[dict[str, Any]]:
    from clusterdns.plugins.kubernetes.listing import list_names

    table, source = await load_table(args)
    rows = list_names(table, select)
    return [
        {
            "plugin": "kubernetes",
            "zones": list(table.config.zones),
            "source": source,
            "names": [row.to_json() for row in rows],
        }
    ]


# --- the cluster, as the kubernetes plugin reads it -------------------------------------------


def kubernetes_config(args: argparse.Namespace) -> Any:
    """The KubernetesConfig: from ``--conf``'s kubernetes block, else the standard Corefile's
    (cluster.local and the reverse zones, pods insecure, ttl 30); the connection flags win."""
    from clusterdns.corefile import CorefileError, load
    from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
    from clusterdns.plugins.kubernetes.setup import parse_config

    config: KubernetesConfig | None = None
    if getattr(args, "conf", None):
        try:
            corefile = load(args.conf)
        except CorefileError as err:
            raise ToolError(str(err)) from None
        except OSError as err:
            raise ToolError(f"{args.conf}: {err}") from None
        for block in corefile.blocks:
            for directive in block.directives:
                if directive.name == "kubernetes":
                    zones = tuple(a.zone for a in block.addresses)
                    try:
                        config = parse_config(directive, zones)
                    except CorefileError as err:
                        raise ToolError(str(err)) from None
                    break
            if config is not None:
                break
        if config is None:
            raise ToolError(f"{args.conf}: no kubernetes block")
    if config is None:
        config = KubernetesConfig(zones=DEFAULT_ZONES, pods=PodMode.INSECURE, ttl=30)
    if args.manifests or args.kubeconfig or args.endpoint:
        config.manifests = args.manifests
        config.kubeconfig = args.kubeconfig
        config.kubeconfig_context = args.context
        config.endpoint = args.endpoint
        config.tls = None
    elif args.context:
        config.kubeconfig_context = args.context
    return config


def describe_source(config: Any) -> str:
    if config.manifests is not None:
        return f"manifests {config.manifests}"
    if config.kubeconfig is not None:
        context = f" context {config.kubeconfig_context}" if config.kubeconfig_context else ""
        return f"kubeconfig {config.kubeconfig}{context}"
    if config.endpoint is not None:
        return f"endpoint {config.endpoint}"
    return "in-cluster service account"


async def load_table(args: argparse.Namespace) -> tuple[Any, str]:
    """The answer table the kubernetes plugin would build, synced, and where it came from.

    With no source option and no ``--conf``: $KUBECONFIG or ~/.kube/config when it exists,
    else the Pod's service account when in a cluster, else a ToolError saying so."""
    from clusterdns.plugins.kubernetes.answers import AnswerTable
    from clusterdns.plugins.kubernetes.setup import model_kinds
    from clusterdns.sources.model import ClusterModel

    config = kubernetes_config(args)
    if config.manifests is None and config.kubeconfig is None and config.endpoint is None:
        default = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
        if Path(default).expanduser().is_file():
            config.kubeconfig = default
        elif not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ToolError(
                "no cluster given: use --manifests DIR, --kubeconfig FILE, --endpoint URL or "
                "--conf Corefile (no ~/.kube/config and not running in a cluster)"
            )
    kinds = model_kinds(config)
    model = ClusterModel(kinds=kinds, pod_names=config.endpoint_pod_names)
    source_text = describe_source(config)
    if config.manifests is not None:
        from clusterdns.sources.manifests import ManifestsSource

        if not Path(config.manifests).is_dir():
            raise ToolError(f"manifests {config.manifests}: not a directory")
        ManifestsSource(config.manifests, kinds=kinds, service_cidr=config.service_cidr).poll_once(
            model
        )
    else:
        await _sync_from_api(config, kinds, model, args.sync_timeout, source_text)
    table = AnswerTable(config, model, own_addresses=("127.0.0.1",))
    table.deferring = False
    table.rebuild()
    return table, source_text


async def _sync_from_api(
    config: Any, kinds: Any, model: Any, timeout: float, source_text: str
) -> None:
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
        raise ToolError(f"cannot reach the kubernetes api ({source_text}): {err}") from None
    source = KubeAPISource(
        connection,
        kinds=kinds,
        label_selector=config.labels.text if config.labels else None,
        namespace_label_selector=config.namespace_labels.text if config.namespace_labels else None,
    )
    task = asyncio.ensure_future(source.run(model))
    try:
        synced = await model.wait_synced(timeout)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    if not synced:
        last = getattr(source, "last_error", None)
        detail = f": {last}" if last else ""
        raise ToolError(
            f"cannot reach the kubernetes api at {connection.server} ({source_text}) within "
            f"{timeout:g}s{detail}"
        )
