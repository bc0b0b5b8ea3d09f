"""Sample applications made and signed the way the portal does it, as a person from the test PKI."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, timedelta

from lxml import etree

from mocks.elicense.forms import build_export_application
from mocks.elicense.forms import sample_items as sample_export_items
from mocks.library.forms import build_fund_submission, build_reader_registration, sample_fund_objects
from mocks.pki import Person
from signing.signer import DocumentSigner, SigningKey, load_pem_signing_key

READER_TICKET_SERVICE = "kazneb.reader-ticket"
FUND_SUBMISSION_SERVICE = "kazneb.fund-submission"
ELICENSE_SERVICE = "elicense.cultural-export"


def _email_for(person: Person) -> str:
    return f"{re.sub(r'[^a-z0-9]+', '.', person.handle.lower()).strip('.')}@example.kz"


def reader_registration(person: Person, *, iin: str | None = None) -> etree._Element:
    """A KazNEB reader registration for ``person`` (``iin`` overrides the applicant's own, for tests)."""
    return build_reader_registration(
        iin=iin or person.iin,
        surname=person.surname,
        given_name=person.name,
        patronymic=person.given_name,
        birth_date=person.birth_date,
        email=_email_for(person),
        phone="+77011234567",
    )


def fund_submission(person: Person, *, bin: str | None = None) -> etree._Element:
    """A KazNEB fund submission from the person's organisation (``bin`` overrides it, for tests)."""
    return build_fund_submission(
        bin=bin or person.bin or "",
        participant_name=person.organisation or f"{person.surname} {person.name}",
        kind="museum" if person.org == "murager" else "library",
        head_name=f"{person.surname} {person.name} {person.given_name}".strip(),
        # A fresh inventory number per application: the library refuses a title it already has (a duplicate).
        objects=[{**obj, "title": f"{obj['title']} (инв. № {uuid.uuid4().hex[:6]})"} for obj in sample_fund_objects()],
    )


def cultural_export(person: Person, *, iin: str | None = None, items: str = "ordinary") -> etree._Element:
    """An E-licensing application to export cultural values temporarily (``items``: ordinary, heritage, treasure)."""
    start = date.today() + timedelta(days=30)
    return build_export_application(
        iin=iin or person.iin, name=f"{person.surname} {person.name} {person.given_name}".strip(),
        items=sample_export_items(items), export_from=start, return_by=start + timedelta(days=90),
    )


# serviceId -> builder of a sample business document for a person
SAMPLE_DOCUMENTS: dict[str, Callable[..., etree._Element]] = {
    READER_TICKET_SERVICE: reader_registration,
    FUND_SUBMISSION_SERVICE: fund_submission,
    ELICENSE_SERVICE: cultural_export,
}


KEYS = ("sign", "auth", "gost-sign", "gost-auth")
"The keys a person may sign with: the RSA SIGN and AUTH keys, and the GOST 34.10-2015 ones (for those holding them)."


def signer_for(person: Person, *, key: str = "sign") -> DocumentSigner:
    """A signer holding the person's SIGN (default) or AUTH key, RSA or (``gost-sign``, ``gost-auth``) GOST."""
    if key.startswith("gost-"):
        files = person.gost_sign if key == "gost-sign" else person.gost_auth
        if files is None:
            raise KeyError(f"{person.handle} holds no GOST certificates")
        return DocumentSigner(load_pem_signing_key(files.cert, files.key))
    plain = person.sign if key == "sign" else person.auth
    return DocumentSigner(SigningKey.from_pem(plain.cert, plain.key))


def signed_application(person: Person, service_id: str, *, key: str = "sign", **overrides: str) -> etree._Element:
    """Build the sample document for ``service_id`` and sign it as ``person``."""
    try:
        build = SAMPLE_DOCUMENTS[service_id]
    except KeyError:
        raise KeyError(f"no sample application for service {service_id!r}; known: {sorted(SAMPLE_DOCUMENTS)}") from None
    return signer_for(person, key=key).sign(build(person, **overrides))
