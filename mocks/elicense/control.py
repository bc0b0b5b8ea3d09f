"""Test controls of the E-licensing mock: fault injection and the simulated clock.

``POST /_control/fail`` ``{"status": 503, "count": 2}`` fails the next 2 ``POST /soap`` requests;
``{"delay": 1.5}`` delays every ``POST /soap`` by 1.5 s until reset (or until ``"delay": 0``); both keys
may be combined. ``POST /_control/reset`` clears faults and delay (not applications, not the clock).
``POST /_control/clock`` ``{"advance_seconds": N}`` moves the simulated clock forward, ``{"scale": F}``
changes its speed (0 stops it); ``GET /_control/clock`` answers ``{"now", "scale", "pace"}`` (``pace``: how many
times faster than its regulated deadlines the provider works, fixed at start). A malformed body
gets 400 ``{"code": "EL_BAD_CONTROL_REQUEST", "detail"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from mocks.elicense.clock import SimulatedClock
from mocks.elicense.steps import KZ_TIME
from mocks.faults import FaultPlan

_MAX_ADVANCE_SECONDS = 10 * 366 * 24 * 3600


@dataclass
class Controls:
    """What the control routes change, stored on the application under ``CONTROLS``."""

    clock: SimulatedClock
    "The simulated clock the service reads."
    guarded: Callable[[web.Request], bool]
    "Which requests faults apply to."
    injected: Callable[[int], web.Response]
    "The answer of an injected failure with this HTTP status."
    fault: FaultPlan = field(default_factory=FaultPlan)
    pace: float = 1.0
    "The provider's pace, shown by ``GET /_control/clock``."


CONTROLS = web.AppKey("elicense_controls", Controls)


def _bad(detail: str) -> web.Response:
    return web.json_response({"code": "EL_BAD_CONTROL_REQUEST", "detail": detail}, status=400)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _number(value: object) -> bool:
    return type(value) in (int, float)  # bool is an int subclass: {"scale": true} is refused


async def control_fail(request: web.Request) -> web.Response:
    """POST /_control/fail: schedule failures and/or a delay."""
    fault = request.app[CONTROLS].fault
    error = fault.update(await _json_object(request))
    return _bad(error) if error else web.json_response(fault.as_json())


async def control_reset(request: web.Request) -> web.Response:
    """POST /_control/reset: no more injected failures or delay."""
    controls = request.app[CONTROLS]
    controls.fault = FaultPlan()
    return web.json_response(controls.fault.as_json())


def _clock_json(controls: Controls) -> web.Response:
    return web.json_response({"now": controls.clock.now().astimezone(KZ_TIME).isoformat(),
                              "scale": controls.clock.scale, "pace": controls.pace})


async def control_clock(request: web.Request) -> web.Response:
    """POST /_control/clock: advance the simulated clock and/or change its speed; GET reads it."""
    controls = request.app[CONTROLS]
    clock = controls.clock
    if request.method == "GET":
        return _clock_json(controls)
    data = await _json_object(request)
    if data is None or not ({"advance_seconds", "scale"} & data.keys()):
        return _bad('expected a JSON object with "advance_seconds" and/or "scale"')
    advance, scale = data.get("advance_seconds"), data.get("scale")
    if advance is not None and (not _number(advance) or not 0 <= advance <= _MAX_ADVANCE_SECONDS):
        return _bad(f'"advance_seconds" must be a number 0..{_MAX_ADVANCE_SECONDS}')
    if scale is not None and (not _number(scale) or not 0 <= scale <= 1e7):
        return _bad('"scale" must be a number 0..10000000')
    if scale is not None:
        clock.set_scale(scale)
    if advance is not None:
        clock.advance(timedelta(seconds=advance))
    return _clock_json(controls)


@web.middleware
async def fault_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Apply the injected delay and failures to guarded requests."""
    controls = request.app[CONTROLS]
    if not controls.guarded(request):
        return await handler(request)
    fault = controls.fault
    fail_with = None  # decided before sleeping, so concurrent requests consume exactly `count` failures
    if fault.status is not None and fault.remaining > 0:
        fail_with, fault.remaining = fault.status, fault.remaining - 1
        if fault.remaining == 0:
            fault.status = None
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fail_with is not None:
        return controls.injected(fail_with)
    return await handler(request)


def add_control_routes(app: web.Application, controls: Controls) -> None:
    """Store ``controls`` on ``app`` and add the /_control routes (add ``fault_middleware`` yourself)."""
    app[CONTROLS] = controls
    app.router.add_post("/_control/fail", control_fail)
    app.router.add_post("/_control/reset", control_reset)
    app.router.add_post("/_control/clock", control_clock)
    app.router.add_get("/_control/clock", control_clock)
