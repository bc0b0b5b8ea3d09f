"""The mock egov portal's web site: routes, language handling, start-up and shutdown.

Routes::

    GET  /login?next=PATH, POST /login          choose who you are (kept in a signed session cookie)
    POST /logout                                sign out
    GET  /                                      the services for the signed-in person
    GET  /apply/{serviceId}                     the service's form
    POST /apply/{serviceId}                     validate, sign, send; the cabinet or the refusal
    GET  /cabinet/{owner}                       the person's cabinet (their IIN, or their organisation's BIN), live
    GET  /cabinet/{owner}/events                the gateway's event stream, relayed (text/event-stream)
    GET  /cabinet/{owner}/{messageId}           one application
    GET  /cabinet/{owner}/{messageId}/result.xml, /receipt.xml   signed downloads, proxied
    GET  /static/portal.css, /static/portal.js, /static/emblem.svg
    /deposit, /deposit/uploads[/{id}], /static/deposit.js   the software deposit (mocks.portal.web.deposit)

The language comes from ``?lang=`` (remembered in a cookie), then the cookie, then Kazakh. Every page but
the login page and the static files needs a session (:mod:`mocks.portal.web.session`), and a cabinet shows
only the signed-in person's (another one's is a 404 page, as if it did not exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from mocks.pki import TestPki
from mocks.portal.web import cabinet, deposit, home, login, submit
from mocks.portal.web.assets import CSS, EMBLEM_SVG, JS
from mocks.portal.web.i18n import DEFAULT_LANGUAGE, language
from mocks.portal.web.session import login_middleware
from mocks.portal.web.state import LANG, LANG_COOKIE, STATE, PortalState, classify
from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier

log = logging.getLogger("egov.portal.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pick the page language; a ``?lang=`` choice is remembered in a cookie."""
    chosen = language(request.query.get("lang"))
    request[LANG] = chosen or language(request.cookies.get(LANG_COOKIE)) or DEFAULT_LANGUAGE
    response = await handler(request)
    if chosen and not response.prepared:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax")
    return response


def _static(body: str, content_type: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": "public, max-age=300"})

    return serve


async def _startup(app: web.Application) -> None:
    state = app[STATE]
    state.session = aiohttp.ClientSession()
    try:  # build the zeep client from the gateway's WSDL now; if the gateway is not up yet, on first use
        await state.soap_client()
    except Exception as exc:  # zeep/requests errors vary; the first submission retries
        log.warning("gateway WSDL not loaded at start (%s); will retry on first submission", type(exc).__name__)


async def _shutdown(app: web.Application) -> None:
    for upstream in list(app[STATE].streams):  # end the relayed event streams so their handlers return
        upstream.close()


async def _cleanup(app: web.Application) -> None:
    session = app[STATE].session
    if session is not None:
        await session.close()


def create_portal_app(*, pki: TestPki, gateway_url: str, sender: str, password: str,
                      gost_for_organisations: bool = True) -> web.Application:
    """The portal's web application, talking to the gateway at ``gateway_url`` as ``sender``; an employee who holds
    a GOST key signs an organisation's application with it (as NCA's employees mostly do), unless
    ``gost_for_organisations`` is False."""
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust, gost_paths=trust)  # a GOST-signing gateway's results
    state = PortalState(pki=pki, gateway_url=gateway_url.rstrip("/"), sender=sender, password=password,
                        verifier=verifier, cast=classify(pki), gost_for_organisations=gost_for_organisations)
    app = web.Application(middlewares=[language_middleware, login_middleware(state.session_key, pki.people)])
    app[STATE] = state
    app.router.add_get("/login", login.login_page)
    app.router.add_post("/login", login.login)
    app.router.add_post("/logout", login.logout)
    app.router.add_get("/", home.home)
    app.router.add_get("/apply/{service_id}", submit.show_form)
    app.router.add_post("/apply/{service_id}", submit.submit)
    app.router.add_get("/cabinet/{owner}", cabinet.cabinet)
    app.router.add_get("/cabinet/{owner}/events", cabinet.events)
    app.router.add_get("/cabinet/{owner}/{message_id}", cabinet.application)
    app.router.add_get(r"/cabinet/{owner}/{message_id}/{kind:result|receipt}.xml", cabinet.download)
    deposit.add_routes(app)
    app.router.add_get("/static/portal.css", _static(CSS, "text/css"))
    app.router.add_get("/static/portal.js", _static(JS, "application/javascript"))
    app.router.add_get("/static/emblem.svg", _static(EMBLEM_SVG, "image/svg+xml"))
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


async def run_portal(*, pki: TestPki, gateway_url: str, sender: str, password: str, host: str = "127.0.0.1",
                     port: int = 8700) -> web.AppRunner:
    """Start the portal on ``host:port`` and return its runner (``await runner.cleanup()`` to stop).

    The access log masks every IIN/BIN in paths (cabinet addresses carry one).
    """
    from gateway.shell.app import MaskingAccessLogger

    runner = web.AppRunner(create_portal_app(pki=pki, gateway_url=gateway_url, sender=sender, password=password),
                           access_log_class=MaskingAccessLogger, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


async def serve_forever(runner: web.AppRunner) -> None:
    """Wait until cancelled (Ctrl-C), then stop the portal."""
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
