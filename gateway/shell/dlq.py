"""`egov-gateway dlq list|replay`: the operator's view of dead letters, over the gateway's admin API."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="list or replay dead-lettered jobs and stopped applications")
    dlq.add_argument("--gateway", default="http://127.0.0.1:8080")
    dlq.add_argument("--sender", default=os.environ.get("EGOV_OPERATOR", "operator"),
                     help="an operator sender (default: $EGOV_OPERATOR, else 'operator')")
    dlq.add_argument("--password", default=os.environ.get("EGOV_OPERATOR_PASSWORD"),
                     help="its password (default: $EGOV_OPERATOR_PASSWORD, else asked on a terminal)")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="dead letters (all queued services, or --service)")
    listing.add_argument("--service", default=None)
    replay = actions.add_parser("replay", help="requeue a dead letter, or redeliver a stopped application")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--dead-id", help="with --service: the dead letter's id (from `dlq list`)")
    target.add_argument("--session", help="a stopped application's sessionId")
    replay.add_argument("--service", default=None)


def run(args: argparse.Namespace) -> int:
    base = args.gateway.rstrip("/")
    if not args.password:
        if not sys.stdin.isatty():
            print(f"error: the password of operator {args.sender!r} is needed and there is no terminal to ask on: "
                  "set $EGOV_OPERATOR_PASSWORD (or give --password)", file=sys.stderr)
            return 2
        args.password = getpass.getpass(f"password of {args.sender}: ")
    try:
        if args.dlq_command == "list":
            query = f"?{urllib.parse.urlencode({'service': args.service})}" if args.service else ""
            answer = _call(args, "GET", f"{base}/api/v1/admin/dead-letters{query}")
            for dead in answer["deadLetters"]:
                print(f"{dead['serviceId']}  {dead['deadId']}  session {dead['sessionId']}  "
                      f"{dead['attempts']} attempts  {dead['deadAt']}\n    {dead['reason']}")
            if not answer["deadLetters"]:
                print("no dead letters")
            return 0
        if args.dead_id:
            if not args.service:
                print("error: --dead-id needs --service", file=sys.stderr)
                return 2
            path = f"dead-letters/{_segment(args.service)}/{_segment(args.dead_id)}"
        else:
            path = f"applications/{_segment(args.session)}"
        answer = _call(args, "POST", f"{base}/api/v1/admin/{path}/replay")
        print(f"replayed: {answer}")
        return 0
    except urllib.error.HTTPError as exc:
        problem = _problem(exc)
        print(f"error: {problem.get('code', exc.code)}: {problem.get('detail') or problem.get('title') or exc.reason}",
              file=sys.stderr)
    except urllib.error.URLError as exc:
        print(f"error: cannot reach {base}: {exc.reason}", file=sys.stderr)
    except ValueError as exc:  # not JSON, or not the object the admin API answers with
        print(f"error: unexpected answer from {base}: {exc}", file=sys.stderr)
    return 1


def _segment(value: str) -> str:
    """``value`` as one URL path segment: a slash or ``?`` in it stays part of the id."""
    return urllib.parse.quote(value, safe="")


def _problem(error: urllib.error.HTTPError) -> dict[str, Any]:
    """The problem+json body of an error answer; a proxy's HTML page gives ``{}``, never a traceback."""
    try:
        problem = json.loads(error.read() or b"{}")
    except ValueError:
        return {}
    return problem if isinstance(problem, dict) else {}


def _call(args: argparse.Namespace, method: str, url: str) -> dict[str, Any]:
    token = base64.b64encode(f"{args.sender}:{args.password}".encode()).decode()
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if not isinstance(answer, dict):
        raise ValueError(f"{url} answered with a JSON {type(answer).__name__}, not an object")
    return answer
