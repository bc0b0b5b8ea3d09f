"""Identity rules: the IIN/BIN in the document is the signer's, and organisations sign with the right role."""

from __future__ import annotations

import pytest
from lxml import etree

from signing.applicant import ApplicantKind, ApplicantPolicy, IdentityRejected, check_applicant
from signing.nca import SignerRole, read_identity

INDIVIDUAL = ApplicantPolicy()
ORGANISATION = ApplicantPolicy(kind=ApplicantKind.ORGANISATION,
                               required_roles=frozenset({SignerRole.FIRST_HEAD, SignerRole.CAN_SIGN}))


def identity(pki, handle: str):  # type: ignore[no-untyped-def]
    return read_identity(pki.person(handle).sign.load_certificate())


def document(**values: str) -> etree._Element:
    root = etree.Element("{urn:test}Application")
    for name, value in values.items():
        etree.SubElement(root, f"{{urn:test}}{name}").text = value
    return root


def test_individual_with_own_iin_passes(pki) -> None:
    aigerim = pki.person("aigerim")
    applicant = check_applicant(INDIVIDUAL, document(iin=aigerim.iin), identity(pki, "aigerim"))
    assert applicant.iin == aigerim.iin
    assert applicant.bin is None
    assert "individual" in applicant.roles


def test_value_split_by_a_comment_is_read_whole(pki) -> None:
    iin = pki.person("aigerim").iin
    signed = etree.fromstring(f"<a><iin>{iin[:4]}<!---->{iin[4:]}</iin></a>".encode())
    assert check_applicant(INDIVIDUAL, signed, identity(pki, "aigerim")).iin == iin


@pytest.mark.parametrize(("signer", "values", "code"), [
    ("daniyar", "aigerim", "ID_IIN_MISMATCH"),
    ("aigerim", "bad-checksum", "ID_IIN_INVALID"),
    ("aigerim", "missing", "ID_IIN_INVALID"),
    ("aigerim", "twice", "ID_IIN_INVALID"),
    ("kitap-head", "own", "ID_NOT_INDIVIDUAL_CERTIFICATE"),
])
def test_individual_refusals(pki, signer: str, values: str, code: str) -> None:
    own = pki.person(signer).iin
    if values == "aigerim":
        doc = document(iin=pki.person("aigerim").iin)
    elif values == "bad-checksum":
        doc = document(iin=own[:11] + str((int(own[11]) + 1) % 10))
    elif values == "missing":
        doc = document(email="x@example.kz")
    elif values == "twice":
        doc = document(iin=own)
        etree.SubElement(doc, "{urn:test}iin").text = own
    else:
        doc = document(iin=own)
    with pytest.raises(IdentityRejected) as refused:
        check_applicant(INDIVIDUAL, doc, identity(pki, signer))
    assert refused.value.code == code


@pytest.mark.parametrize("signer", ["kitap-head", "kitap-signer"])
def test_head_or_signing_employee_may_apply_for_their_organisation(pki, signer: str) -> None:
    bin_ = pki.organisations["kitap"]["bin"]
    applicant = check_applicant(ORGANISATION, document(bin=bin_), identity(pki, signer))
    assert applicant.bin == bin_
    assert applicant.iin == pki.person(signer).iin
    assert applicant.organisation


@pytest.mark.parametrize(("signer", "org", "code"), [
    ("kitap-clerk", "kitap", "ID_ROLE_MISSING"),
    ("murager-head", "kitap", "ID_BIN_MISMATCH"),
    ("aigerim", "kitap", "ID_NOT_ORGANISATION_CERTIFICATE"),
    ("kitap-head", "bad-checksum", "ID_BIN_INVALID"),
])
def test_organisation_refusals(pki, signer: str, org: str, code: str) -> None:
    if org == "bad-checksum":
        good = pki.organisations["kitap"]["bin"]
        bin_ = good[:11] + str((int(good[11]) + 1) % 10)
    else:
        bin_ = pki.organisations[org]["bin"]
    with pytest.raises(IdentityRejected) as refused:
        check_applicant(ORGANISATION, document(bin=bin_), identity(pki, signer))
    assert refused.value.code == code


def test_any_employee_when_no_role_is_required(pki) -> None:
    policy = ApplicantPolicy(kind=ApplicantKind.ORGANISATION)
    bin_ = pki.organisations["kitap"]["bin"]
    assert check_applicant(policy, document(bin=bin_), identity(pki, "kitap-clerk")).bin == bin_
