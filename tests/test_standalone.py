"""The product stands alone: it never loads the simulated world, and runs with the mocks refused.

Every check runs in a fresh interpreter (``sys.executable``), because this test session itself has the
mocks loaded. "Refused" means a ``sys.meta_path`` finder that answers every ``mocks`` / ``mocks.*`` import
with the ModuleNotFoundError Python raises for a package that is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.access.senders import hash_password
from tests.helpers import free_port, serve_config

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("gateway", "signing", "connectors")

REFUSE_MOCKS = textwrap.dedent("""
    import sys

    class RefuseMocks:
        '''The mocks are not installed: any import of them fails as for a missing package.'''

        def find_spec(self, name, path=None, target=None):
            if name == "mocks" or name.startswith("mocks."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, RefuseMocks())
""")


def python(code: str, *, refuse_mocks: bool = False, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter on this checkout; stdout and stderr captured as text."""
    source = (REFUSE_MOCKS if refuse_mocks else "") + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", source], env=_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("EGOV_OPERATOR_PASSWORD", None)
    return env


def test_importing_every_product_module_loads_no_mock() -> None:
    result = python(f"""
        import importlib, json, pkgutil, sys

        failed = {{}}
        for name in {PRODUCT!r}:
            package = importlib.import_module(name)
            for module in pkgutil.walk_packages(package.__path__, name + ".", onerror=failed.setdefault):
                try:
                    importlib.import_module(module.name)
                except Exception as exc:  # reported below: a module that cannot be imported proves nothing
                    failed[module.name] = repr(exc)
        importlib.import_module("gateway.shell.cli")
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in {PRODUCT!r})
        mocks = sorted(name for name in sys.modules if name == "mocks" or name.startswith("mocks."))
        print(json.dumps({{"loaded": loaded, "mocks": mocks, "failed": failed}}))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["failed"] == {}
    assert report["mocks"] == [], f"the product loaded {report['mocks']}"
    # The walk really went through the rooms, not just the top packages.
    for module in ("gateway.shell.cli", "gateway.intake.pipeline", "gateway.delivery.engine",
                   "signing.verifier", "connectors.soap"):
        assert module in report["loaded"]


def _config(tmp_path: Path, pki, port: int) -> Path:
    """A minimal real configuration: the gateway's own key as PEM files."""
    keys = pki.systems["gateway"]
    return serve_config(tmp_path, pki, port, signer=f'cert = "{keys.cert}"\nkey = "{keys.key}"',
                        portal_hash=hash_password("standalone-test-password"),
                        ops_hash=hash_password("standalone-ops-password"))


def _wait_for_health(url: str, process: subprocess.Popen, seconds: float = 30,
                     auth: tuple[str, str] | None = None) -> dict:
    """Poll the real socket until ``url`` answers 200 (bounded); fail at once if the process dies."""
    deadline = time.monotonic() + seconds
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited with {process.returncode}: {process.communicate()[0]}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                if response.status == 200:
                    return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {seconds} s")


def test_serve_runs_with_the_mocks_refused(pki, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, pki, port)
    source = REFUSE_MOCKS + textwrap.dedent(f"""
        from gateway.shell.cli import main

        sys.exit(main(["serve", "--config", {str(config)!r}]))
    """)
    server = subprocess.Popen([sys.executable, "-c", source], env={**_env(), "REDIS_URL": redis_url},
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_for_health(f"http://127.0.0.1:{port}/health", server) == {"status": "ok"}
        health = _wait_for_health(f"http://127.0.0.1:{port}/health/details", server,
                                  auth=("ops", "standalone-ops-password"))
        assert "CN=gateway" in health["signer"]["subject"]
        assert health["services"] == ["kazneb.reader-ticket"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output = server.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, output
    assert "Traceback" not in output
    assert "mocks" not in output
    assert not (tmp_path / ".egov").exists(), "REDIS_URL was set: nothing embedded may start"


def test_demo_without_the_mocks_is_a_one_line_error() -> None:
    result = python("""
        from gateway.shell.cli import main

        sys.exit(main(["demo"]))
    """, refuse_mocks=True)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: `demo`")
    assert "mocks.world.commands" in lines[0] and "'mocks'" in lines[0]
    assert "Traceback" not in result.stderr


def test_help_without_the_mocks_lists_the_product_commands() -> None:
    result = python("""
        from gateway.shell.cli import main

        sys.exit(main(["--help"]))
    """, refuse_mocks=True)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "hash-password", "sign", "verify", "dlq"):
        assert f"\n    {command} " in result.stdout, result.stdout


def test_dlq_without_a_password_or_a_terminal_says_how_to_give_one() -> None:
    port = free_port()  # nothing listens: the check must come before any request
    result = python(f"""
        from gateway.shell.cli import main

        sys.exit(main(["dlq", "--gateway", "http://127.0.0.1:{port}", "list"]))
    """, refuse_mocks=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the password of operator 'operator' is needed and there is no terminal to ask on: "
        "set $EGOV_OPERATOR_PASSWORD (or give --password)"
    ]


def test_import_contracts_are_kept() -> None:
    """`lint-imports` over pyproject.toml's contracts, so that `pytest` alone guards them too."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert "No import circles anywhere KEPT" in result.stdout
    assert "The product never imports the simulated world KEPT" in result.stdout


def test_demo_banner_shows_how_to_run_dlq_as_the_demo_operator(pki, tmp_path: Path, capsys) -> None:
    import shlex

    from gateway.shell.cli import _parser
    from mocks.demo_secrets import DEMO_OPERATOR, demo_secrets
    from mocks.world.demo import _print_banner, demo_settings

    urls = {name: f"http://127.0.0.1:{free_port()}"
            for name in ("library", "elicense", "callback", "revocation", "portal", "desk", "tsa", "deposit")}
    port = free_port()
    settings = demo_settings(tmp_path, pki.root, port=port, urls=urls)
    passwords = demo_secrets(tmp_path)
    _print_banner(settings, "redis://127.0.0.1:1", urls, passwords)
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if " dlq" in line]
    assert lines and all(line.startswith(f"EGOV_OPERATOR_PASSWORD={passwords.operator} ") for line in lines)
    for line in lines:
        argv = shlex.split(line)[2:]  # after the assignment and the program
        if "<sessionId>" in line:
            argv = [arg.replace("<sessionId>", "S-1") for arg in argv]
        args = _parser({}).parse_args(argv)
        assert args.command == "dlq"
        assert args.gateway == f"http://127.0.0.1:{port}", "a non-default port must be named"
        assert args.sender == DEMO_OPERATOR
    submit = [line for line in out.splitlines() if " submit" in line]
    assert submit and all(f"--state-dir {tmp_path}" in line for line in submit)
    logs = [shlex.split(line.strip())[1:] for line in out.splitlines() if "egov-gateway log " in line]
    assert len(logs) == 2
    for argv in logs:
        args = _parser({}).parse_args([arg.replace("<messageId>", "M-1") for arg in argv])
        assert (args.command, args.state_dir) == ("log", tmp_path)
