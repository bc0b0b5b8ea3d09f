"""The NCA profile of the test PKI's end-entity certificates, shared by its RSA and GOST issuers."""

from __future__ import annotations

import datetime
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID as AiaOID
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.nca import (
    POLICY_INDIVIDUAL_AUTH,
    POLICY_INDIVIDUAL_SIGN,
    POLICY_LEGAL_AUTH,
    POLICY_LEGAL_SIGN,
    ROLE_OIDS,
    SignerRole,
)

# A placeholder on loopback; the mock revocation service binds here.
OCSP_URL = "http://127.0.0.1:8790/ocsp"
Purpose = Literal["sign", "auth"]


def key_usage(purpose: Purpose) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=purpose == "sign",  # nonRepudiation
        key_encipherment=purpose == "auth",
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def policy(purpose: Purpose, legal: bool) -> x509.ObjectIdentifier:
    if legal:
        return POLICY_LEGAL_SIGN if purpose == "sign" else POLICY_LEGAL_AUTH
    return POLICY_INDIVIDUAL_SIGN if purpose == "sign" else POLICY_INDIVIDUAL_AUTH


def leaf_builder(
    issuer: x509.Name, crl_url: str, subject: x509.Name, purpose: Purpose, legal: bool, roles: tuple[SignerRole, ...],
    not_before: datetime.datetime, not_after: datetime.datetime, key_id: bytes, issuer_key_id: bytes,
) -> x509.CertificateBuilder:
    """An NCA-profile end-entity certificate without its key (RSA and GOST leaves alike)."""
    ocsp = x509.AccessDescription(AiaOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL))
    usage = ExtendedKeyUsageOID.EMAIL_PROTECTION if purpose == "sign" else ExtendedKeyUsageOID.CLIENT_AUTH
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(purpose), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage, *(ROLE_OIDS[r] for r in roles)]), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(policy(purpose, legal), None)]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier(key_id), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(issuer_key_id, None, None), False)
        .add_extension(x509.AuthorityInformationAccess([ocsp]), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
    )
