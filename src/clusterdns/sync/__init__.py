"""``clusterdns sync``: kube2sky. Mirror the cluster's Services into SkyDNS records in etcd.

May import :mod:`clusterdns.sources`; never ``core``, ``wire`` or ``plugins``.
"""
