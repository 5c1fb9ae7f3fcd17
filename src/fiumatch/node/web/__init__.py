"""fiumatch.node.web: the web interface a node serves to its analysts, supervisors, auditors and
admins (``/ui``).

A shell over :class:`~fiumatch.node.service.NodeService`: server-rendered templates, a session
cookie, CSRF tokens and a strict content security policy; no build step and nothing loaded from
outside the node. ``install(app, service)`` mounts it. It decides nothing the service decides,
and never logs a token, a form or an identifier.
"""

from __future__ import annotations

from fiumatch.node.web.routes_web import install

__all__ = ["install"]
