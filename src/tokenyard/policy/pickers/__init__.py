"""Endpoint pickers (filter -> score -> pick, scores in [0, 1]), one module per picker.

Build pickers through :func:`tokenyard.policy.pickers.registry.build_picker_registry` /
:func:`tokenyard.policy.pickers.registry.create_picker`; nothing is registered at import time.
"""
