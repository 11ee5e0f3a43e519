"""Streaming-first pipelines: events from a log run through transforms and an inference step (the same traffic
core as the gateway) into idempotent sinks, under explicit lifecycle control. See docs/pipelines.md."""
