"""etcd v3 as a source: a client over etcd's JSON gateway, and a watched in-memory copy.

See README.md in this folder: :mod:`.client` (``EtcdClient``) and :mod:`.store`
(``EtcdStore``, ``EtcdEntry``).
"""
