"""Who the tester is: the login step (choose a test person) and the signed session cookie that remembers it.

The cookie holds the person's handle and an expiry with an HMAC-SHA256 over both under the portal's own key
(random per process: a restart signs everyone out), so a page cannot become someone else by editing it.
Every page but the login page and the static files needs a session; a person sees only their own cabinet and,
for an employee, their organisation's (:func:`owners_of`). There is no password: on a test bench choosing
a person *is* the login; the point is that a cabinet's address alone shows nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import quote

from aiohttp import web

from mocks.pki import Person

SESSION_COOKIE = "portal_session"
SESSION_SECONDS = 8 * 3600
PUBLIC_PATHS = frozenset({"/login", "/logout"})
PERSON = web.RequestKey("portal_person", Person)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(key: bytes, handle: str, *, now: float | None = None) -> str:
    """The cookie value for ``handle``, valid for :data:`SESSION_SECONDS`."""
    payload = f"{handle}.{int((time.time() if now is None else now) + SESSION_SECONDS)}"
    return f"{payload}.{_mac(key, payload)}"


def holder(key: bytes, value: str | None, *, now: float | None = None) -> str | None:
    """The handle a cookie value was issued for, if its MAC checks out and it has not expired."""
    if not value or value.count(".") < 2:
        return None
    payload, _, mac = value.rpartition(".")
    handle, _, expires = payload.rpartition(".")
    if not hmac.compare_digest(mac, _mac(key, payload)) or not expires.isdigit():
        return None
    return handle if int(expires) > (time.time() if now is None else now) else None


def owners_of(person: Person) -> tuple[str, ...]:
    """The cabinets this person may open: their IIN, and their organisation's BIN for an employee."""
    return (person.iin, person.bin) if person.bin else (person.iin,)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never ``//elsewhere``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def login_middleware(key: bytes, people: Mapping[str, Person]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Put the session's person on the request; without one, only the login page and static files answer
    (a page is sent to the login page and back; anything else is 401)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        person = people.get(holder(key, request.cookies.get(SESSION_COOKIE)) or "")
        if person is not None:
            request[PERSON] = person
            return await handler(request)
        if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
            return await handler(request)
        if request.method == "GET" and not request.path.endswith("/events"):
            return web.Response(status=303, headers={"Location": f"/login?next={quote(request.path_qs, safe='')}",
                                                     "Cache-Control": "no-store"})
        return web.Response(status=401, text="sign in first: /login", headers={"Cache-Control": "no-store"})

    return middleware


def sign_in(response: web.StreamResponse, key: bytes, handle: str) -> None:
    """Remember ``handle`` in the signed session cookie (HTTP only, same site)."""
    response.set_cookie(SESSION_COOKIE, issue(key, handle), max_age=SESSION_SECONDS, httponly=True, samesite="Lax",
                        path="/")


def sign_out(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
