"""``clusterdns records``: what the kubernetes plugin would answer, name by name.

Offline, the cluster is read as every toolbox command reads it (tools/cluster.py: the
plugin's connection options, else the ``kubernetes`` block of a Corefile, else the Pod's
service account, else the built-in demo Corefile), and the plugin's own answer table is
built from it with that block's zones and options (without a block, the standard
Corefile's), so every record printed is what the plugin's decision gives for that name.
With ``--server HTTP_ADDR`` a running server's ``introspect`` endpoint is asked instead,
which also lists hosts entries and sees the server's real configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .command import ToolError, add_command, command

EXAMPLE = """\
examples:
  clusterdns records default.svc.cluster.local
  clusterdns records --manifests src/clusterdns/demo/cluster default.svc.cluster.local
  clusterdns records --kubeconfig ~/.kube/config --context kind-kind kube-system.svc.cluster.local
  clusterdns records --server 127.0.0.1:8182 mysql-service.default.svc.cluster.local
"""
# Without a Corefile's kubernetes block, the standard Corefile's: ``kubernetes cluster.local
# in-addr.arpa ip6.arpa { pods insecure  ttl 30 }``.
DEFAULT_ZONES = ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")


def add_parser(sub: Any) -> None:
    from .cluster import add_connection_options

    parser = add_command(
        sub, "records",
        help="list the names the kubernetes plugin answers, with their records",
        description=__doc__ or "", example=EXAMPLE, run=run,
    )  # fmt: skip
    parser.add_argument(
        "select", nargs="?", metavar="ZONE|NAME",
        help="only this name and the names below it (e.g. default.svc.cluster.local)",
    )  # fmt: skip
    add_connection_options(parser)
    parser.add_argument(
        "--server", metavar="HTTP_ADDR",
        help="ask a running server's introspect endpoint (e.g. 127.0.0.1:8182) instead",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")


@command("records")
def run(args: argparse.Namespace) -> int:
    from .cluster import quiet_logging

    select = _absolute(args.select) if args.select else None
    if args.server:
        groups = fetch_records(args.server, select)
    else:
        quiet_logging()
        groups = offline_records(args, select)
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


def offline_records(args: argparse.Namespace, select: str | None) -> list[dict[str, Any]]:
    """The kubernetes plugin's answer table over the cluster :mod:`.cluster` loads."""
    from clusterdns.plugins.kubernetes.answers import AnswerTable
    from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
    from clusterdns.plugins.kubernetes.listing import list_names

    from .cluster import load_from_args

    state = load_from_args(args)
    config = state.kubernetes or KubernetesConfig(
        zones=DEFAULT_ZONES, pods=PodMode.INSECURE, ttl=30
    )
    table = AnswerTable(config, state.model, own_addresses=("127.0.0.1",))
    table.deferring = False
    table.rebuild()
    rows = list_names(table, select)
    return [
        {
            "plugin": "kubernetes",
            "zones": list(config.zones),
            "source": state.source,
            "names": [row.to_json() for row in rows],
        }
    ]
