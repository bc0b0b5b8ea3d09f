"""The portal's shared state (loaded once at start) and the cast of test people it offers.

Keys, the SOAP client, the HTTP session to the gateway and the verifier for results are built once;
nothing here logs an IIN.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from cryptography import x509

from mocks.pki import Person, TestPki
from mocks.portal.applicant import signer_for
from mocks.portal.shep_client import SyncChannelClient
from mocks.portal.web.i18n import DEFAULT_LANGUAGE
from mocks.portal.web.layout import View
from mocks.portal.web.session import PERSON
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier

log = logging.getLogger("egov.portal.web")

LANG_COOKIE = "portal_lang"
MAX_SUBMISSIONS = 500


@dataclass(frozen=True)
class CastMember:
    """A test person as the home page groups them."""

    person: Person
    "The PKI's person."
    group: str
    "citizen, employee or special."
    special: str | None
    "For the special group: expired, future or stranger."
    not_before: datetime
    "Start of the SIGN certificate's validity."
    not_after: datetime
    "End of the SIGN certificate's validity."


def full_name(person: Person) -> str:
    """SURNAME NAME PATRONYMIC as in the certificate."""
    return " ".join(part for part in (person.surname, person.name, person.given_name) if part)


def classify(pki: TestPki) -> dict[str, CastMember]:
    """Group the PKI's people by what their SIGN certificate is: valid citizen/employee, or a special case."""
    trusted = {x509.load_pem_x509_certificate(path.read_bytes()).subject
               for path in (*pki.trust_anchors, *pki.intermediates)}
    now = datetime.now(UTC)
    cast: dict[str, CastMember] = {}
    for handle, person in pki.people.items():
        cert = person.sign.load_certificate()
        special = ("expired" if cert.not_valid_after_utc < now else
                   "future" if cert.not_valid_before_utc > now else
                   "stranger" if cert.issuer not in trusted else None)
        group = "special" if special else ("employee" if person.kind == "employee" else "citizen")
        cast[handle] = CastMember(person, group, special, cert.not_valid_before_utc, cert.not_valid_after_utc)
    return cast


@dataclass(frozen=True)
class Submission:
    """What the portal signed and sent for one application (shown on the application page)."""

    message_id: str
    "The messageId sent to the gateway."
    service_id: str
    "The service."
    handle: str
    "Who signed."
    owner: str
    "The cabinet (IIN or BIN) it belongs to."
    signed_xml: str
    "The document exactly as sent (after any tampering)."
    key: str
    "sign or auth."
    certificate_name: str
    "The signer certificate's subject common name."
    certificate_serial: str
    "Its serial number, hex."
    certificate_issuer: str
    "Its issuer's common name."
    valid_from: datetime
    "Certificate validity start."
    valid_to: datetime
    "Certificate validity end."
    notes: tuple[tuple[str, dict[str, str]], ...] = ()
    "The bad case, as (kind, values): ``tampered`` (field_key, old, new) or ``other`` (who); localized when shown."


@dataclass
class PortalState:
    """Everything the handlers share."""

    pki: TestPki
    gateway_url: str
    sender: str
    password: str
    verifier: DocumentVerifier
    cast: dict[str, CastMember]
    session: aiohttp.ClientSession | None = None
    soap: SyncChannelClient | None = None
    soap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    signers: dict[tuple[str, str], DocumentSigner] = field(default_factory=dict)
    submissions: OrderedDict[str, Submission] = field(default_factory=OrderedDict)
    streams: set[aiohttp.ClientResponse] = field(default_factory=set)
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    "Signs the session cookies (per process: a restart signs everyone out)."
    gost_for_organisations: bool = True
    "An employee holding a GOST key signs organisation applications with it (GOST 34.10-2015, Kalkan's layout)."

    @property
    def auth(self) -> dict[str, str]:
        """Headers with the portal's own credentials for the gateway's cabinet API (never sent to the browser)."""
        return {"Authorization": aiohttp.encode_basic_auth(self.sender, self.password)}

    def api(self, owner: str, *path: str) -> str:
        """An address of the gateway's cabinet API: ``applications[/path...]`` of one owner."""
        return "/".join((f"{self.gateway_url}/api/v1/cabinet/{owner}/applications", *path)).rstrip("/")

    def events_url(self, owner: str) -> str:
        """The gateway's event stream of one owner's applications."""
        return f"{self.gateway_url}/api/v1/cabinet/{owner}/events"

    def signer(self, person: Person, key: str, *, organisation: bool = False) -> DocumentSigner:
        """The person's SIGN or AUTH key, loaded once: their GOST one for an organisation's service when they hold
        one (and :attr:`gost_for_organisations`), else RSA."""
        if organisation and self.gost_for_organisations and person.gost_sign is not None:
            key = f"gost-{key}"
        cached = self.signers.get((person.handle, key))
        if cached is None:
            cached = self.signers[(person.handle, key)] = signer_for(person, key=key)
        return cached

    async def soap_client(self) -> SyncChannelClient:
        """The zeep SyncChannel client, built from the gateway's WSDL once (in a thread; retried if it failed)."""
        async with self.soap_lock:
            if self.soap is None:
                self.soap = await asyncio.to_thread(SyncChannelClient, f"{self.gateway_url}/shep/sync?wsdl")
            return self.soap

    def remember(self, submission: Submission) -> None:
        """Keep what was signed for the application page (the newest few hundred)."""
        self.submissions[submission.message_id] = submission
        while len(self.submissions) > MAX_SUBMISSIONS:
            self.submissions.popitem(last=False)

    def owner_name(self, owner: str) -> str | None:
        """The person (by IIN) or organisation (by BIN) whose cabinet this is, if the PKI knows them."""
        for person in self.pki.people.values():
            if person.iin == owner:
                return full_name(person)
        for organisation in self.pki.organisations.values():
            if organisation.get("bin") == owner:
                return str(organisation.get("name"))
        return None


STATE = web.AppKey("portal_state", PortalState)
LANG = web.RequestKey("portal_lang", str)


def view_for(request: web.Request) -> View:
    """The request's language and, when signed in, the person's name and cabinet."""
    person = request.get(PERSON)
    return View(lang=request.get(LANG, DEFAULT_LANGUAGE), url=request.rel_url,
                person_name=full_name(person) if person else None, cabinet=person.iin if person else None)
