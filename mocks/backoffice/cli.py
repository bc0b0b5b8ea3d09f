"""Command line of the KazNEB commission's back-office desk.

::

    python -m mocks.backoffice run --gateway URL --library URL --sender desk [--password PW] [--redis URL] [--manual]
                                   [--control-port 8730] [--worker NAME] [--poll-wait 10]
    python -m mocks.backoffice pending [--control URL]
    python -m mocks.backoffice approve ENTRY [--reason TEXT] [--members 5 --votes-for 5] [--control URL]
    python -m mocks.backoffice refuse ENTRY --reason TEXT [--members 5 --votes-for 0] [--control URL]

The password may come from the environment variable ``BACKOFFICE_PASSWORD`` instead of the command
line (where other local users could read it). In manual mode ``run`` also serves a small control API
on loopback only, which ``pending``, ``approve`` and ``refuse`` call (default http://127.0.0.1:8730):

``GET /pending``               ``{"pending": [{"entryId", "submissionNumber", "bin" (masked), ...}]}``
``POST /decide/{entryId}``     ``{"decision": "include"|"not-include", "reason", "members"?, "votesFor"?}``
                               → 200 ``{"entryId", "status"}``; problem JSON 400 ``DESK_BAD_DECISION``,
                               404 ``DESK_NOT_PENDING``, 502 ``DESK_STEP_FAILED`` (the job was failed)

It has no authentication: anyone on this host who can reach the loopback port can decide.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from mocks.backoffice.memory import RedisDeskMemory
from mocks.backoffice.worker import SERVICE_ID, CommissionDesk, DeskError, PendingDecision, WorkerSettings
from signing.idnumbers import mask_id

DEFAULT_CONTROL_PORT = 8730
PASSWORD_ENV = "BACKOFFICE_PASSWORD"
DESK = web.AppKey("backoffice_desk", CommissionDesk)


def pending_json(item: PendingDecision) -> dict[str, Any]:
    """One pending decision for the control API: masked identifiers only."""
    job = item.job
    return {
        "entryId": job.entry_id, "sessionId": job.session_id, "messageId": job.message_id, "attempt": job.attempt,
        "submissionNumber": item.submission_number, "organisation": job.organisation,
        "bin": mask_id(job.applicant_bin) if job.applicant_bin else None,
        "objects": [{"title": o.title, "category": o.category, "accessLevel": o.access_level} for o in item.objects],
        "suggestion": item.suggestion.as_json(), "since": item.since.isoformat(timespec="seconds"),
    }


def _problem(status: int, code: str, detail: str) -> web.Response:
    body = {"type": f"urn:egov:backoffice:problem:{code}", "title": code, "status": status, "detail": detail,
            "code": code}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def get_pending(request: web.Request) -> web.Response:
    """GET /pending."""
    return web.json_response({"pending": [pending_json(item) for item in request.app[DESK].pending()]})


async def post_decide(request: web.Request) -> web.Response:
    """POST /decide/{entryId}: a person's decision on a pending job."""
    entry_id = request.match_info["entry_id"]
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _problem(400, "DESK_BAD_DECISION", "the body must be a JSON object")
    decision, reason = data.get("decision"), data.get("reason")
    members, votes_for = data.get("members", 5), data.get("votesFor")
    if (not isinstance(decision, str) or not isinstance(reason, str | None) or type(members) is not int
            or (votes_for is not None and type(votes_for) is not int)):
        return _problem(400, "DESK_BAD_DECISION", 'expected {"decision": str, "reason": str, "members": int, '
                                                  '"votesFor": int}')
    try:
        status = await request.app[DESK].decide(entry_id, decision, reason, members=members, votes_for=votes_for)
    except KeyError:
        return _problem(404, "DESK_NOT_PENDING", f"no job {entry_id} waits for a decision")
    except ValueError as exc:
        return _problem(400, "DESK_BAD_DECISION", str(exc))
    except DeskError as exc:
        return _problem(502, "DESK_STEP_FAILED", str(exc))
    return web.json_response({"entryId": entry_id, "status": status})


def control_app(desk: CommissionDesk) -> web.Application:
    """The loopback control API for a manual desk."""
    app = web.Application()
    app[DESK] = desk
    app.router.add_get("/pending", get_pending)
    app.router.add_post("/decide/{entry_id}", post_decide)
    return app


async def run(settings: WorkerSettings, control_port: int | None, redis_url: str | None = None) -> None:
    """Take jobs until SIGINT/SIGTERM; serve the control API on 127.0.0.1 when ``control_port`` is set; keep the
    finished steps in Redis at ``redis_url`` (shared by every desk) when given."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    redis = Redis.from_url(redis_url) if redis_url else None
    progress = RedisDeskMemory(redis, f"desk:{settings.service_id}:progress") if redis is not None else None
    async with CommissionDesk(settings, progress=progress) as desk:
        try:
            if control_port is not None:
                runner = web.AppRunner(control_app(desk), access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", control_port).start()
                print(f"control API on http://127.0.0.1:{control_port}: "
                      "python -m mocks.backoffice pending | approve ENTRY | refuse ENTRY --reason ...", flush=True)
            mode = "a person decides (manual)" if settings.manual else "the commission decides automatically"
            print(f"desk {settings.worker_name} takes {settings.service_id} jobs from {settings.gateway_url}; "
                  f"{mode}; Ctrl-C stops", flush=True)
            await desk.run_forever(stop)
        finally:
            if runner is not None:
                await runner.cleanup()
            if redis is not None:
                await redis.aclose()
    print("desk stopped", flush=True)


def _call(control: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Call the control API (no proxies: it is on loopback); SystemExit when it cannot be reached."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(control.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {"detail": f"HTTP {error.code}"}
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise SystemExit(f"cannot reach the desk's control API at {control} ({reason}); "
                         "is `python -m mocks.backoffice run --manual` running?") from None


def show_pending(control: str) -> int:
    status, body = _call(control, "GET", "/pending")
    if status != 200:
        print(f"the desk answered {status}: {body.get('detail')}", file=sys.stderr)
        return 1
    items = body.get("pending", [])
    if not items:
        print("no submissions wait for a decision")
    for item in items:
        vote = item["suggestion"]
        print(f"{item['entryId']}  {item['submissionNumber']}  BIN {item['bin']}  {item['organisation'] or ''}  "
              f"{len(item['objects'])} object(s)  since {item['since']}  "
              f"suggested: {vote['decision']} ({vote['votesFor']} for, {vote['votesAgainst']} against)")
    return 0


def send_decision(control: str, entry_id: str, decision: str, reason: str | None, members: int,
                  votes_for: int | None) -> int:
    body: dict[str, Any] = {"decision": decision, "reason": reason, "members": members}
    if votes_for is not None:
        body["votesFor"] = votes_for
    status, answer = _call(control, "POST", f"/decide/{entry_id}", body)
    if status != 200:
        print(f"{entry_id}: not decided: {answer.get('detail') or answer}", file=sys.stderr)
        return 1
    print(f"{entry_id}: {decision} recorded; the application is {answer.get('status')}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mocks.backoffice",
                                     description="KazNEB commission back-office desk (takes queued fund submissions)")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="take jobs from the gateway until Ctrl-C")
    run_cmd.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8700")
    run_cmd.add_argument("--library", required=True, help="KazNEB library base URL, e.g. http://127.0.0.1:8710")
    run_cmd.add_argument("--sender", required=True, help="the desk's senderId at the gateway")
    run_cmd.add_argument("--password", help=f"the sender's password (default: ${PASSWORD_ENV})")
    run_cmd.add_argument("--service", default=SERVICE_ID, help="service whose jobs to take (default: %(default)s)")
    run_cmd.add_argument("--worker", help="consumer name, unique per desk (default: host:pid)")
    run_cmd.add_argument("--poll-wait", type=int, default=10, help="long-poll seconds 0..25 (default: %(default)s)")
    run_cmd.add_argument("--redis", default=os.environ.get("REDIS_URL"),
                         help="keep finished steps in this Redis, shared by every desk (default: $REDIS_URL)")
    run_cmd.add_argument("--manual", action="store_true", help="a person decides (pending / approve / refuse)")
    run_cmd.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT,
                         help="loopback port of the control API in manual mode (default: %(default)s)")
    default_control = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"
    pending_cmd = commands.add_parser("pending", help="list submissions waiting for a decision")
    pending_cmd.add_argument("--control", default=default_control, help="control API URL (default: %(default)s)")
    for name, decision in (("approve", "include"), ("refuse", "not-include")):
        cmd = commands.add_parser(name, help=f"decide {decision} on a pending submission")
        cmd.add_argument("entry", help="entry id, as `pending` lists it")
        cmd.add_argument("--reason", required=name == "refuse", help="why (required to refuse)")
        cmd.add_argument("--members", type=int, default=5, help="commission members, odd, at least 5")
        cmd.add_argument("--votes-for", type=int, help="votes for inclusion (default: unanimous)")
        cmd.add_argument("--control", default=default_control, help="control API URL (default: %(default)s)")
        cmd.set_defaults(decision=decision)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "pending":
        return show_pending(args.control)
    if args.command in ("approve", "refuse"):
        return send_decision(args.control, args.entry, args.decision, args.reason, args.members, args.votes_for)
    password = args.password or os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"a password is needed: --password or ${PASSWORD_ENV}", file=sys.stderr)
        return 2
    extra = {"worker_name": args.worker} if args.worker else {}
    try:
        settings = WorkerSettings(gateway_url=args.gateway, library_url=args.library, sender=args.sender,
                                  password=password, service_id=args.service, manual=args.manual,
                                  poll_wait=args.poll_wait, **extra)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    asyncio.run(run(settings, args.control_port if args.manual else None, args.redis))
    return 0
