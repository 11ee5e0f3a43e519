"""A GPU-free simulator of a vLLM-class model server, plus simulated retrieval and tool services.

Layers: ``params`` (profiles), ``kvcache`` and ``scheduler`` (the pure timing model, virtual time),
``engine`` (one asyncio loop driving the scheduler on the wall clock), ``server`` (the HTTP face),
``faults`` (injection), ``services`` (retrieval / tool kinds), ``fleet`` and ``cli``.
"""
