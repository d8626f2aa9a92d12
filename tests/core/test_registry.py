"""The plugin order is CoreDNS 1.14.7's plugin.cfg, and `clusterdns plugins` prints it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clusterdns.core import registry
from clusterdns.corefile import CorefileError
from tests.helpers.server import running_server

# The directive names of CoreDNS v1.14.7's plugin.cfg, top to bottom (its "prometheus:metrics"
# line is the prometheus directive).
_PLUGIN_CFG_TEXT = """
root metadata geoip cancel proxyproto quic grpc_server https https3 timeouts multisocket
reload nsid bufsize bind debug trace ready health pprof shed prometheus errors log dnstap
local dns64 any chaos loadbalance tsig rewrite autopath acl cache header dnssec tls minimal
template transfer hosts route53 azure clouddns k8s_external kubernetes file auto secondary
etcd loop forward grpc erratic whoami on sign view nomad
"""
PLUGIN_CFG_1_14_7 = _PLUGIN_CFG_TEXT.split()


def test_order_is_coredns_1_14_7() -> None:
    coredns_names = [n for n in registry.COREDNS_ORDER if n not in registry.OWN_PLUGINS]
    assert coredns_names == PLUGIN_CFG_1_14_7


def test_rewrite_and_autopath_run_before_cache() -> None:
    order = registry.order_of
    assert order("rewrite") < order("autopath") < order("acl") < order("cache")


def test_plugins_command_prints_the_order() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clusterdns.cli", "plugins"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = out.stdout.split()
    ours = [n for n in names if n not in registry.OWN_PLUGINS]
    assert ours == [n for n in PLUGIN_CFG_1_14_7 if n in names]
    assert names.index("rewrite") < names.index("autopath") < names.index("cache")


@pytest.mark.parametrize("name", ["shed", "quic", "grpc_server", "https", "multisocket", "nomad"])
async def test_newer_coredns_plugins_are_named_as_such(name: str) -> None:
    with pytest.raises(CorefileError) as info:
        async with running_server(f".:0 {{\n    {name}\n    whoami\n}}\n"):
            pass
    assert info.value.line == 2
    assert f"unknown directive '{name}': a CoreDNS plugin" in str(info.value)
