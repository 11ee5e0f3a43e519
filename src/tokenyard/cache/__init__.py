"""Response caching and request sharing: exact and semantic caches, singleflight coalescing, embedding batching.

The gateway's ``cache`` stage (``gateway/stages/cache.py``) wires these together; docs/caching.md.
"""
