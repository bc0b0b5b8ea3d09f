"""`egov-gateway sign` and `verify` as a tester uses them, and `dlq` as an operator does."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.shell.cli import main
from mocks.pki import OCSP_URL, load_pki
from mocks.pki.revocation import create_revocation_app
from mocks.portal.applicant import reader_registration
from tests.helpers import (
    CLI,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    ROOT,
    XADES,
    free_port,
    kazneb_schema,
    mock_control,
)

SAMPLE = ROOT / "scenarios" / "samples" / "reader-registration.xml"


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
                 "--intermediate", str(pki.intermediates[0]), "--revocation", "off"]) == 0
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
    assert main(["verify", "--in", str(signed), "--state-dir", str(pki.root.parent), "--revocation", "off"]) == 0
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
    assert main(["verify", "--in", str(signed), "--state-dir", str(tmp_path / "state"), "--revocation", "off"]) == 0
    assert "TOTAL_PASSED" in capsys.readouterr().out
    written = (copy / "trust.toml").stat().st_mtime_ns
    load_pki(copy)
    assert (copy / "trust.toml").stat().st_mtime_ns == written, "an unchanged trust.toml is not rewritten"


async def test_verify_checks_the_whole_path_at_the_responder_the_trust_toml_names(pki, tmp_path: Path, capsys,
                                                                                 aiohttp_server) -> None:
    """The README's `verify --in signed.xml` beside the demo: the NCA intermediate names no OCSP responder or CRL,
    so only the ``[revocation]`` of the PKI's trust.toml (the demo gateway's) lets the whole path be checked."""
    signed = signed_application(pki, tmp_path)
    copy = tmp_path / "state" / "pki"
    shutil.copytree(pki.root, copy)
    load_pki(copy)
    responder = await aiohttp_server(create_revocation_app(pki))
    trust = copy / "trust.toml"
    written = trust.read_text()
    assert "[revocation]" in written and OCSP_URL in written
    trust.write_text(written.replace("http://127.0.0.1:8790", f"http://127.0.0.1:{responder.port}"))
    verify = ["verify", "--in", str(signed), "--state-dir", str(tmp_path / "state"), "--json"]
    capsys.readouterr()
    assert await asyncio.to_thread(main, verify) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indication"] == "TOTAL_PASSED" and report["revocation"]["status"] == "good"
    trust.write_text(written.split("[revocation]")[0])  # the certificates' own: 8790, none for the NCA
    assert await asyncio.to_thread(main, verify) == 1
    assert json.loads(capsys.readouterr().out)["sub_indication"] == "TRY_LATER"


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


# --- verify checks revocation as the gateway does ------------------------------------------------------


def revocation_config(pki, tmp_path: Path, revocation: str) -> Path:
    """A gateway configuration trusting the test PKI, with this [revocation] table."""
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
[revocation]
{revocation}
""")
    return config


async def verify_in_thread(*argv: str) -> int:
    """`egov-gateway verify` off the loop, which serves the OCSP responder meanwhile."""
    return await asyncio.to_thread(main, ["verify", *argv])


def signed_by(pki, tmp_path: Path, handle: str) -> Path:
    signed = tmp_path / f"signed-{handle}.xml"
    source = tmp_path / f"application-{handle}.xml"
    source.write_bytes(etree.tostring(reader_registration(pki.person(handle))))
    person = pki.person(handle)
    assert main(["sign", "--cert", str(person.sign.cert), "--key", str(person.sign.key),
                 "--in", str(source), "--out", str(signed)]) == 0
    return signed


async def test_verify_with_a_config_asks_its_ocsp_responder_and_refuses_a_revoked_signer(
        pki, revocation_url: str, http, tmp_path: Path, capsys) -> None:
    config = revocation_config(pki, tmp_path, f'ocsp_url = "{revocation_url}/ocsp"\n'
                                              f'crl_urls = ["{revocation_url}/crl/nca.crl"]')
    signed = signed_by(pki, tmp_path, "saule")
    capsys.readouterr()
    assert await verify_in_thread("--in", str(signed), "--config", str(config)) == 0
    assert "Revocation       good via ocsp" in capsys.readouterr().out
    serial = format(pki.person("saule").sign.load_certificate().serial_number, "x")
    await mock_control(http, revocation_url, "revoke", {"serial": serial, "reason": "key_compromise"})
    try:
        assert await verify_in_thread("--in", str(signed), "--config", str(config), "--json") == 1
        report = json.loads(capsys.readouterr().out)
        assert (report["indication"], report["sub_indication"], report["error_code"]) == (
            "TOTAL_FAILED", "REVOKED", "SIG_REVOKED")
        assert await verify_in_thread("--in", str(signed), "--config", str(config), "--revocation", "off") == 0
        out = capsys.readouterr().out
        assert "TOTAL_PASSED" in out and "Warning" in out, "off is explicit, and the report says it was not checked"
    finally:
        await mock_control(http, revocation_url, "reset")


async def test_verify_without_an_answer_is_try_later_and_says_how_to_skip(pki, tmp_path: Path, capsys) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    config = revocation_config(pki, tmp_path, f'ocsp_url = "{nowhere}/ocsp"\ncrl_urls = ["{nowhere}/crl"]\n'
                                              "timeout_seconds = 2")
    signed = signed_by(pki, tmp_path, "aigerim")
    capsys.readouterr()
    assert await verify_in_thread("--in", str(signed), "--config", str(config)) == 1
    captured = capsys.readouterr()
    assert "INDETERMINATE / TRY_LATER" in captured.out
    assert "--revocation off" in captured.err and "Traceback" not in captured.err


async def test_verify_with_the_demo_state_uses_hard_fail_and_the_certificates_urls(pki, tmp_path: Path,
                                                                                   capsys) -> None:
    """The test PKI's certificates name the demo's OCSP responder (127.0.0.1:8790)."""
    url = pki.person("aigerim").sign.load_certificate().extensions.get_extension_for_class(
        x509.AuthorityInformationAccess).value[0].access_location.value
    assert url == "http://127.0.0.1:8790/ocsp"
    if port_open(8790):
        pytest.skip("a demo is running on this machine: its responder would answer")
    signed = signed_by(pki, tmp_path, "aigerim")
    capsys.readouterr()
    assert await verify_in_thread("--in", str(signed), "--state-dir", str(pki.root.parent)) == 1
    captured = capsys.readouterr()
    assert "TRY_LATER" in captured.out and "--revocation off" in captured.err


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the README's sign example --------------------------------------------------------------------------


def test_the_sample_document_is_aigerims_valid_reader_registration(pki) -> None:
    sample = etree.parse(str(SAMPLE)).getroot()
    assert kazneb_schema("reader-registration.xsd").validate(sample)
    assert sample.findtext("{urn:egov:kazneb:reader-registration:v1}iin") == pki.person("aigerim").iin


async def test_the_readme_sign_and_verify_example_runs_as_written(pki, tmp_path: Path) -> None:
    """The README's two lines, run from a checkout whose .egov holds the demo's PKI."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    shutil.copytree(pki.root, tmp_path / ".egov" / "pki")
    readme = (ROOT / "README.md").read_text()
    lines = [line.split("#")[0].split() for line in readme.splitlines()
             if line.startswith((".venv/bin/egov-gateway sign ", ".venv/bin/egov-gateway verify "))]
    assert [line[1] for line in lines] == ["sign", "verify"]

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    signed = await asyncio.to_thread(run, lines[0][1:])
    assert signed.returncode == 0, signed.stderr
    assert (tmp_path / "signed.xml").exists()
    verified = await asyncio.to_thread(run, lines[1][1:])
    if port_open(8790):  # a demo is running: its OCSP responder answers
        assert verified.returncode == 0, verified.stdout + verified.stderr
    else:  # without the demo: TRY_LATER, and the hint the README gives works
        assert verified.returncode == 1 and "--revocation off" in verified.stderr
        verified = await asyncio.to_thread(run, [*lines[1][1:], "--revocation", "off"])
        assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "TOTAL_PASSED" in verified.stdout


# -------------------------------------------------------------------------------------- verify --at


def signed_with_certificate(pki, person_handle: str, tmp_path: Path) -> tuple[Path, object]:
    person = pki.person(person_handle)
    source, signed = tmp_path / f"{person_handle}.xml", tmp_path / f"{person_handle}.signed.xml"
    source.write_bytes(etree.tostring(reader_registration(person)))
    assert main(["sign", "--cert", str(person.sign.cert), "--key", str(person.sign.key),
                 "--in", str(source), "--out", str(signed)]) == 0
    return signed, person.sign.load_certificate()


def verify_json(capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["verify", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_verify_at_a_time_inside_an_expired_certificates_validity(pki, tmp_path: Path, capsys) -> None:
    """An archived document signed by a since-expired certificate: valid as of then, refused as of now."""
    signed, certificate = signed_with_certificate(pki, "expired", tmp_path)
    trust = ["--trust", str(pki.trust_anchors[0]), "--intermediate", str(pki.intermediates[0])]
    then = certificate.not_valid_before_utc + (certificate.not_valid_after_utc - certificate.not_valid_before_utc) / 2
    code, report = verify_json(capsys, "--in", str(signed), *trust, "--at", then.isoformat())
    assert (code, report["indication"]) == (0, "TOTAL_PASSED"), report["errors"]
    assert report["validation_time"] == then.isoformat()
    assert report["revocation"]["status"] == "not_checked"  # --at: revocation off unless asked
    after = certificate.not_valid_after_utc + (certificate.not_valid_after_utc - then)
    code, report = verify_json(capsys, "--in", str(signed), *trust, "--at", after.isoformat())
    assert code == 1
    assert (report["error_code"], report["sub_indication"], report["indication"]) == (
        "SIG_EXPIRED", "OUT_OF_BOUNDS_NO_POE", "INDETERMINATE")
    code, report = verify_json(capsys, "--in", str(signed), *trust, "--revocation", "off")  # now: expired too
    assert (code, report["error_code"]) == (1, "SIG_EXPIRED")


def test_verify_at_before_a_certificate_starts_is_not_yet_valid(pki, tmp_path: Path, capsys) -> None:
    signed, certificate = signed_with_certificate(pki, "aigerim", tmp_path)
    before = certificate.not_valid_before_utc.replace(year=certificate.not_valid_before_utc.year - 1)
    code, report = verify_json(capsys, "--in", str(signed), "--trust", str(pki.trust_anchors[0]), "--intermediate",
                               str(pki.intermediates[0]), "--at", before.strftime("%Y-%m-%dT%H:%M:%S"))
    assert code == 1
    assert (report["error_code"], report["sub_indication"], report["indication"]) == (
        "SIG_NOT_YET_VALID", "NOT_YET_VALID", "TOTAL_FAILED")
    assert report["validation_time"] == before.isoformat(), "a time without a zone is UTC"


@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_verify_with_only_the_intermediate_trusted_in_pem_or_der(pki, tmp_path: Path, capsys, encoding: str) -> None:
    signed, _ = signed_with_certificate(pki, "aigerim", tmp_path)
    intermediate = x509.load_pem_x509_certificate(pki.intermediates[0].read_bytes())
    anchor = tmp_path / f"nca.{encoding}"
    anchor.write_bytes(intermediate.public_bytes(
        serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER))
    now = datetime.now(UTC).isoformat()
    code, report = verify_json(capsys, "--in", str(signed), "--trust", str(anchor), "--at", now)
    assert (code, report["indication"]) == (0, "TOTAL_PASSED"), report["errors"]
    assert report["chain"][-1]["subject"] == intermediate.subject.rfc4514_string()
    assert len(report["chain"]) == 2, "the path ends at the trusted intermediate"


def test_verify_with_the_root_in_der_and_pem_together(pki, tmp_path: Path, capsys) -> None:
    signed, _ = signed_with_certificate(pki, "aigerim", tmp_path)
    root = x509.load_pem_x509_certificate(pki.trust_anchors[0].read_bytes())
    der = tmp_path / "root.cer"
    der.write_bytes(root.public_bytes(serialization.Encoding.DER))
    code, report = verify_json(capsys, "--in", str(signed), "--trust", str(der), "--trust",
                               str(pki.authorities["foreign-root"].cert), "--intermediate",
                               str(pki.intermediates[0]), "--revocation", "off")
    assert (code, report["indication"]) == (0, "TOTAL_PASSED"), report["errors"]


def test_verify_at_refuses_a_bad_time_and_a_bad_trust_file(pki, tmp_path: Path, capsys) -> None:
    signed, _ = signed_with_certificate(pki, "aigerim", tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "--in", str(signed), "--trust", str(pki.trust_anchors[0]), "--at", "yesterday"])
    assert exit_.value.code == 2
    assert "is not an ISO 8601 time" in capsys.readouterr().err
    junk = tmp_path / "junk.cer"
    junk.write_bytes(b"\x30\x03\x02\x01\x01")
    assert main(["verify", "--in", str(signed), "--trust", str(junk), "--at", "2026-01-01T00:00:00Z"]) == 2
    err = capsys.readouterr().err
    assert "neither PEM nor DER" in err and "Traceback" not in err
