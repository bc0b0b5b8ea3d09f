"""The NCA-like test PKI and reading identities from its certificates (signing.nca)."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

import mocks.pki
from mocks.pki import OCSP_URL, TestPki, ensure_pki, generate_pki, load_pki
from mocks.pki.people import PEOPLE, SYSTEMS
from signing.idnumbers import parse_bin, parse_iin
from signing.nca import KeyPurpose, SignerRole, read_identity
from tests.der import der_replace_oid

HANDLES = [spec.handle for spec in PEOPLE]
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def verifier(
    pki: TestPki, at: datetime.datetime | None = None, roots: list[x509.Certificate] | None = None
) -> ClientVerifier:
    if roots is None:
        roots = [x509.load_pem_x509_certificate(p.read_bytes()) for p in pki.trust_anchors]
    builder = PolicyBuilder().store(Store(roots))
    if at is not None:
        builder = builder.time(at)
    return builder.extension_policies(
        ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
    ).build_client_verifier()


def intermediates(pki: TestPki) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.read_bytes()) for p in pki.intermediates]


# --- identities ------------------------------------------------------------------------------


@pytest.mark.parametrize("handle", HANDLES)
@pytest.mark.parametrize("purpose", ["sign", "auth"])
def test_person_identity(pki: TestPki, handle: str, purpose: str) -> None:
    person = pki.person(handle)
    identity = read_identity(getattr(person, purpose).load_certificate())
    legal = person.kind == "employee"

    assert identity.iin == person.iin
    info = parse_iin(person.iin)
    assert (info.birth_date, info.sex) == (person.birth_date, person.sex)
    assert identity.bin == person.bin
    if legal:
        assert parse_bin(person.bin).entity_type == "resident"
        assert person.bin == pki.organisations[person.org]["bin"]
    assert identity.common_name == f"{person.surname} {person.name}"
    assert (identity.surname, identity.given_name) == (person.surname, person.given_name)
    assert identity.organisation == person.organisation
    assert identity.country == "KZ"
    assert identity.roles == frozenset(SignerRole(r) for r in person.roles)
    assert identity.key_purpose == KeyPurpose(purpose)
    assert identity.is_legal_entity is legal
    assert identity.public_key_algorithm == "rsa"
    expected_policy = {
        (False, "sign"): "1.2.398.3.3.2.3",
        (False, "auth"): "1.2.398.3.3.2.4",
        (True, "sign"): "1.2.398.3.3.2.1",
        (True, "auth"): "1.2.398.3.3.2.2",
    }[legal, purpose]
    assert identity.policies == (expected_policy,)
    assert identity.not_before.tzinfo is not None
    assert person.iin not in repr(identity)
    assert person.iin not in identity.display_name()


def test_roles_per_person(pki: TestPki) -> None:
    def roles(handle: str) -> frozenset[SignerRole]:
        return read_identity(pki.person(handle).sign.load_certificate()).roles

    assert roles("aigerim") == {SignerRole.INDIVIDUAL}
    for org in ("kitap", "murager"):
        assert roles(f"{org}-head") == {SignerRole.ORGANISATION, SignerRole.FIRST_HEAD}
        assert roles(f"{org}-signer") == {SignerRole.ORGANISATION, SignerRole.CAN_SIGN}
        assert roles(f"{org}-clerk") == {SignerRole.ORGANISATION, SignerRole.EMPLOYEE}


def test_display_name(pki: TestPki) -> None:
    identity = read_identity(pki.person("saule").sign.load_certificate())
    assert identity.display_name() == "ТОҚТАРОВА САУЛЕ НҰРЛАНҚЫЗЫ"
    identity = read_identity(pki.person("kitap-head").sign.load_certificate())
    assert identity.display_name() == (
        "САРСЕНБАЕВА ГУЛЬНАР ЕРЖАНОВНА, Абай атындағы облыстық әмбебап ғылыми кітапхана"
    )


@pytest.mark.parametrize("name", [spec.name for spec in SYSTEMS])
def test_system_identity(pki: TestPki, name: str) -> None:
    cert = pki.systems[name].load_certificate()
    identity = read_identity(cert)
    assert identity.iin is None
    assert identity.bin == pki.system_bins[name]
    parse_bin(identity.bin)
    assert identity.common_name == name
    assert identity.display_name() == f"{name}, {identity.organisation}"
    assert identity.key_purpose is KeyPurpose.SIGN
    assert identity.is_legal_entity
    assert identity.policies == ("1.2.398.3.3.2.1",)
    assert SignerRole.ORGANISATION in identity.roles
    verifier(pki).verify(cert, intermediates(pki))


# --- chain and validity ----------------------------------------------------------------------


@pytest.mark.parametrize("handle", [h for h in HANDLES if h not in ("expired", "future", "stranger")])
def test_chain_verifies(pki: TestPki, handle: str) -> None:
    for files in (pki.person(handle).sign, pki.person(handle).auth):
        verified = verifier(pki).verify(files.load_certificate(), intermediates(pki))
        assert [c.subject for c in verified.chain[1:]] == [
            pki.authorities["nca"].load_certificate().subject,
            pki.authorities["root"].load_certificate().subject,
        ]


def test_foreign_person_does_not_verify(pki: TestPki) -> None:
    stranger = pki.person("stranger")
    foreign_ca = pki.authorities["foreign-ca"].load_certificate()
    for files in (stranger.sign, stranger.auth):
        with pytest.raises(VerificationError):
            verifier(pki).verify(files.load_certificate(), [*intermediates(pki), foreign_ca])
    # It is well formed: trusting the foreign root makes it verify.
    foreign_root = pki.authorities["foreign-root"].load_certificate()
    verified = verifier(pki, roots=[foreign_root]).verify(stranger.sign.load_certificate(), [foreign_ca])
    assert verified.chain[-1] == foreign_root


def test_expired_person(pki: TestPki) -> None:
    cert = pki.person("expired").sign.load_certificate()
    assert cert.not_valid_after_utc < NOW - datetime.timedelta(days=364)
    assert cert.not_valid_before_utc < NOW - datetime.timedelta(days=729)
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verifier(pki).verify(cert, intermediates(pki))
    # Time is the only fault: at a moment inside its validity it verifies.
    verifier(pki, cert.not_valid_before_utc + datetime.timedelta(days=10)).verify(cert, intermediates(pki))


def test_future_person(pki: TestPki) -> None:
    cert = pki.person("future").sign.load_certificate()
    assert cert.not_valid_before_utc > NOW + datetime.timedelta(days=29)
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verifier(pki).verify(cert, intermediates(pki))
    verifier(pki, cert.not_valid_before_utc + datetime.timedelta(days=1)).verify(cert, intermediates(pki))


def test_current_validity(pki: TestPki) -> None:
    cert = pki.person("aigerim").sign.load_certificate()
    assert NOW - datetime.timedelta(days=2) < cert.not_valid_before_utc < NOW
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=365)


def test_ca_certificates(pki: TestPki) -> None:
    root = pki.authorities["root"].load_certificate()
    nca = pki.authorities["nca"].load_certificate()
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "KZ TEST ROOT CA (RSA)"
    assert nca.issuer == root.subject
    assert "ҰЛТТЫҚ КУӘЛАНДЫРУШЫ ОРТАЛЫҚ (RSA) TEST" in nca.subject.rfc4514_string()
    for cert, path_length in ((root, None), (nca, 0)):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == path_length
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
    def ski(cert: x509.Certificate) -> bytes:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def aki(cert: x509.Certificate) -> bytes | None:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier

    assert aki(nca) == ski(root)
    assert aki(pki.person("aigerim").sign.load_certificate()) == ski(nca)
    assert pki.authorities["foreign-ca"].load_certificate().issuer != root.subject


@pytest.mark.parametrize(("purpose", "eku"), [("sign", ExtendedKeyUsageOID.EMAIL_PROTECTION),
                                              ("auth", ExtendedKeyUsageOID.CLIENT_AUTH)])
def test_leaf_extensions(pki: TestPki, purpose: str, eku: x509.ObjectIdentifier) -> None:
    cert = getattr(pki.person("kitap-signer"), purpose).load_certificate()
    ext = cert.extensions
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment is (purpose == "sign")
    assert usage.value.key_encipherment is (purpose == "auth")
    assert eku in ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [OCSP_URL]
    crl = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crl[0].full_name[0].value == "http://127.0.0.1:8790/crl/nca.crl"
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value.startswith("IIN")


# --- files, PKCS#12 and the index ------------------------------------------------------------


def test_keys_match_and_p12(pki: TestPki) -> None:
    root_pem = pki.authorities["root"].load_certificate()
    everyone = [files for p in pki.people.values() for files in (p.sign, p.auth)]
    password = pki.p12_password.encode()
    for files in [*everyone, *pki.systems.values()]:
        cert = files.load_certificate()
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        key_spki = files.load_private_key().public_key().public_bytes(serialization.Encoding.DER, public)
        assert key_spki == cert.public_key().public_bytes(serialization.Encoding.DER, public)
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        key, p12_cert, chain = pkcs12.load_key_and_certificates(files.p12.read_bytes(), password)
        assert p12_cert == cert
        assert key is not None
        assert key.public_key().public_bytes(serialization.Encoding.DER, public) == key_spki
        assert len(chain) == 2
    # The trusted chain travels with NCA-issued keys.
    _, _, chain = pkcs12.load_key_and_certificates(pki.person("aigerim").sign.p12.read_bytes(), password)
    assert root_pem in chain
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(pki.person("aigerim").sign.p12.read_bytes(), b"wrong")


def test_index(pki: TestPki) -> None:
    index = json.loads((pki.root / "index.json").read_text(encoding="utf-8"))
    assert index["version"] == 2
    assert index["p12_password"] == "egov-test"
    assert index["trust_anchors"] == ["ca/root.pem", "ca/gost-root.pem"]
    assert index["intermediates"] == ["ca/nca.pem", "ca/gost-nca.pem"]
    assert set(index["people"]) == set(HANDLES)
    assert set(index["organisations"]) == {"kitap", "murager"}
    assert set(index["systems"]) == {"gateway", "library", "elicense", "portal", "operator"}
    for name in ("root", "nca", "foreign-root", "foreign-ca", "gost-root", "gost-nca"):
        assert (pki.root / f"ca/{name}.pem").is_file()
        assert (pki.root / f"ca/{name}.key.pem").is_file()
    for entry in index["people"].values():
        for purpose in ("sign", "auth"):
            for rel in entry[purpose].values():
                assert not Path(rel).is_absolute()
                assert (pki.root / rel).is_file()
        assert entry["kind"] in ("individual", "employee")
        assert (entry["bin"] is None) is (entry["kind"] == "individual")
    assert index["people"]["aigerim"]["sign"]["p12"] == "people/aigerim/sign.p12"
    assert index["people"]["aigerim"]["gost"]["sign"]["cert"] == "people/aigerim/gost-sign.cert.pem"
    assert {h for h, e in index["people"].items() if "gost" in e} == {
        "aigerim", "saule", "expired", *(h for h in HANDLES if h.startswith(("kitap-", "murager-")))}
    assert index["systems"]["gateway"]["cert"] == "systems/gateway.cert.pem"
    assert load_pki(pki.root) == pki


def test_person_lookup(pki: TestPki) -> None:
    assert pki.person("aigerim").sex == "female"
    assert pki.person("aigerim").birth_date.year == 1988
    assert pki.person("daniyar").sex == "male"
    assert pki.person("saule").birth_date.year == 2001
    with pytest.raises(KeyError, match="aigerim"):
        pki.person("nobody")
    assert pki.person("aigerim").iin not in repr(pki.person("aigerim"))


def test_ensure_pki(pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (pki.root / "ca/root.pem").read_bytes()
    assert ensure_pki(pki.root) == pki  # fresh index: loaded, not regenerated
    assert (pki.root / "ca/root.pem").read_bytes() == before

    calls: list[Path] = []
    monkeypatch.setattr(mocks.pki, "generate_pki", lambda out_dir: calls.append(out_dir) or pki)
    ensure_pki(tmp_path / "missing")
    assert calls == [tmp_path / "missing"]

    stale = tmp_path / "stale"
    stale.mkdir()
    index = json.loads((pki.root / "index.json").read_text(encoding="utf-8"))
    index["created"] = (NOW - datetime.timedelta(days=15)).isoformat()
    (stale / "index.json").write_text(json.dumps(index), encoding="utf-8")
    ensure_pki(stale)
    assert calls[-1] == stale


# --- read_identity on certificates outside the test PKI --------------------------------------


def _bare_certificate(name: x509.Name) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_missing_extensions_grant_nothing() -> None:
    cert = _bare_certificate(x509.Name([
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "IIN12345"),  # malformed: not 12 digits
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IT"),
    ]))
    identity = read_identity(cert)
    assert identity.iin is None and identity.bin is None
    assert identity.common_name == ""
    assert identity.roles == frozenset()
    assert identity.policies == ()
    assert identity.key_purpose is KeyPurpose.UNKNOWN
    assert not identity.is_legal_entity
    assert identity.public_key_algorithm == "ec"
    assert identity.serial_number == 7
    assert identity.display_name() == "(unnamed)"


@pytest.mark.parametrize(
    ("oid", "expected"),
    [
        ("1.2.398.3.10.1.1.1.1", "gost2004"),
        ("1.2.398.3.10.1.1.2.3.1", "gost2015"),
        ("1.2.3.4.5", "1.2.3.4.5"),
    ],
)
def test_gost_key_is_named_without_loading_it(pki: TestPki, oid: str, expected: str) -> None:
    der = pki.person("aigerim").sign.load_certificate().public_bytes(serialization.Encoding.DER)
    patched = x509.load_der_x509_certificate(der_replace_oid(der, "1.2.840.113549.1.1.1", oid))
    assert patched.public_key_algorithm_oid.dotted_string == oid
    identity = read_identity(patched)
    assert identity.public_key_algorithm == expected
    assert identity.iin == pki.person("aigerim").iin
    assert identity.key_purpose is KeyPurpose.SIGN
