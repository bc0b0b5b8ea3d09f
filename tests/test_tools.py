"""`egov-gateway sign` and `egov-gateway verify` as a tester uses them."""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from gateway.shell.cli import main
from mocks.portal.applicant import reader_registration

XADES = "http://uri.etsi.org/01903/v1.3.2#"


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
