"""The cast of the test PKI: people, organisations and systems, as plain data.

IINs and BINs are derived from fixed birth dates/registrations and serials with
:func:`signing.idnumbers.make_iin` / :func:`make_bin`, so they stay the same every time the
PKI is regenerated (keys and certificate serials do not).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from signing.nca import SignerRole

Validity = Literal["current", "expired", "future"]
Issuer = Literal["nca", "foreign"]


@dataclass(frozen=True)
class OrgSpec:
    """An organisation whose employees hold legal entity certificates."""

    handle: str
    """Short key used in index.json and tests."""
    name: str
    """Official name, written into subject O."""
    registered: tuple[int, int]
    """Registration (year, month) encoded in the BIN."""
    serial: int
    """BIN serial (digits 7-11) before the check digit."""


@dataclass(frozen=True)
class PersonSpec:
    """A certificate holder: an individual, or an employee of one of :data:`ORGANISATIONS`."""

    handle: str
    """Short key used in index.json and tests."""
    surname: str
    """Subject SURNAME, upper case as NCA writes it."""
    name: str
    """First name; CN is ``SURNAME NAME``."""
    patronymic: str
    """Goes into subject GIVENNAME (NCA's use of that attribute)."""
    sex: Literal["male", "female"]
    """Encoded in IIN digit 7."""
    birth_date: datetime.date
    """Encoded in IIN digits 1-6."""
    serial: int
    """IIN serial (digits 8-11) before the check digit."""
    description: str
    """What tests use this person for."""
    org: str | None = None
    """Organisation handle for employees, None for individuals."""
    roles: tuple[SignerRole, ...] = (SignerRole.INDIVIDUAL,)
    """Roles written into Extended Key Usage."""
    validity: Validity = "current"
    """current: now-1 day .. +1 year; expired: -2 years .. -1 year; future: +30 days .. +1 year 30 days."""
    issuer: Issuer = "nca"
    """nca is trusted by the gateway; foreign chains to a root the gateway does not trust."""
    gost: bool = False
    """Also holds GOST 34.10-2015 SIGN and AUTH certificates from the GOST NCA intermediate (same subject)."""


@dataclass(frozen=True)
class SystemSpec:
    """An information system holding a legal entity SIGN certificate (no person, no IIN)."""

    name: str
    """Key in index.json and the certificate's CN."""
    organisation: str
    """Operator's name, written into subject O."""
    registered: tuple[int, int]
    """Registration (year, month) of the operator, encoded in the BIN."""
    serial: int
    """BIN serial before the check digit."""
    description: str
    """What the system is."""


ORGANISATIONS: tuple[OrgSpec, ...] = (
    OrgSpec("kitap", "Абай атындағы облыстық әмбебап ғылыми кітапхана", (2003, 5), 1187),
    OrgSpec("murager", "Облыстық тарихи-өлкетану музейі", (1998, 11), 2204),
)

_ORG = (SignerRole.ORGANISATION,)
_date = datetime.date

PEOPLE: tuple[PersonSpec, ...] = (
    PersonSpec("aigerim", "ЖАКСЫБЕКОВА", "АЙГЕРИМ", "СЕРИКОВНА", "female", _date(1988, 3, 14), 512,
               "individual citizen, the default applicant", gost=True),
    PersonSpec("daniyar", "ОМАРОВ", "ДАНИЯР", "АСКАРОВИЧ", "male", _date(1992, 7, 2), 1309,
               "individual citizen, a second applicant (e.g. someone else's IIN in a document)"),
    PersonSpec("saule", "ТОҚТАРОВА", "САУЛЕ", "НҰРЛАНҚЫЗЫ", "female", _date(2001, 11, 25), 77,
               "individual born in the 2000s, Kazakh letters in every name field", gost=True),
    PersonSpec("expired", "ЕСЕНОВ", "ЕРЛАН", "БОЛАТОВИЧ", "male", _date(1979, 1, 30), 4410,
               "individual whose certificates expired a year ago (reject: EXPIRED)", validity="expired", gost=True),
    PersonSpec("future", "КАЛИЕВА", "ЖАНАР", "МАРАТОВНА", "female", _date(1995, 9, 9), 3021,
               "individual whose certificates start in 30 days (reject: NOT_YET_VALID)", validity="future"),
    PersonSpec("stranger", "БЕКОВ", "БЕРИК", "ТИМУРОВИЧ", "male", _date(1985, 4, 21), 6650,
               "individual with an NCA-like certificate from an untrusted CA (reject: no chain)",
               issuer="foreign"),
    PersonSpec("kitap-head", "САРСЕНБАЕВА", "ГУЛЬНАР", "ЕРЖАНОВНА", "female", _date(1970, 6, 5), 2150,
               "director of the kitap library (first head)", org="kitap",
               roles=(*_ORG, SignerRole.FIRST_HEAD), gost=True),
    PersonSpec("kitap-signer", "ИСМАИЛОВ", "НУРЛАН", "КАЙРАТОВИЧ", "male", _date(1983, 12, 17), 918,
               "kitap library employee with the right to sign", org="kitap",
               roles=(*_ORG, SignerRole.CAN_SIGN), gost=True),
    PersonSpec("kitap-clerk", "АХМЕТОВА", "ДИНАРА", "ЖАНБОЛАТҚЫЗЫ", "female", _date(1998, 2, 28), 3377,
               "kitap library employee without signing rights (reject for org requests)", org="kitap",
               roles=(*_ORG, SignerRole.EMPLOYEE), gost=True),
    PersonSpec("murager-head", "ЖУМАБЕКОВ", "БАУЫРЖАН", "САКЕНОВИЧ", "male", _date(1965, 10, 11), 1024,
               "director of the murager museum (first head)", org="murager",
               roles=(*_ORG, SignerRole.FIRST_HEAD), gost=True),
    PersonSpec("murager-signer", "КАСЫМОВА", "АЛИЯ", "ДАУРЕНОВНА", "female", _date(1987, 8, 3), 5155,
               "murager museum employee with the right to sign", org="murager",
               roles=(*_ORG, SignerRole.CAN_SIGN), gost=True),
    PersonSpec("murager-clerk", "ТУРСЫНОВ", "АЛИБЕК", "ЕРЛАНҰЛЫ", "male", _date(2000, 1, 1), 240,
               "murager museum employee without signing rights (reject for org requests)", org="murager",
               roles=(*_ORG, SignerRole.EMPLOYEE), gost=True),
)

SYSTEMS: tuple[SystemSpec, ...] = (
    SystemSpec("gateway", "EGOV GATEWAY OPERATOR TEST", (2008, 2), 3001,
               "the gateway's own key: signs results for the cabinet"),
    SystemSpec("library", "KAZNEB NATIONAL ELECTRONIC LIBRARY TEST", (2010, 9), 4102,
               "KazNEB library back-end (REST)"),
    SystemSpec("elicense", "E-LICENSING TEST", (2012, 4), 5203,
               "E-licensing permits back-end (SOAP)"),
    SystemSpec("portal", "EGOV PORTAL TEST", (2006, 12), 6304,
               "the egov portal that forwards citizens' signed requests"),
    SystemSpec("operator", "EGOV ICT INFRASTRUCTURE OPERATOR TEST", (2004, 3), 7405,
               "the e-government ICT infrastructure operator's software deposit back-end (REST)"),
)
# Systems sign as their organisation, so they carry the right to sign.
SYSTEM_ROLES: tuple[SignerRole, ...] = (SignerRole.ORGANISATION, SignerRole.CAN_SIGN)
