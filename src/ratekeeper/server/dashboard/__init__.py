"""The dashboard: ``/dashboard`` of the service, behind the admin token (docs/dashboard.md).

A web page an operator leaves open: requests per second allowed and
refused (refreshed every few seconds), the keys that use most and are
refused most, active blocks with an "unblock" button, the store's health;
a page per key (each limit's remaining now, use over time against the
limit, recent refusals; revoke or change plan, with a confirmation); the
audit log with filters. Server-rendered HTML and SVG: no JavaScript library,
nothing loaded from elsewhere, one small script of ours that refreshes the
overview's chart.

Modules, each with one job:

``_session``  the session cookie and CSRF tokens: HMACs of the admin token
``_app``      the gate (files, credentials, origin, CSRF) and the routes
``_views``    each page's data read, each change made and audited
``_pages``    the pages as HTML, ``_charts`` the charts as SVG, ``_html`` escaping
``_data``     what the dashboard reads of the service and its usage analytics
``static/``   favicon, stylesheet, the refresh script
"""

from __future__ import annotations

from starlette.routing import Route

from ._app import DashboardApp
from ._data import Analytics, DashboardService, ServiceAnalytics

__all__ = ["Analytics", "DashboardApp", "DashboardService", "ServiceAnalytics", "dashboard_route"]


def dashboard_route(service: DashboardService) -> Route:
    """``/dashboard`` and everything under it, for the service's app.

    One route for the bare ``/dashboard`` and its pages (a mount would
    redirect ``/dashboard`` to ``/dashboard/``: the login form answers at
    ``/dashboard`` itself). It lists no methods: it is no API of
    ``/openapi.json``.
    """
    return Route("/dashboard{rest:path}", DashboardApp(service))
