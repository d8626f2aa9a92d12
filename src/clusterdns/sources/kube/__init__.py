"""The Kubernetes API source: connection loading, client, reflector, :class:`KubeAPISource`.

Import from the submodules (``clusterdns.sources.kube.source`` and friends); this package
imports nothing itself, so :mod:`.objects` loads without the client (the model needs it).
"""
