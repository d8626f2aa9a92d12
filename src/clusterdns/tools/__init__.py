"""The service-discovery toolbox behind the ``clusterdns`` subcommands: what kubelet,
kube-proxy and the server itself make of the cluster.

Each command is one module exposing ``add_parser(sub)``; :mod:`.cluster` loads the cluster
state they share, with the kubernetes plugin's sources and options, and :mod:`.command`
gives them one parser shape and one error exit.
"""
