"""Operators see a sender's quotas and current usage: ``GET /api/v1/admin/senders/{senderId}/usage``.

HTTP Basic as a sender with ``operator = true``. The answer lists each service the sender has a quota for
(``*`` stands for every service it may call without its own entry): the limits (``null``: none), this
second's and today's counts, and the seconds until today's count starts again (Kazakhstan time).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from gateway.access.quotas import KAZAKHSTAN
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.web.problems import guarded
from gateway.web.reading import operator_sender


@guarded
async def sender_usage(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    await operator_sender(request, components.senders)
    sender_id = request.match_info["sender_id"]
    sender = components.senders.get(sender_id)
    quotas = components.pipeline.quotas
    if sender is None or quotas is None:
        raise GatewayError("CLIENT_NOT_FOUND", "no sender with this senderId")
    services = [s.service_id for s in components.registry
                if (("*" in sender.services or s.service_id in sender.services) and s.admits(sender_id))
                or s.service_id in sender.quotas]
    usage = await quotas.usage(sender_id, services)
    return web.json_response({
        "senderId": sender_id,
        "day": datetime.fromtimestamp(quotas.clock(), UTC).astimezone(KAZAKHSTAN).date().isoformat(),
        "services": [item.to_dict() for item in usage],
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/senders/{sender_id}/usage", sender_usage)


