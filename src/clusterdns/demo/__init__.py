"""The demo cluster served by the built-in Corefile (manifests in cluster/)."""
