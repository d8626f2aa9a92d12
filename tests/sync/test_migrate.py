"""scripts/etcd-v2-to-v3: the seeds' etcd v2 SkyDNS keys, copied into v3."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers.etcd import EtcdCluster, require_etcd

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "etcd-v2-to-v3"
SEED = {
    "/skydns/local/kube/svc/default/mysql-service/2f1020d6": (
        '{"host":"10.254.162.44","priority":10,"weight":10,"ttl":30,"targetstrip":0}'
    ),
    "/skydns/local/kube/default/mysql-service": (
        '{"host":"10.254.162.44","priority":10,"weight":10,"ttl":30,"targetstrip":0}'
    ),
    "/skydns/local/kube/svc/default/odd/-starts-with-dash": "-x y",
}


def test_v2_keys_copied_to_v3() -> None:
    require_etcd()
    with EtcdCluster(size=1, extra_args=("--enable-v2",)) as cluster:
        for key, value in SEED.items():
            cluster.etcdctl("set", "--", key, value, api=2)
        cluster.etcdctl("set", "/elsewhere/x", "1", api=2)
        assert cluster.etcdctl("get", "--prefix", "/skydns") == ""  # v2 keys: not in v3
        endpoint = cluster.endpoints[0]
        done = subprocess.run(
            [str(SCRIPT), endpoint, endpoint, "/skydns"], capture_output=True, timeout=30
        )
        assert done.returncode == 0, done.stderr.decode()
        assert sorted(done.stdout.decode().split()) == sorted(SEED)
        lines = cluster.etcdctl("get", "--prefix", "/").splitlines()
        assert dict(zip(lines[::2], lines[1::2], strict=True)) == SEED
