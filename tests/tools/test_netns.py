"""The articles' busybox pod, in a network and mount namespace: glibc's resolver reads the
resolv.conf ``clusterdns resolv-conf`` generates and resolves short names through clusterdns
serving the demo cluster on 10.96.0.10:53."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import DEMO, outside_a_pod

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "ip", "getent")),
    reason="needs root, unshare, ip and getent (a network and mount namespace)",
)

SCRIPT = """\
set -eu
ip link set lo up
ip addr add 10.96.0.10/32 dev lo
"$PY" -m clusterdns.cli resolv-conf -n default --host-resolv "" --manifests "$DEMO" \
    > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf
"$PY" -m clusterdns.cli serve --conf "$WORK/Corefile" > "$WORK/serve.log" 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 100); do
    "$PY" -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8181/ready")' \\
        2>/dev/null && break
    sleep 0.1
done
cat /etc/resolv.conf
for name in mysql-service mysql-service.default queue.shared kube-dns.kube-system nope; do
    echo "== $name"
    if found=$(getent ahostsv4 "$name"); then
        echo "$found" | head -1 | awk '{print $1, $3}'
    else
        echo "not found"
    fi
done
"""

COREFILE = """\
.:53 {{
    bind 10.96.0.10
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {demo}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
}}
"""


def test_glibc_resolves_short_names_with_the_generated_resolv_conf(tmp_path: Path) -> None:
    (tmp_path / "Corefile").write_text(COREFILE.format(demo=DEMO))
    env = {**outside_a_pod(), "PY": sys.executable, "WORK": str(tmp_path), "DEMO": str(DEMO)}
    out = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", SCRIPT],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert out.returncode == 0, out.stderr + log
    assert out.stdout == textwrap.dedent(
        """\
        search default.svc.cluster.local svc.cluster.local cluster.local
        nameserver 10.96.0.10
        options ndots:5
        == mysql-service
        10.96.162.44 mysql-service.default.svc.cluster.local
        == mysql-service.default
        10.96.162.44 mysql-service.default.svc.cluster.local
        == queue.shared
        10.103.75.49 queue.shared.svc.cluster.local
        == kube-dns.kube-system
        10.96.0.10 kube-dns.kube-system.svc.cluster.local
        == nope
        not found
        """
    ), log
