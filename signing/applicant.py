"""Who may apply: the IIN/BIN in the signed business document must be the signer's own.

For a service that individuals apply to, the document's IIN must equal the certificate's
``SERIALNUMBER=IIN…`` and the certificate must be a personal one. For a service that organisations
apply to, the document's BIN must equal the certificate's ``OU=BIN…`` and the signer must hold one of
the roles the service requires (from the certificate's extended key usage), e.g. first head.

Security caveat: values are read from the *verified* document only (what the signature covers), with
all text nodes joined, so a comment splitting a value cannot shorten it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from signing.idnumbers import IdNumberError, parse_bin, parse_iin
from signing.nca import CertificateIdentity, SignerRole


class ApplicantKind(StrEnum):
    INDIVIDUAL = "individual"
    "A citizen applying for themselves."
    ORGANISATION = "organisation"
    "A legal entity, represented by an employee with the right role."


class IdentityRejected(ValueError):
    """The signer may not submit this document. ``code`` is a gateway error code (ID_*)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ApplicantPolicy:
    """What a service expects of its applicants."""

    kind: ApplicantKind = ApplicantKind.INDIVIDUAL
    "Individual (IIN must match) or organisation (BIN must match, role required)."
    iin_element: str = "iin"
    "Local name of the element holding the applicant's IIN (individual services)."
    bin_element: str = "bin"
    "Local name of the element holding the applicant's BIN (organisation services)."
    required_roles: frozenset[SignerRole] = frozenset()
    "For organisations: the signer must hold at least one of these roles (empty: any employee)."


@dataclass(frozen=True)
class Applicant:
    """Who applied, as proven by the signature."""

    iin: str
    "The signer's IIN (for an organisation, the employee who signed)."
    name: str
    "The signer's name from the certificate."
    bin: str | None = None
    "The organisation's BIN, for organisation applications."
    organisation: str | None = None
    "The organisation's name from the certificate."
    roles: tuple[str, ...] = ()
    "The signer's roles from the certificate."


def check_applicant(policy: ApplicantPolicy, signed: etree._Element, identity: CertificateIdentity) -> Applicant:
    """Return the proven applicant, or raise :class:`IdentityRejected`."""
    if not identity.iin:
        raise IdentityRejected("ID_CERTIFICATE_WITHOUT_IIN", "the certificate has no SERIALNUMBER=IIN")
    roles = tuple(sorted(identity.roles))
    if policy.kind is ApplicantKind.INDIVIDUAL:
        if identity.is_legal_entity:
            raise IdentityRejected("ID_NOT_INDIVIDUAL_CERTIFICATE",
                                   "an organisation's certificate cannot sign a personal application")
        claimed = _single_value(signed, policy.iin_element, "ID_IIN_INVALID")
        try:
            parse_iin(claimed)
        except IdNumberError as exc:
            raise IdentityRejected("ID_IIN_INVALID", exc.code) from None
        if claimed != identity.iin:
            raise IdentityRejected("ID_IIN_MISMATCH", "the IIN in the document is not the signer's")
        return Applicant(iin=identity.iin, name=identity.common_name, roles=roles)

    if not identity.bin or SignerRole.ORGANISATION not in identity.roles:
        raise IdentityRejected("ID_NOT_ORGANISATION_CERTIFICATE",
                               "an organisation's application must be signed with an employee certificate")
    claimed = _single_value(signed, policy.bin_element, "ID_BIN_INVALID")
    try:
        parse_bin(claimed)
    except IdNumberError as exc:
        raise IdentityRejected("ID_BIN_INVALID", exc.code) from None
    if claimed != identity.bin:
        raise IdentityRejected("ID_BIN_MISMATCH", "the BIN in the document is not the signer's organisation")
    if policy.required_roles and not policy.required_roles & identity.roles:
        wanted = ", ".join(sorted(policy.required_roles))
        raise IdentityRejected("ID_ROLE_MISSING", f"the signer holds none of the required roles ({wanted})")
    return Applicant(iin=identity.iin, name=identity.common_name, bin=identity.bin,
                     organisation=identity.organisation, roles=roles)


def _single_value(signed: etree._Element, local_name: str, code: str) -> str:
    holders = [el for el in signed.iter() if isinstance(el.tag, str) and etree.QName(el).localname == local_name]
    if len(holders) != 1:
        raise IdentityRejected(code, f"the document must hold exactly one <{local_name}> element")
    return "".join(holders[0].itertext()).strip()
