"""Telemetry: every metric in one module (``metrics``), the JSON access log, optional OpenTelemetry tracing."""
