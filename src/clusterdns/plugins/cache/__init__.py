"""cache: positive and negative caching of replies as patched wire bytes."""

from clusterdns.plugins.cache.entry import CachedAnswer, Kind, ParsedReply
from clusterdns.plugins.cache.handler import Cache, CacheConfig
from clusterdns.plugins.cache.setup import setup

__all__ = ["Cache", "CacheConfig", "CachedAnswer", "Kind", "ParsedReply", "setup"]
