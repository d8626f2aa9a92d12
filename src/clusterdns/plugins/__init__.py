"""One package per Corefile directive; the order they run in lives in clusterdns.core.registry."""
