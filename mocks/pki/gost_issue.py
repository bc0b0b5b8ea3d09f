"""The test PKI's GOST 34.10-2015 hierarchy: a root and an NCA intermediate beside the RSA ones, and GOST SIGN
and AUTH certificates in the same NCA profile (IIN in serialNumber, BIN in OU, roles in EKU, policies).

THIS IS A TEST PKI: private keys are written as unencrypted PKCS#8 PEM (mode 0600); no PKCS#12 bundles
(``cryptography`` cannot write GOST ones).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509

from mocks.pki import gost
from mocks.pki.profile import Purpose, leaf_builder
from signing import gost_x509
from signing.gost_x509 import GOST2015_512
from signing.nca import SignerRole


@dataclass(frozen=True)
class GostCa:
    """A GOST CA's certificate and key, kept in memory while issuing."""

    name: str
    """File stem under ca/ (gost-root, gost-nca)."""
    cert: x509.Certificate
    """The CA certificate."""
    scalar: int
    """The CA's private key."""
    key_id: bytes
    """Its subjectKeyIdentifier."""


def ca_usage(*, key_cert_sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def make_ca(name: str, subject: x509.Name, issuer: GostCa | None, not_before: datetime.datetime,
            not_after: datetime.datetime, *, ca: bool = True, key_cert_sign: bool = True) -> GostCa:
    """A GOST root (``issuer`` None) or intermediate (pathLen 0); ``ca``/``key_cert_sign`` False make the broken
    "CAs" the rejection tests need."""
    scalar, point = gost.new_key()
    key_id = gost.key_identifier(point)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.cert.subject if issuer else subject)
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=(None if issuer is None else 0) if ca else None), True)
        .add_extension(ca_usage(key_cert_sign=key_cert_sign), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(key_id), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(issuer.key_id, None, None), critical=False)
    cert = gost.certificate(builder, point, issuer.scalar if issuer else scalar)
    return GostCa(name, cert, scalar, key_id)


def issue_leaf(ca: GostCa, crl_url: str, subject: x509.Name, purpose: Purpose, legal: bool,
               roles: tuple[SignerRole, ...], not_before: datetime.datetime,
               not_after: datetime.datetime) -> tuple[x509.Certificate, int]:
    """An NCA-profile GOST SIGN or AUTH certificate and its private scalar."""
    scalar, point = gost.new_key()
    builder = leaf_builder(ca.cert.subject, crl_url, subject, purpose, legal, roles, not_before, not_after,
                           gost.key_identifier(point), ca.key_id)
    return gost.certificate(builder, point, ca.scalar), scalar


def key_pem(scalar: int) -> bytes:
    return gost_x509.private_key_pem(GOST2015_512, scalar)
