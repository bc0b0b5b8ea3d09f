"""Who a certificate belongs to, read the way Kazakhstan's NCA (НУЦ) profile writes it.

An NCA certificate names its holder in the subject (``SERIALNUMBER=IIN…``, ``OU=BIN…``,
``CN``, ``SURNAME``, ``GIVENNAME`` holding the patronymic, ``O``), states its purpose in
certificate policies and key usage, and carries the holder's roles as Extended Key Usage
OIDs. :func:`read_identity` only *reads* these; it does not check the chain, validity,
revocation or IIN/BIN checksums, which are separate steps of verification.

Reading never fails on a missing or unparsable extension: the field is left empty, which
grants nothing (no roles, key purpose UNKNOWN), so a broken certificate fails closed later.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.x509.oid import NameOID, PublicKeyAlgorithmOID

__all__ = [
    "GOST2004_KEY",
    "GOST2004_SIGNATURE",
    "GOST2015_KEY",
    "GOST2015_SIGNATURE",
    "POLICY_INDIVIDUAL_AUTH",
    "POLICY_INDIVIDUAL_SIGN",
    "POLICY_LEGAL_AUTH",
    "POLICY_LEGAL_SIGN",
    "ROLE_OIDS",
    "CertificateIdentity",
    "KeyPurpose",
    "SignerRole",
    "read_identity",
]

# Certificate policies (what the certificate was issued for).
POLICY_LEGAL_SIGN = x509.ObjectIdentifier("1.2.398.3.3.2.1")
POLICY_LEGAL_AUTH = x509.ObjectIdentifier("1.2.398.3.3.2.2")
POLICY_INDIVIDUAL_SIGN = x509.ObjectIdentifier("1.2.398.3.3.2.3")
POLICY_INDIVIDUAL_AUTH = x509.ObjectIdentifier("1.2.398.3.3.2.4")

# GOST 34.310 algorithms; `cryptography` can parse certificates carrying them but not use the keys.
GOST2004_KEY = x509.ObjectIdentifier("1.2.398.3.10.1.1.1.1")
GOST2004_SIGNATURE = x509.ObjectIdentifier("1.2.398.3.10.1.1.1.2")
GOST2015_KEY = x509.ObjectIdentifier("1.2.398.3.10.1.1.2.2")
GOST2015_SIGNATURE = x509.ObjectIdentifier("1.2.398.3.10.1.1.2.3.2")
# NCA has used several OIDs per GOST generation (key sizes, parameter sets): match by arc.
_GOST2004_ARC = "1.2.398.3.10.1.1.1."
_GOST2015_ARC = "1.2.398.3.10.1.1.2."


class SignerRole(enum.StrEnum):
    """A holder's role, carried as an Extended Key Usage OID."""

    INDIVIDUAL = "individual"
    ORGANISATION = "organisation"
    FIRST_HEAD = "first_head"
    CAN_SIGN = "can_sign"
    CAN_SIGN_FINANCIAL = "can_sign_financial"
    HR = "hr"
    EMPLOYEE = "employee"


ROLE_OIDS: dict[SignerRole, x509.ObjectIdentifier] = {
    SignerRole.INDIVIDUAL: x509.ObjectIdentifier("1.2.398.3.3.4.1.1"),
    SignerRole.ORGANISATION: x509.ObjectIdentifier("1.2.398.3.3.4.1.2"),
    SignerRole.FIRST_HEAD: x509.ObjectIdentifier("1.2.398.3.3.4.1.2.1"),
    SignerRole.CAN_SIGN: x509.ObjectIdentifier("1.2.398.3.3.4.1.2.2"),
    SignerRole.CAN_SIGN_FINANCIAL: x509.ObjectIdentifier("1.2.398.3.3.4.1.2.3"),
    SignerRole.HR: x509.ObjectIdentifier("1.2.398.3.3.4.1.2.4"),
    SignerRole.EMPLOYEE: x509.ObjectIdentifier("1.2.398.3.3.4.1.2.5"),
}
_ROLE_BY_OID = {oid: role for role, oid in ROLE_OIDS.items()}


class KeyPurpose(enum.StrEnum):
    """What the key is for, from keyUsage. Only SIGN keys may sign a request."""

    SIGN = "sign"
    """digitalSignature + nonRepudiation."""
    AUTH = "auth"
    """digitalSignature + keyEncipherment, without nonRepudiation."""
    UNKNOWN = "unknown"
    """Anything else, including no keyUsage at all."""


@dataclass(frozen=True)
class CertificateIdentity:
    """The holder of an NCA-profile certificate, as the certificate states it (not yet trusted)."""

    iin: str | None = field(repr=False)  # kept out of repr() so logging an identity leaks no IIN
    """12-digit IIN from subject SERIALNUMBER ``IIN<12 digits>``; personal data, mask before logging."""
    bin: str | None
    """12-digit BIN from a subject OU ``BIN<12 digits>``; present for legal entities."""
    common_name: str
    """Subject CN: ``SURNAME NAME`` for people, the system name for system certificates."""
    surname: str | None
    """Subject SURNAME."""
    given_name: str | None
    """Subject GIVENNAME, which in NCA certificates holds the patronymic, not the first name."""
    organisation: str | None
    """Subject O: the organisation's name for legal entity certificates."""
    country: str | None
    """Subject C (``KZ``)."""
    roles: frozenset[SignerRole]
    """Roles from Extended Key Usage; empty when the extension is absent."""
    policies: tuple[str, ...]
    """Certificate policy OIDs as dotted strings, in certificate order."""
    key_purpose: KeyPurpose
    """SIGN or AUTH from keyUsage; UNKNOWN when keyUsage is missing or matches neither."""
    is_legal_entity: bool
    """True when a BIN is present or the ORGANISATION role is granted."""
    serial_number: int
    """Certificate serial number (with the issuer, identifies the certificate for revocation)."""
    issuer: str
    """Issuer distinguished name as an RFC 4514 string."""
    not_before: datetime
    """Start of validity, timezone-aware UTC."""
    not_after: datetime
    """End of validity, timezone-aware UTC."""
    public_key_algorithm: str
    """``rsa``, ``ec``, ``gost2004``, ``gost2015``, or the SPKI algorithm OID as a dotted string."""

    def display_name(self) -> str:
        """A name for people to read: ``SURNAME NAME PATRONYMIC``, with the organisation if any.

        Contains no IIN, so it is safe to show in logs and reports.
        """
        parts = [self.common_name or self.surname]
        # GIVENNAME is a person's patronymic; system certificates have no SURNAME and no patronymic.
        if self.surname and self.given_name:
            parts.append(self.given_name)
        name = " ".join(p for p in parts if p)
        if self.organisation:
            name = f"{name}, {self.organisation}" if name else self.organisation
        return name or "(unnamed)"


_IIN_SERIAL = re.compile(r"IIN([0-9]{12})")
_BIN_OU = re.compile(r"BIN([0-9]{12})")

_ExtT = TypeVar("_ExtT", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_ExtT]) -> _ExtT | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        # Malformed or duplicated extensions: report nothing, so nothing is granted.
        return None


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    values = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return values


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = _attributes(name, oid)
    return values[0] if values else None


def _find(name: x509.Name, oid: x509.ObjectIdentifier, pattern: re.Pattern[str]) -> str | None:
    for value in _attributes(name, oid):
        match = pattern.fullmatch(value)
        if match:
            return match.group(1)
    return None


def _key_purpose(usage: x509.KeyUsage | None) -> KeyPurpose:
    if usage is None or not usage.digital_signature:
        return KeyPurpose.UNKNOWN
    if usage.content_commitment:  # content_commitment is nonRepudiation
        return KeyPurpose.SIGN
    if usage.key_encipherment:
        return KeyPurpose.AUTH
    return KeyPurpose.UNKNOWN


def _roles(eku: x509.ExtendedKeyUsage | None) -> frozenset[SignerRole]:
    if eku is None:
        return frozenset()
    return frozenset(_ROLE_BY_OID[oid] for oid in eku if oid in _ROLE_BY_OID)


def _policies(policies: x509.CertificatePolicies | None) -> tuple[str, ...]:
    if policies is None:
        return ()
    return tuple(p.policy_identifier.dotted_string for p in policies)


def _public_key_algorithm(cert: x509.Certificate) -> str:
    # Read the SPKI OID rather than cert.public_key(): the latter raises on GOST keys.
    oid = cert.public_key_algorithm_oid
    if oid in (PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5, PublicKeyAlgorithmOID.RSASSA_PSS):
        return "rsa"
    if oid == PublicKeyAlgorithmOID.EC_PUBLIC_KEY:
        return "ec"
    dotted = oid.dotted_string
    if dotted.startswith(_GOST2004_ARC):
        return "gost2004"
    if dotted.startswith(_GOST2015_ARC):
        return "gost2015"
    return dotted


def read_identity(cert: x509.Certificate) -> CertificateIdentity:
    """Read the holder's identity, roles and key purpose from an NCA-profile certificate."""
    subject = cert.subject
    bin_ = _find(subject, NameOID.ORGANIZATIONAL_UNIT_NAME, _BIN_OU)
    roles = _roles(_extension(cert, x509.ExtendedKeyUsage))
    return CertificateIdentity(
        iin=_find(subject, NameOID.SERIAL_NUMBER, _IIN_SERIAL),
        bin=bin_,
        common_name=_first(subject, NameOID.COMMON_NAME) or "",
        surname=_first(subject, NameOID.SURNAME),
        given_name=_first(subject, NameOID.GIVEN_NAME),
        organisation=_first(subject, NameOID.ORGANIZATION_NAME),
        country=_first(subject, NameOID.COUNTRY_NAME),
        roles=roles,
        policies=_policies(_extension(cert, x509.CertificatePolicies)),
        key_purpose=_key_purpose(_extension(cert, x509.KeyUsage)),
        is_legal_entity=bin_ is not None or SignerRole.ORGANISATION in roles,
        serial_number=cert.serial_number,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        public_key_algorithm=_public_key_algorithm(cert),
    )
