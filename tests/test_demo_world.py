"""The demo's world as a tester meets it: the README's revocation example in the README's order, a restart
that keeps the world, `--fresh` that clears it, and a Ctrl-C that stops the parts in order (issue 16)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from mocks.pki import TestPki
from mocks.world.demo import DEMO_PORTS
from tests.helpers import CLI, ROOT, free_port
from tests.processes import Demo

README = ROOT / "README.md"
SMOKE = ROOT / "scenarios" / "smoke.toml"


def readme_revocation_steps() -> list[tuple[str, str | None]]:
    """The commands of the README's revocation example, each with the code its comment expects."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"Revocation is live:.*?```sh\n(.*?)```", text, re.S)
    assert block, "the README has a revocation example"
    steps = []
    for line in block.group(1).strip().splitlines():
        command, _, comment = line.partition("#")
        steps.append((command.strip(), comment.strip() or None))
    return steps


async def run_readme_step(demo: Demo, command: str) -> str:
    """One README command against this demo's ports and state (curl as aiohttp, submit as the CLI)."""
    words = shlex.split(command)
    if words[0] == "curl":
        url = words[words.index("-X") + 2].replace("localhost:8790", f"127.0.0.1:{demo.ports['revocation']}")
        body = words[words.index("-d") + 1]  # sent as curl sends -d: form-encoded content type, the text as is
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with aiohttp.ClientSession() as session, session.post(f"http://{url}", data=body,
                                                                    headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.text()
    assert words[0] == ".venv/bin/egov-gateway", command
    done = await demo.run(*words[1:])
    return done.stdout + done.stderr


def no_trouble(output: str) -> None:
    assert "Traceback" not in output, output
    assert "GATEWAY_STORAGE_UNAVAILABLE" not in output, "Redis stopped before the gateway's workers"
    assert "loop failed" not in output, output


async def test_readme_revocation_in_order_then_restart_keeps_the_world_and_fresh_clears_it(
    pki: TestPki, tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    shutil.copytree(pki.root, state / "pki")
    aigerim = pki.person("aigerim").iin
    demo = Demo(state)
    try:
        await demo.up()
        # The README's order: aigerim's ticket first, then the revocation example, then the smoke scenario.
        first = await demo.run("submit", "--as", "aigerim", "--service", "kazneb.reader-ticket")
        assert first.returncode == 0, first.stdout + first.stderr
        steps = readme_revocation_steps()
        assert [expected for _, expected in steps] == [None, "SIG_REVOKED"]
        for command, expected in steps:
            output = await run_readme_step(demo, command)
            if expected:
                assert expected in output, output
        smoke = await demo.run("submit", "--scenario", str(SMOKE))
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        status, ticket = await demo.get("library", f"/api/v1/readers/{aigerim}")
        assert status == 200
    finally:
        output = demo.interrupt()
    no_trouble(output)
    world = {path.name for path in (state / "world").iterdir()}
    assert {"revocations.json", "library.json", "elicense.json", "desk.json"} <= world

    again = Demo(state)
    try:
        await again.up()
        revoked = await again.run("submit", "--as", "murager-signer", "--service", "kazneb.fund-submission")
        assert "SIG_REVOKED" in revoked.stdout, "the revocation survived the restart"
        assert await again.get("library", f"/api/v1/readers/{aigerim}") == (200, ticket), "the same ticket"
    finally:
        no_trouble(again.interrupt())

    fresh = Demo(state, "--fresh")
    try:
        await fresh.up()
        _, control = await fresh.get("revocation", "/_control/state")
        assert json.loads(control)["revocations"] == []
        assert (await fresh.get("library", f"/api/v1/readers/{aigerim}"))[0] == 404
        accepted = await fresh.run("submit", "--as", "murager-signer", "--service", "kazneb.fund-submission")
        # accepted, the result follows in the cabinet: `submit` says so with exit 6 (see mocks/world/submit.py Exit)
        assert "SIG_REVOKED" not in accepted.stdout and accepted.returncode == 6, accepted.stdout + accepted.stderr
    finally:
        no_trouble(fresh.interrupt())
    assert (state / "pki" / "index.json").exists(), "--fresh keeps the test PKI"


def banner(pki: TestPki, tmp_path: Path, capsys: Any, *, manual_desk: bool) -> str:
    from mocks.demo_secrets import demo_secrets
    from mocks.world.demo import _print_banner, demo_settings

    urls = {name: f"http://127.0.0.1:{free_port()}" for name in DEMO_PORTS}
    settings = demo_settings(tmp_path, pki.root, port=int(urls["gateway"].rsplit(":", 1)[1]), urls=urls)
    _print_banner(settings, "redis://127.0.0.1:1", urls, demo_secrets(tmp_path), manual_desk=manual_desk)
    return str(capsys.readouterr().out)


def test_with_custom_ports_every_hint_names_the_gateway_and_the_desk(pki: TestPki, tmp_path: Path,
                                                                      capsys: Any) -> None:
    out = banner(pki, tmp_path, capsys, manual_desk=True)
    gateway = re.search(r"SOAP SyncChannel +(\S+)/shep/sync", out).group(1)  # type: ignore[union-attr]
    tools = [line for line in out.splitlines() if re.search(r"egov-gateway (submit|dlq)", line)]
    assert len(tools) >= 6 and all(f"--gateway {gateway}" in line for line in tools), tools
    assert all(f"--state-dir {tmp_path}" in line for line in tools if " submit" in line)
    desk = [line for line in out.splitlines() if "mocks.backoffice" in line]
    assert desk and all(line.count("--control http://127.0.0.1:") == 3 for line in desk), desk
    assert "waits for you" in out and "decides by itself" not in out and "works its queue" not in out


def test_an_automatic_desk_is_said_to_decide_by_itself(pki: TestPki, tmp_path: Path, capsys: Any) -> None:
    out = banner(pki, tmp_path, capsys, manual_desk=False)
    assert "decides by itself" in out and "mocks.backoffice pending" not in out


def test_port_flags_portal_callback_and_the_old_web_port(capsys: Any) -> None:
    from mocks.world.commands import demo, demo_parser

    args = demo_parser().parse_args(["--portal-port", "9700", "--callback-port", "9740", "--fresh"])
    assert (args.portal_port, args.callback_port, args.fresh) == (9700, 9740, True)
    old = demo_parser().parse_args(["--web-port", "9701"])
    assert (old.portal_port, old.callback_port, old.fresh) == (9701, 8740, False)
    help_text = demo_parser().format_help()
    assert "--callback-port" in help_text and "--web-port" not in help_text, "the old name is a hidden alias"
    with pytest.raises(SystemExit) as exited:
        demo(["--elicense-scale", "0.5"])
    assert exited.value.code == 2
    assert "--elicense-scale must be at least 1" in capsys.readouterr().err
    assert "--callback-url URL" in help_text
    assert demo_parser().parse_args(["--callback-url", "http://127.0.0.1:9/c"]).callback_url == "http://127.0.0.1:9/c"
    for bad in ("127.0.0.1:9/c", "ftp://host/c", "http://"):
        with pytest.raises(SystemExit) as exited:
            demo(["--callback-url", bad])
        assert exited.value.code == 2
        assert "--callback-url must be an http:// or https:// URL" in capsys.readouterr().err


async def test_the_demo_on_a_local_redis_cluster_runs_the_readme_commands(pki: TestPki, tmp_path: Path) -> None:
    """`demo --redis-cluster 3`: three primaries and three replicas; the README's journeys (sync, the queued
    commission, E-licensing's polled steps, AsyncChannel, the smoke scenario), the operator's dead-letter list and
    the message log all work on it, and the state is spread over the primaries."""
    state = tmp_path / "state"
    shutil.copytree(pki.root, state / "pki")
    demo = Demo(state, "--redis-cluster", "3")
    try:
        await demo.up()
        for argv in (("--as", "aigerim", "--service", "kazneb.reader-ticket"),
                     ("--as", "kitap-head", "--service", "kazneb.fund-submission", "--wait"),
                     ("--as", "daniyar", "--service", "elicense.cultural-export", "--wait"),
                     ("--as", "aigerim", "--service", "kazneb.reader-ticket", "--channel", "async", "--wait")):
            done = await demo.run("submit", *argv)
            assert done.returncode == 0, (argv, done.stdout + done.stderr)
        smoke = await demo.run("submit", "--scenario", str(SMOKE))
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        ports = (state / "redis" / "cluster").read_text().split()
        assert len(ports) == 6
        password = (await asyncio.to_thread(subprocess.run, [*CLI, "demo", "--state-dir", str(state),
                                                             "--print-password", "operator"],
                                            capture_output=True, text=True, cwd=ROOT)).stdout.strip()
        listing = await asyncio.to_thread(subprocess.run, [*CLI, "dlq", "--gateway", demo.url["gateway"], "list"],
                                          capture_output=True, text=True, cwd=ROOT,
                                          env={**os.environ, "EGOV_OPERATOR_PASSWORD": password})
        assert listing.returncode == 0, listing.stdout + listing.stderr
        keys_per_node = []
        for port in ports:
            node = Redis(port=int(port))
            keys_per_node.append(int(await node.dbsize()))
            await node.aclose()
        assert sum(1 for count in keys_per_node if count) >= 3, f"keys on every primary (and replica): {keys_per_node}"
        verified = await asyncio.to_thread(subprocess.run, [*CLI, "log", "verify", "--state-dir", str(state)],
                                           capture_output=True, text=True, cwd=ROOT)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        output = demo.interrupt()
    no_trouble(output)
    assert "Redis Cluster" in output, output
