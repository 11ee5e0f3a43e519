"""The live dashboard served by the gateway at ``/dashboard`` (no CDN: a static page, hand-written JS on canvas).

    from tokenyard.dashboard import add_dashboard_routes
    add_dashboard_routes(app, gateway.metrics.registry)

See docs/dashboard.md for the charts and the JSON feed.
"""

from __future__ import annotations

from tokenyard.dashboard.feed import DashboardFeed, Sample
from tokenyard.dashboard.routes import ASSETS, DASHBOARD_KEY, Dashboard, add_dashboard_routes

__all__ = ["ASSETS", "DASHBOARD_KEY", "Dashboard", "DashboardFeed", "Sample", "add_dashboard_routes"]
