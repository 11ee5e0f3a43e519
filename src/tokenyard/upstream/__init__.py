"""Upstream side: connection pools, endpoints, health checks, backend load signals."""
