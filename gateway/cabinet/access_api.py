"""The operators' view of the cabinet's access records (:mod:`gateway.cabinet.access_log`).

Operators (senders with ``operator = true``), HTTP Basic::

    GET /api/v1/admin/access-records?owner=IIN&sender=ID&before=ENTRY&limit=50

Newest first; ``owner`` (an IIN or BIN) and ``sender`` filter; ``next`` in the answer is the ``before`` of the
next page (null at the end). The records hold full IINs: this is for operators only.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.cabinet.context import CABINET
from gateway.errors import GatewayError
from gateway.web.problems import guarded
from gateway.web.reading import operator_sender

_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@guarded
async def list_access_records(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/access-records``: operators only (others get CLIENT_ACCESS_DENIED)."""
    components = request.app[CABINET]
    await operator_sender(request, components.senders)
    query = request.query
    owner, by, before = query.get("owner") or None, query.get("sender") or None, query.get("before") or None
    if owner is not None and not (len(owner) == 12 and owner.isascii() and owner.isdigit()):
        raise GatewayError("CLIENT_OWNER_INVALID", "owner must be an IIN or a BIN (12 digits)")
    if before is not None and not _ENTRY_ID.fullmatch(before):
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "before must be a record id from an earlier page's next")
    try:
        limit = min(200, max(1, int(query.get("limit", "50"))))
    except ValueError:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "limit must be an integer") from None
    records, cursor = await components.access_log.page(owner=owner, sender=by, before=before, limit=limit)
    return web.json_response({"records": [r.to_dict() for r in records], "next": cursor})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/access-records", list_access_records)
