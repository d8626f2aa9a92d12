"""The service-discovery toolbox: what kubelet and kube-proxy would make of the cluster.

Each command is one module exposing ``add_parser(sub)``; :mod:`.cluster` loads the cluster
state they share, with the kubernetes plugin's sources and options.
"""
