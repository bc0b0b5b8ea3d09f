"""Issue the test PKI's keys and certificates and write them to disk.

THIS IS A TEST PKI. Private keys are written as unencrypted PKCS#8 PEM (mode 0600) so
tests and mocks can load them without a password; never reuse them for anything real.
The PKCS#12 bundles are password protected because that is how NCA keys reach users.

Layout under ``out_dir`` (paths in index.json are relative to it)::

    ca/root.pem ca/nca.pem ca/foreign-root.pem ca/foreign-ca.pem   (+ ca/<name>.key.pem)
    people/<handle>/{sign,auth}.{cert.pem,key.pem,p12}
    systems/<name>.{cert.pem,key.pem,p12}
    index.json                                                     (written last)
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from mocks.pki import gost_issue
from mocks.pki.people import ORGANISATIONS, PEOPLE, SYSTEM_ROLES, SYSTEMS, PersonSpec
from mocks.pki.profile import OCSP_URL, Purpose, leaf_builder
from signing.idnumbers import make_bin, make_iin
from signing.nca import (
    SignerRole,
)

INDEX_VERSION = 2
# Placeholders on loopback; the mock revocation service binds here.
# root: its CRL lists the intermediates it revoked; gost-*: the GOST hierarchy's, GOST-signed (NCA's real GOST CRL
# is http://crl.pki.gov.kz/nca_gost_2022.crl, delta nca_d_gost_2022.crl).
CRL_URLS = {"nca": "http://127.0.0.1:8790/crl/nca.crl", "foreign": "http://127.0.0.1:8790/crl/foreign.crl",
            "root": "http://127.0.0.1:8790/crl/root.crl",
            "gost-nca": "http://127.0.0.1:8790/crl/gost-nca.crl", "gost-root": "http://127.0.0.1:8790/crl/gost-root.crl"}

_DAY = datetime.timedelta(days=1)
_YEAR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class _Ca:
    """A CA's certificate and key, kept in memory while issuing."""

    name: str
    """File stem under ca/ (root, nca, foreign-root, foreign-ca)."""
    cert: x509.Certificate
    """The CA certificate."""
    key: rsa.RSAPrivateKey
    """The CA's signing key."""
    chain: tuple[x509.Certificate, ...]
    """This CA and its issuers up to the root, for PKCS#12 bundles."""


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _ski(key: rsa.RSAPrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _make_ca(
    name: str,
    subject: x509.Name,
    issuer: _Ca | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> _Ca:
    key = _new_key()
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # A root may certify any depth; intermediates issue end-entity certificates only.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()), critical=False
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    return _Ca(name=name, cert=cert, key=key, chain=(cert, *(issuer.chain if issuer else ())))


def _issue_leaf(
    ca: _Ca,
    crl_url: str,
    subject: x509.Name,
    purpose: Purpose,
    legal: bool,
    roles: tuple[SignerRole, ...],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    issuer_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()).key_identifier or b""
    cert = leaf_builder(ca.cert.subject, crl_url, subject, purpose, legal, roles, not_before, not_after,
                        _ski(key).digest, issuer_id).public_key(key.public_key()).sign(ca.key, hashes.SHA256())
    return cert, key


class _Writer:
    """Writes PEM/PKCS#12 files under the output directory and returns their relative paths."""

    def __init__(self, root: Path, p12_password: str) -> None:
        self.root = root
        self.encryption = serialization.BestAvailableEncryption(p12_password.encode())

    def _write(self, rel: str, data: bytes, private: bool) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create keys 0600 from the start rather than chmod after the bytes are on disk.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return rel

    def cert(self, rel: str, cert: x509.Certificate) -> str:
        return self._write(rel, cert.public_bytes(serialization.Encoding.PEM), private=False)

    def key(self, rel: str, key: rsa.RSAPrivateKey) -> str:
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return self._write(rel, data, private=True)

    def raw(self, rel: str, key_pem: bytes) -> str:
        """A private key already in PEM (GOST keys)."""
        return self._write(rel, key_pem, private=True)

    def p12(self, rel: str, label: str, cert: x509.Certificate, key: rsa.RSAPrivateKey, ca: _Ca) -> str:
        data = pkcs12.serialize_key_and_certificates(
            label.encode(), key, cert, list(ca.chain), self.encryption
        )
        return self._write(rel, data, private=True)

    def bundle(self, stem: str, label: str, cert: x509.Certificate, key: rsa.RSAPrivateKey, ca: _Ca) -> dict:
        return {
            "cert": self.cert(f"{stem}.cert.pem", cert),
            "key": self.key(f"{stem}.key.pem", key),
            "p12": self.p12(f"{stem}.p12", label, cert, key, ca),
        }


def _validity(kind: str, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    if kind == "expired":
        return now - 2 * _YEAR, now - _YEAR
    if kind == "future":
        start = now + 30 * _DAY
        return start, start + _YEAR
    return now - _DAY, now - _DAY + _YEAR


def _person_subject(spec: PersonSpec, iin: str, org: dict[str, str] | None) -> x509.Name:
    # Attribute order follows real NCA certificates.
    pairs = [
        (NameOID.COMMON_NAME, f"{spec.surname} {spec.name}"),
        (NameOID.SURNAME, spec.surname),
        (NameOID.SERIAL_NUMBER, f"IIN{iin}"),
        (NameOID.COUNTRY_NAME, "KZ"),
    ]
    if org is not None:
        pairs.append((NameOID.ORGANIZATION_NAME, org["name"]))
        pairs.append((NameOID.ORGANIZATIONAL_UNIT_NAME, f"BIN{org['bin']}"))
    pairs.append((NameOID.GIVEN_NAME, spec.patronymic))
    return _name(*pairs)


def _gost_authorities(writer: _Writer, authorities: dict[str, Any], kz: tuple[x509.ObjectIdentifier, str],
                      start: datetime.datetime) -> tuple[Any, Any]:
    """The GOST 34.10-2015 root and NCA intermediate, written to ca/gost-root.pem and ca/gost-nca.pem."""
    root = gost_issue.make_ca("gost-root", _name((NameOID.COMMON_NAME, "KZ TEST ROOT CA (GOST 2015)"), kz), None,
                              start, start + 20 * _YEAR)
    nca = gost_issue.make_ca("gost-nca", _name((NameOID.COMMON_NAME, "ҰЛТТЫҚ КУӘЛАНДЫРУШЫ ОРТАЛЫҚ (GOST) TEST"),
                                               (NameOID.ORGANIZATION_NAME, "NCA TEST"), kz),
                             root, start, start + 10 * _YEAR)
    for ca in (root, nca):
        authorities[ca.name] = {"cert": writer.cert(f"ca/{ca.name}.pem", ca.cert),
                                "key": writer.raw(f"ca/{ca.name}.key.pem", gost_issue.key_pem(ca.scalar))}
    return root, nca


def _gost_person(writer: _Writer, ca: Any, spec: PersonSpec, subject: x509.Name, legal: bool,
                 not_before: datetime.datetime, not_after: datetime.datetime) -> dict[str, Any]:
    """GOST SIGN and AUTH certificates (PEM certificate and key, no PKCS#12) beside the person's RSA ones."""
    files = {}
    for purpose in ("sign", "auth"):
        cert, scalar = gost_issue.issue_leaf(ca, CRL_URLS["gost-nca"], subject, purpose, legal, spec.roles,  # type: ignore[arg-type]
                                             not_before, not_after)
        stem = f"people/{spec.handle}/gost-{purpose}"
        files[purpose] = {"cert": writer.cert(f"{stem}.cert.pem", cert),
                          "key": writer.raw(f"{stem}.key.pem", gost_issue.key_pem(scalar))}
    return files


def build(out_dir: Path, p12_password: str) -> dict[str, Any]:
    """Generate every key and certificate into ``out_dir`` and return the index written there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    # No index while files are being replaced: a half-written PKI is never loaded.
    index_path.unlink(missing_ok=True)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    writer = _Writer(out_dir, p12_password)

    # CAs start before the "expired" certificates so those were once within their issuer's life.
    ca_start = now - 3 * _YEAR
    kz = (NameOID.COUNTRY_NAME, "KZ")
    root = _make_ca("root", _name((NameOID.COMMON_NAME, "KZ TEST ROOT CA (RSA)"), kz), None,
                    ca_start, ca_start + 20 * _YEAR)
    nca = _make_ca(
        "nca",
        _name((NameOID.COMMON_NAME, "ҰЛТТЫҚ КУӘЛАНДЫРУШЫ ОРТАЛЫҚ (RSA) TEST"),
              (NameOID.ORGANIZATION_NAME, "NCA TEST"), kz),
        root, ca_start, ca_start + 10 * _YEAR,
    )
    foreign_root = _make_ca("foreign-root", _name((NameOID.COMMON_NAME, "FOREIGN TEST ROOT CA")), None,
                            ca_start, ca_start + 20 * _YEAR)
    foreign = _make_ca("foreign-ca", _name((NameOID.COMMON_NAME, "FOREIGN TEST CA")), foreign_root,
                       ca_start, ca_start + 10 * _YEAR)
    authorities = {}
    for ca in (root, nca, foreign_root, foreign):
        authorities[ca.name] = {
            "cert": writer.cert(f"ca/{ca.name}.pem", ca.cert),
            "key": writer.key(f"ca/{ca.name}.key.pem", ca.key),
        }
    issuers = {"nca": nca, "foreign": foreign}

    organisations = {
        org.handle: {"bin": make_bin(*org.registered, "resident", "head", org.serial), "name": org.name}
        for org in ORGANISATIONS
    }

    gost_cas = _gost_authorities(writer, authorities, kz, ca_start)
    people: dict[str, Any] = {}
    for spec in PEOPLE:
        iin = make_iin(spec.birth_date, spec.sex, spec.serial)
        org = organisations[spec.org] if spec.org else None
        subject = _person_subject(spec, iin, org)
        not_before, not_after = _validity(spec.validity, now)
        entry: dict[str, Any] = {
            "kind": "employee" if org else "individual",
            "iin": iin,
            "bin": org["bin"] if org else None,
            "organisation": org["name"] if org else None,
            "org": spec.org,
            "surname": spec.surname,
            "given_name": spec.patronymic,
            "name": spec.name,
            "sex": spec.sex,
            "birth_date": spec.birth_date.isoformat(),
            "roles": [role.value for role in spec.roles],
            "description": spec.description,
        }
        for purpose in ("sign", "auth"):
            cert, key = _issue_leaf(issuers[spec.issuer], CRL_URLS[spec.issuer], subject, purpose,
                                    org is not None, spec.roles, not_before, not_after)
            entry[purpose] = writer.bundle(f"people/{spec.handle}/{purpose}", f"{spec.handle}-{purpose}",
                                           cert, key, issuers[spec.issuer])
        if spec.gost:
            entry["gost"] = _gost_person(writer, gost_cas[1], spec, subject, org is not None, not_before, not_after)
        people[spec.handle] = entry

    systems: dict[str, Any] = {}
    for system in SYSTEMS:
        bin_ = make_bin(*system.registered, "resident", "head", system.serial)
        subject = _name(
            (NameOID.COMMON_NAME, system.name),
            kz,
            (NameOID.ORGANIZATION_NAME, system.organisation),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, f"BIN{bin_}"),
        )
        not_before, not_after = _validity("current", now)
        cert, key = _issue_leaf(
            nca, CRL_URLS["nca"], subject, "sign", True, SYSTEM_ROLES, not_before, not_after
        )
        systems[system.name] = {
            **writer.bundle(f"systems/{system.name}", system.name, cert, key, nca),
            "bin": bin_,
            "organisation": system.organisation,
            "description": system.description,
        }
        gost_cert, scalar = gost_issue.issue_leaf(gost_cas[1], CRL_URLS["gost-nca"], subject, "sign", True,
                                                  SYSTEM_ROLES, not_before, not_after)
        systems[system.name]["gost"] = {  # the same system with a GOST key (a gateway signing with GOST)
            "cert": writer.cert(f"systems/{system.name}.gost.cert.pem", gost_cert),
            "key": writer.raw(f"systems/{system.name}.gost.key.pem", gost_issue.key_pem(scalar))}

    index = {
        "version": INDEX_VERSION,
        "created": now.isoformat(),
        "p12_password": p12_password,
        "trust_anchors": [authorities["root"]["cert"], authorities["gost-root"]["cert"]],
        "intermediates": [authorities["nca"]["cert"], authorities["gost-nca"]["cert"]],
        "authorities": authorities,
        "ocsp_url": OCSP_URL,
        "crl_urls": CRL_URLS,
        "people": people,
        "organisations": organisations,
        "systems": systems,
    }
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, index_path)  # atomic: readers see no index or a complete one
    return index
