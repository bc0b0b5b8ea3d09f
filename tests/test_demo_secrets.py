"""Each sender its own secret: distinct placeholder hashes in the example, which `serve` refuses, and the
demo's own passwords made at its first start, kept in the state directory and read by its tools."""

from __future__ import annotations

import json
import re
import stat
import tomllib
from pathlib import Path

import pytest

from gateway.access.published import PUBLISHED_HASHES, refuse_published_hashes
from gateway.access.senders import check_password, hash_password
from gateway.config import ConfigError, SenderSettings
from gateway.shell.cli import main
from mocks.demo_secrets import (
    DEMO_DESK,
    DEMO_OPERATOR,
    DEMO_PULL_SENDER,
    DEMO_SENDER,
    demo_secrets,
    read_demo_secrets,
)
from tests.helpers import ROOT, free_port

EXAMPLE = ROOT / "gateway.example.toml"
OLD_SHARED_HASH = "scrypt$16384$8$1$ocvpsgxX1ETfNl5ahtn4hQ==$VmZLKLkLfSFpWVXnhrnVgVarc1tsoFdY1DZDWIYuolo="


def example_hashes() -> dict[str, str]:
    senders = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["senders"]
    return {sender_id: table["password_hash"] for sender_id, table in senders.items()}


def test_the_example_gives_each_sender_its_own_hash_and_lists_them_as_published() -> None:
    hashes = example_hashes()
    assert len(hashes) >= 3 and len(set(hashes.values())) == len(hashes), "one hash shared by several roles"
    salts = {value.split("$")[4] for value in hashes.values()}
    assert len(salts) == len(hashes)
    assert set(hashes.values()) <= PUBLISHED_HASHES, "a hash of the example is missing from PUBLISHED_HASHES"
    assert OLD_SHARED_HASH in PUBLISHED_HASHES
    assert "demo-password" not in EXAMPLE.read_text(encoding="utf-8"), "no password is printed in the example"


def test_serve_refuses_the_example_naming_the_sender_key(capsys) -> None:
    assert main(["serve", "--config", str(EXAMPLE), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "senders.portal.password_hash: this is a published example hash" in err


def test_serve_refuses_a_copied_example_with_one_hash_left(tmp_path: Path, capsys) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for sender_id, value in example_hashes().items():
        if sender_id != DEMO_DESK:
            text = text.replace(value, hash_password(f"{sender_id}-own"))
    config = tmp_path / "gateway.toml"
    config.write_text(text, encoding="utf-8")
    assert main(["serve", "--config", str(config), "--port", str(free_port())]) == 2
    assert f"senders.{DEMO_DESK}.password_hash" in capsys.readouterr().err


def test_refuse_published_hashes() -> None:
    refuse_published_hashes({"portal": SenderSettings(password_hash=hash_password("own"))})  # nothing raised
    with pytest.raises(ConfigError, match=r"^senders\.operator\.password_hash: "):
        refuse_published_hashes({"operator": SenderSettings(password_hash=OLD_SHARED_HASH)})


def test_the_demo_makes_its_own_passwords_once_and_keeps_them_private(tmp_path: Path) -> None:
    assert read_demo_secrets(tmp_path) is None
    made = demo_secrets(tmp_path)
    path = tmp_path / "demo-secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords = [made.portal, made.desk, made.operator, made.pull]
    assert len(set(passwords)) == 4 and all(len(p) >= 20 for p in passwords)
    assert demo_secrets(tmp_path) == made == read_demo_secrets(tmp_path), "kept across starts"
    assert made.of(DEMO_SENDER) == made.portal and made.of(DEMO_OPERATOR) == made.operator
    assert made.of(DEMO_PULL_SENDER) == made.pull
    assert made.of("nobody") is None
    assert demo_secrets(tmp_path / "other") != made, "every state directory its own"


def test_a_state_directory_from_before_the_pull_sender_gets_its_password_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "demo-secrets.json"
    old = {DEMO_SENDER: "p" * 24, DEMO_DESK: "d" * 24, DEMO_OPERATOR: "o" * 24}
    path.write_text(json.dumps(old), encoding="utf-8")
    path.chmod(0o600)
    kept = read_demo_secrets(tmp_path)
    assert kept is not None and kept.of(DEMO_PULL_SENDER) is None, "read as it is until the demo starts"
    made = demo_secrets(tmp_path)
    assert (made.portal, made.desk, made.operator) == ("p" * 24, "d" * 24, "o" * 24)
    assert len(made.pull) >= 20 and demo_secrets(tmp_path) == made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_demo_settings_use_the_kept_passwords(pki, tmp_path: Path) -> None:
    from mocks.world.demo import demo_settings

    urls = {name: f"http://127.0.0.1:{free_port()}"
            for name in ("library", "elicense", "callback", "revocation", "deposit")}
    settings = demo_settings(tmp_path, pki.root, port=free_port(), urls=urls)
    made = demo_secrets(tmp_path)
    senders = settings.senders
    assert check_password(made.portal, senders[DEMO_SENDER].password_hash)
    assert check_password(made.desk, senders[DEMO_DESK].password_hash)
    assert check_password(made.operator, senders[DEMO_OPERATOR].password_hash)
    assert check_password(made.pull, senders[DEMO_PULL_SENDER].password_hash)
    assert senders[DEMO_PULL_SENDER].callback_url is None, "its answers wait for getMessages"
    assert senders[DEMO_SENDER].callback_url == f"{urls['callback']}/shep/client"
    pushed = demo_settings(tmp_path, pki.root, port=free_port(), urls=urls, callback_url="http://127.0.0.1:1/c")
    assert pushed.senders[DEMO_SENDER].callback_url == "http://127.0.0.1:1/c"
    assert not check_password(made.portal, senders[DEMO_OPERATOR].password_hash), "one password, one role"
    refuse_published_hashes(senders)


def test_demo_prints_one_password_for_scripts(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--print-password", "operator", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == demo_secrets(tmp_path).operator
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--print-password", "nobody", "--state-dir", str(tmp_path)])
    assert exited.value.code == 2


def test_submit_without_a_password_or_demo_secrets_says_how_to_get_one(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("EGOV_SENDER_PASSWORD", raising=False)
    main(["submit", "--as", "aigerim", "--state-dir", str(tmp_path), "--gateway", f"http://127.0.0.1:{free_port()}"])
    assert "no --password, and " + str(tmp_path / "demo-secrets.json") in capsys.readouterr().err


def test_the_portal_site_reads_the_demo_password_beside_the_pki(tmp_path: Path, capsys, monkeypatch) -> None:
    from mocks.portal.web.__main__ import main as portal_main

    monkeypatch.delenv("EGOV_SENDER_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as exited:
        portal_main(["--pki", str(tmp_path / "pki")])
    assert exited.value.code == 2
    assert "demo-secrets.json" in capsys.readouterr().err


def test_the_readme_reads_the_demo_passwords_instead_of_printing_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "demo-password" not in readme
    lines = [line for line in readme.splitlines() if "EGOV_OPERATOR_PASSWORD=" in line or "curl -u" in line]
    assert lines and all(re.search(r"\$\(\.venv/bin/egov-gateway demo --print-password \w+\)", line)
                         for line in lines)
