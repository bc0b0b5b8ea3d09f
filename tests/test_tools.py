"""`egov-gateway sign` and `verify` as a tester uses them, and `dlq` as an operator does."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from lxml import etree

from gateway.shell.cli import main
from mocks.pki import load_pki
from mocks.portal.applicant import reader_registration
from tests.helpers import OPERATOR, OPERATOR_PASSWORD, PORTAL, PORTAL_PASSWORD, XADES, free_port


def write_application(pki, tmp_path: Path) -> Path:
    source = tmp_path / "application.xml"
    source.write_bytes(etree.tostring(reader_registration(pki.person("aigerim"))))
    return source


def test_sign_with_p12_then_verify_passes(pki, tmp_path: Path, capsys) -> None:
    source, signed = write_application(pki, tmp_path), tmp_path / "signed.xml"
    person = pki.person("aigerim")
    assert main(["sign", "--p12", str(person.sign.p12), "--password", pki.p12_password,
                 "--in", str(source), "--out", str(signed)]) == 0
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--trust", str(pki.trust_anchors[0]),
                 "--intermediate", str(pki.intermediates[0])]) == 0
    out = capsys.readouterr().out
    assert "TOTAL_PASSED" in out
    assert person.iin in out  # the tester's own tool shows the full signer identity
    assert "Chain" in out


def test_verify_json_explains_a_tampered_document(pki, tmp_path: Path, capsys) -> None:
    source, signed = write_application(pki, tmp_path), tmp_path / "signed.xml"
    person = pki.person("aigerim")
    main(["sign", "--cert", str(person.sign.cert), "--key", str(person.sign.key),
          "--in", str(source), "--out", str(signed)])
    signed.write_bytes(signed.read_bytes().replace(b"@example.kz", b"@attacker.kz"))
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--json", "--state-dir", str(pki.root.parent)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["indication"] == "TOTAL_FAILED"
    assert report["sub_indication"] == "HASH_FAILURE"
    assert report["error_code"] == "SIG_HASH_FAILURE"
    assert report["errors"]


def test_sign_xades(pki, tmp_path: Path, capsys) -> None:
    source, signed = write_application(pki, tmp_path), tmp_path / "signed.xml"
    files = pki.systems["gateway"]
    assert main(["sign", "--cert", str(files.cert), "--key", str(files.key), "--xades",
                 "--in", str(source), "--out", str(signed)]) == 0
    assert etree.fromstring(signed.read_bytes()).find(f".//{{{XADES}}}SigningTime") is not None
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(pki.root.parent)]) == 0
    assert "XAdES-BES" in capsys.readouterr().out


def test_untrusted_signer_fails_with_reason(pki, tmp_path: Path, capsys) -> None:
    source, signed = write_application(pki, tmp_path), tmp_path / "signed.xml"
    stranger = pki.person("stranger")
    main(["sign", "--cert", str(stranger.sign.cert), "--key", str(stranger.sign.key),
          "--in", str(source), "--out", str(signed)])
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(pki.root.parent)]) == 1
    out = capsys.readouterr().out
    assert "NO_CERTIFICATE_CHAIN_FOUND" in out
    assert "Error" in out


def test_unusable_input_is_exit_2_without_traceback(pki, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    assert main(["verify", "--in", str(bad), "--state-dir", str(pki.root.parent)]) == 2
    assert main(["verify", "--in", str(tmp_path / "missing.xml"), "--state-dir", str(pki.root.parent)]) == 2
    err = capsys.readouterr().err
    assert "not acceptable XML" in err and "cannot read" in err
    assert "Traceback" not in err
    assert main(["sign", "--p12", str(pki.person("aigerim").sign.p12), "--password", "wrong",
                 "--in", str(bad), "--out", str(tmp_path / "x.xml")]) == 2
    assert "cannot open PKCS#12" in capsys.readouterr().err


def signed_application(pki, tmp_path: Path) -> Path:
    source, signed = write_application(pki, tmp_path), tmp_path / "signed.xml"
    person = pki.person("aigerim")
    assert main(["sign", "--cert", str(person.sign.cert), "--key", str(person.sign.key),
                 "--in", str(source), "--out", str(signed)]) == 0
    return signed


def test_verify_without_trust_toml_is_exit_2_saying_what_to_give(pki, tmp_path: Path, capsys) -> None:
    signed = signed_application(pki, tmp_path)
    state = tmp_path / "no-pki-here"
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(state)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"error: {state.resolve() / 'pki' / 'trust.toml'} does not exist: give --trust PEM or --config FILE, "
        f"or --state-dir of a test PKI (`egov-gateway pki list --dir {state.resolve() / 'pki'}` writes the file)"
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("# no [trust] table\n", "[trust] names no anchors"),
    ("[trust]\nanchors = []\n", "[trust] names no anchors"),
    ("[trust\n", "not valid TOML"),
    ('[trust]\nanchors = "root.pem"\n', "trust.anchors"),
])
def test_verify_with_an_unusable_trust_toml_is_exit_2(pki, tmp_path: Path, capsys, text: str,
                                                      message: str) -> None:
    signed = signed_application(pki, tmp_path)
    (tmp_path / "state" / "pki").mkdir(parents=True)
    trust = tmp_path / "state" / "pki" / "trust.toml"
    trust.write_text(text)
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {trust}: "), err
    assert message in err and "Traceback" not in err


def test_verify_with_a_trust_toml_naming_a_missing_anchor_is_exit_2(pki, tmp_path: Path, capsys) -> None:
    signed = signed_application(pki, tmp_path)
    (tmp_path / "state" / "pki").mkdir(parents=True)
    (tmp_path / "state" / "pki" / "trust.toml").write_text('[trust]\nanchors = ["gone.pem"]\n')
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert "gone.pem" in err and "Traceback" not in err


def test_loading_a_pki_brings_its_trust_toml_in_step(pki, tmp_path: Path, capsys) -> None:
    signed = signed_application(pki, tmp_path)
    copy = tmp_path / "state" / "pki"
    shutil.copytree(pki.root, copy)
    (copy / "trust.toml").write_text('[trust]\nanchors = ["stale.pem"]\n')
    load_pki(copy)
    capsys.readouterr()
    assert main(["verify", "--in", str(signed), "--state-dir", str(tmp_path / "state")]) == 0
    assert "TOTAL_PASSED" in capsys.readouterr().out
    written = (copy / "trust.toml").stat().st_mtime_ns
    load_pki(copy)
    assert (copy / "trust.toml").stat().st_mtime_ns == written, "an unchanged trust.toml is not rewritten"


async def dlq(gw, *argv: str, sender: str = OPERATOR) -> int:  # type: ignore[no-untyped-def]
    """`egov-gateway dlq` against the running test gateway (in a thread: it blocks on urllib)."""
    return await asyncio.to_thread(main, ["dlq", "--gateway", gw.url, "--sender", sender, *argv])


async def test_dlq_lists_with_the_password_from_the_environment(gw, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EGOV_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
    assert await dlq(gw, "list") == 0
    assert capsys.readouterr().out.strip() == "no dead letters"


@pytest.mark.parametrize(("sender", "password", "code"), [
    (OPERATOR, "wrong-password", "CLIENT_BAD_CREDENTIALS"),
    (PORTAL, PORTAL_PASSWORD, "CLIENT_ACCESS_DENIED"),  # a sender without operator = true
])
async def test_dlq_refused_by_the_gateway_is_exit_1_with_the_code(gw, capsys, monkeypatch, sender: str,
                                                                   password: str, code: str) -> None:
    monkeypatch.setenv("EGOV_OPERATOR_PASSWORD", password)
    assert await dlq(gw, "list", sender=sender) == 1
    assert capsys.readouterr().err.startswith(f"error: {code}: ")


async def test_dlq_replay_of_an_unknown_session_names_the_code(gw, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EGOV_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
    for session in ("no-such-session", "a/b?c"):  # quoted: still one path segment, the same answer
        assert await dlq(gw, "replay", "--session", session) == 1
        assert capsys.readouterr().err.startswith("error: CLIENT_NOT_FOUND: ")
    assert await dlq(gw, "replay", "--dead-id", "1-0") == 2
    assert capsys.readouterr().err.strip() == "error: --dead-id needs --service"


def test_dlq_to_a_gateway_that_is_not_there_is_exit_1(capsys, monkeypatch) -> None:
    monkeypatch.setenv("EGOV_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["dlq", "--gateway", url, "list"]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot reach {url}: ")
