"""The `egov-gateway` command as a tester uses it: real processes, real ports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gateway.access.senders import check_password, hash_password
from gateway.shell.cli import main
from mocks.demo_secrets import DEMO_SENDER, read_demo_secrets
from mocks.portal.applicant import READER_TICKET_SERVICE
from tests.helpers import CLI, ROOT, free_port, serve_config

OPS_PASSWORD = "ops-test-password"
OPS = {"Authorization": aiohttp.encode_basic_auth("ops", OPS_PASSWORD)}


async def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds / 0.1)):
            assert process.poll() is None, f"process exited with {process.returncode}"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen, signum: int = signal.SIGINT) -> int:
    process.send_signal(signum)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


async def test_demo_then_submit_shows_a_verified_signed_result(pki, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(pki.root, state / "pki")  # saves generating a second PKI
    names = ("gateway", "portal", "library", "elicense", "desk", "callback", "revocation", "tsa")
    ports = {name: free_port() for name in names}
    port = ports["gateway"]
    flags = [f"--{name}-port" if name != "gateway" else "--port" for name in ports]
    demo = subprocess.Popen([*CLI, "demo", "--state-dir", str(state), "--seal-seconds", "0.5",
                             *[arg for flag, value in zip(flags, ports.values(), strict=True)
                               for arg in (flag, str(value))]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/health", demo)
        await wait_until_up(f"http://127.0.0.1:{ports['portal']}/", demo)  # the portal a tester opens
        submit = await asyncio.to_thread(subprocess.run, [
            *CLI, "submit", "--as", "aigerim", "--service", READER_TICKET_SERVICE,
            "--gateway", f"http://127.0.0.1:{port}", "--state-dir", str(state), "--json",
        ], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        outcome = json.loads(submit.stdout)
        assert outcome["status"] == "SCSS001"
        assert outcome["resultSignature"]["indication"] == "TOTAL_PASSED"
        assert outcome["result"]["document"] == "ReaderTicket"
        assert outcome["result"]["iin"] == pki.person("aigerim").iin
        assert "<ds:Signature" in outcome["resultXml"]

        refused = await asyncio.to_thread(subprocess.run, [
            *CLI, "submit", "--as", "expired", "--gateway", f"http://127.0.0.1:{port}", "--state-dir", str(state),
        ], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert refused.returncode == 1
        assert "SIG_EXPIRED" in refused.stdout
        assert "Traceback" not in refused.stdout + refused.stderr

        secrets = read_demo_secrets(state)  # the demo made its own at the first start
        assert secrets is not None and (state / "demo-secrets.json").stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": aiohttp.encode_basic_auth(DEMO_SENDER, secrets.portal)}
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/api/v1/cabinet/{pki.person('aigerim').iin}/applications", headers=auth
        ) as response:
            listing = await response.json()
        assert [a["sessionId"] for a in listing["applications"]] == [outcome["sessionId"]]
        await _log_verify_holds_until_a_byte_changes(state)
    finally:
        code = stop(demo)
    output = demo.stdout.read()
    assert code == 0, output
    assert f"http://127.0.0.1:{port}/shep/sync?wsdl" in output
    assert "Traceback" not in output
    assert not any(port_open(p) for p in ports.values()), "every server of the demo stopped"
    assert (state / "redis" / "appendonlydir").exists() or (state / "redis" / "appendonly.aof").exists()
    assert pki.person("aigerim").iin not in output, "a full IIN reached the log"


async def _log_verify_holds_until_a_byte_changes(state: Path) -> None:
    """The demo's message log: sealed and archived, `log verify` exits 0; one byte changed, it names the record."""
    archive = state / "messagelog"
    for _ in range(100):  # the demo seals every 0.5 s
        if sorted(archive.glob("segment-*.jsonl")) and "0 unsealed" in _log(state, "verify").stdout:
            break
        await asyncio.sleep(0.1)
    verified = _log(state, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK: every hash link, seal signature and timestamp holds" in verified.stdout
    first = sorted(archive.glob("segment-*.jsonl"))[0]
    lines = first.read_bytes().split(b"\n")
    at = lines[0].index(b'"kind":"') + 8
    lines[0] = lines[0][:at] + b"X" + lines[0][at + 1:]  # one byte of record 1
    first.write_bytes(b"\n".join(lines))
    broken = _log(state, "verify")
    assert broken.returncode == 1, broken.stdout
    # Records 1 and 2 (a request and its receipt) are appended together, so one segment holds both.
    assert f"first break at {first.name} line 2 record 2: its prev does not match" in broken.stdout, broken.stdout
    assert "(record 1 changed" in broken.stdout


def _log(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "log", *args, "--state-dir", str(state)], capture_output=True, text=True, timeout=60)


async def test_serve_runs_from_a_toml_file_with_external_redis(pki, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    hashed = subprocess.run([*CLI, "hash-password"], input="s3cret\n", capture_output=True, text=True,
                            check=True).stdout.strip()
    assert check_password("s3cret", hashed)
    config = serve_config(tmp_path, pki, port, signer=f'p12 = "{pki.systems["gateway"].p12}"\n'
                                                     'password_env = "TEST_SIGNER_PASSWORD"',
                          portal_hash=hashed, ops_hash=hash_password(OPS_PASSWORD))
    env = {**os.environ, "REDIS_URL": redis_url, "TEST_SIGNER_PASSWORD": pki.p12_password}
    server = subprocess.Popen([*CLI, "serve", "--config", str(config)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/health", server)
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health/details",
                                                                   headers=OPS) as response:
            health = await response.json()
        assert "CN=gateway" in health["signer"]["subject"]
        assert health["services"] == [READER_TICKET_SERVICE]
    finally:
        assert stop(server, signal.SIGTERM) == 0
    assert not (tmp_path / ".egov").exists(), "REDIS_URL was set: nothing embedded may start"


@pytest.mark.parametrize(("toml", "message"), [
    ('[listen]\nport = "eighty"\n', "listen.port: expected int"),
    ("[listen]\nprot = 8080\n", "listen.prot: unknown setting"),
    ('[services.x]\nconnector = "rest"\n', "services.x.endpoint: an http(s) URL is required"),
    ('[services.x]\nendpoint = "http://x"\ntimeout_seconds = "ten"\n', "services.x.timeout_seconds"),
    ("not toml = = =\n", "not valid TOML"),
])
def test_bad_configuration_stops_start_up_naming_the_key(tmp_path: Path, capsys, toml: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    assert main(["serve", "--config", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_missing_signer_is_a_clear_start_up_error(tmp_path: Path, capsys, pki) -> None:
    config = tmp_path / "nosigner.toml"
    config.write_text(f'[trust]\nanchors = ["{pki.trust_anchors[0]}"]\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert "signer" in capsys.readouterr().err


def test_submit_as_unknown_person_lists_who_exists(pki, capsys) -> None:
    assert main(["submit", "--as", "nobody", "--state-dir", str(pki.root.parent)]) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "aigerim" in err


def test_pki_list_shows_people_and_roles(pki, capsys) -> None:
    assert main(["pki", "list", "--dir", str(pki.root)]) == 0
    people = {row["handle"]: row for row in json.loads(capsys.readouterr().out)}
    assert "first_head" in people["kitap-head"]["roles"]
    assert people["aigerim"]["kind"] == "individual"


def test_readme_documents_every_error_code_and_the_two_commands() -> None:
    from gateway.errors import CATALOGUE, markdown_table

    readme = (ROOT / "README.md").read_text()
    missing = [code for code in CATALOGUE if f"`{code}`" not in readme]
    assert not missing, f"README lacks {missing}"
    assert markdown_table() in readme, "README's error table is stale: run python -m gateway.errors"
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


async def test_serve_with_two_worker_processes_on_one_port(pki, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[listen]
port = {port}
[trust]
anchors = ["{pki.trust_anchors[0]}"]
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
[revocation]
mode = "off"
[senders.ops]
password_hash = "{hash_password(OPS_PASSWORD)}"
operator = true
""")
    server = subprocess.Popen([*CLI, "serve", "--config", str(config), "--workers", "2"],
                              env={**os.environ, "REDIS_URL": redis_url},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/health", server)
        processes: set[int] = set()
        deadline = asyncio.get_running_loop().time() + 15  # the second process may still be loading its keys
        while len(processes) < 2 and asyncio.get_running_loop().time() < deadline:
            # new connections each time: the kernel spreads them over the processes listening on the port
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session, \
                    session.get(f"http://127.0.0.1:{port}/health/details", headers=OPS) as response:
                processes.add((await response.json())["process"])
            await asyncio.sleep(0.05)
        assert len(processes) == 2, "both worker processes answer on the shared port"
    finally:
        assert stop(server, signal.SIGTERM) == 0
    assert not port_open(port)
    assert "Traceback" not in server.stdout.read()
