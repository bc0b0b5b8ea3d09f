"""The test PKI's revocation services: an RFC 6960 OCSP responder and RFC 5280 CRLs (base + delta), on loopback.

THIS IS A TEST SERVICE. The responder *is* the CA: every OCSP response is signed directly with the
issuing CA's private key (no delegated responder certificate) unless a test asks otherwise.
Answers are given for certificates issued by the NCA intermediate and by the root; a request naming
any other issuer gets the ``unauthorized`` response status.

Model
-----
Every certificate under the PKI directory (people, systems, CAs) is read once at start; its serial is
"issued". OCSP says ``good`` for an issued serial, ``revoked`` once revoked, ``unknown`` otherwise.
``thisUpdate`` is now, ``nextUpdate`` now + 10 minutes (``ocsp_validity``), a request nonce is echoed.

CRLs are modelled simply. Each CA's base CRL holds the revocations known at the last
``POST /_control/publish-base`` (empty at start) and is re-signed on every fetch (thisUpdate now,
nextUpdate now + 1 hour) with that snapshot's CRLNumber. Its FreshestCRL extension names the delta
CRL, which lists the revocations made since that snapshot, with DeltaCRLIndicator = the base CRL number
and a CRLNumber above it that grows with every revocation.

Routes
------
``POST /ocsp`` (``application/ocsp-request``, DER) and ``GET /ocsp/{base64 request}`` (standard or URL-safe
alphabet): ``application/ocsp-response``.
``GET /crl/nca.crl``, ``/crl/root.crl``: base CRLs; ``GET /crl/nca-delta.crl``, ``/crl/root-delta.crl``: deltas.

Control (JSON in, JSON out; 400 for a bad body, 404 for an unknown serial)
--------------------------------------------------------------------------
``POST /_control/revoke`` ``{"serial": "<hex>", "reason": "key_compromise", "where": "both"}``: ``where`` is
``both``, ``crl_only`` (OCSP keeps saying good) or ``ocsp_only``; ``reason`` a ``x509.ReasonFlags`` name.
``POST /_control/ocsp`` ``{"down": true, "status": 503, "mode": "status"|"drop", "delay": 1.5,
"signer": "ca"|"delegated"|"foreign", "tamper": false, "next_update": 600}``: any subset. ``down`` answers
``status`` (or closes the connection when ``mode`` is ``drop``); ``delay`` holds every answer;
``signer`` ``delegated`` signs with a responder certificate issued by the CA (EKU OCSPSigning),
``foreign`` with the foreign test CA's key; ``tamper`` alters a signed byte after signing;
``next_update`` is seconds (``null``: omit nextUpdate).
``POST /_control/crl``: ``down``/``status``/``mode``/``delay`` for the CRL routes.
``POST /_control/publish-base``; ``POST /_control/reset`` (revocations, faults, counters, CRL numbers);
``GET /_control/state``: revocations, faults, CRL numbers and request counts per endpoint.

Run: ``python -m mocks.pki.revocation --pki DIR --port 8790`` or ``await run_revocation(pki, port=...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mocks.pki import TestPki, load_pki

SERVED_CAS = ("nca", "root")
"CAs this service answers for (OCSP and CRLs)."
OCSP_VALIDITY = timedelta(minutes=10)
CRL_VALIDITY = timedelta(hours=1)
_CERT_ID_HASHES = (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
_REASONS = {flag.name: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl}
_WHERE = ("both", "crl_only", "ocsp_only")
_MAX_REQUEST = 16 * 1024
_MAX_DELAY = 60.0


@dataclass(frozen=True)
class Authority:
    """A CA this service speaks for."""

    name: str
    "Name in :attr:`TestPki.authorities` (nca, root)."
    cert: x509.Certificate
    "The CA certificate."
    key: CertificateIssuerPrivateKeyTypes
    "The CA's key: signs OCSP responses and CRLs."
    cert_ids: frozenset[tuple[str, bytes, bytes]]
    "(hash name, issuerNameHash, issuerKeyHash) for every CertID hash algorithm accepted."


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate."""

    serial: int
    "Certificate serial number."
    authority: str
    "Issuing CA."
    revoked_at: datetime
    "Revocation time (whole seconds, UTC)."
    reason: x509.ReasonFlags
    "CRL reason code."
    in_ocsp: bool
    "Whether OCSP reports it."
    in_crl: bool
    "Whether the CRLs list it."

    def as_json(self) -> dict[str, Any]:
        return {"serial": format(self.serial, "x"), "authority": self.authority, "revoked_at": self.revoked_at.isoformat(),
                "reason": self.reason.name, "in_ocsp": self.in_ocsp, "in_crl": self.in_crl}


@dataclass
class Faults:
    """Injected failures for one group of routes."""

    down: bool = False
    status: int = 503
    mode: str = "status"
    delay: float = 0.0
    signer: str = "ca"
    tamper: bool = False
    next_update: int | None = int(OCSP_VALIDITY.total_seconds())


@dataclass
class CrlSeries:
    """One CA's CRL numbering and base snapshot."""

    base_number: int = 1
    next_number: int = 2
    base: tuple[int, ...] = ()
    "Serials in the base CRL (the revocations known at the last publish)."


@dataclass
class RevocationState:
    """Everything the service knows, stored on the application under ``REVOCATION_STATE``."""

    authorities: dict[str, Authority]
    issued: dict[int, str]
    "Serial -> issuing served CA, for every certificate found in the PKI directory."
    foreign: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]
    clock: Callable[[], datetime]
    revocations: dict[int, Revocation] = field(default_factory=dict)
    crls: dict[str, CrlSeries] = field(default_factory=dict)
    ocsp_faults: Faults = field(default_factory=Faults)
    crl_faults: Faults = field(default_factory=Faults)
    requests: Counter[str] = field(default_factory=Counter)
    delegated: dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey]] = field(default_factory=dict)

    def reset(self) -> None:
        self.revocations.clear()
        self.requests.clear()
        self.crls = {name: CrlSeries() for name in self.authorities}
        self.ocsp_faults, self.crl_faults = Faults(), Faults()

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)


REVOCATION_STATE = web.AppKey("pki_revocation_state", RevocationState)


def _authority(pki: TestPki, name: str) -> Authority:
    files = pki.authorities[name]
    cert = files.load_certificate()
    ids = set()
    for algorithm in _CERT_ID_HASHES:
        # The request builder computes both CertID hashes from the issuer alone: reuse it for matching.
        probe = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, algorithm).build()
        ids.add((algorithm.name, probe.issuer_name_hash, probe.issuer_key_hash))
    return Authority(name, cert, files.load_private_key(), frozenset(ids))  # type: ignore[arg-type]


def _issued_serials(pki: TestPki, authorities: dict[str, Authority]) -> dict[int, str]:
    by_subject = {a.cert.subject: a.name for a in authorities.values()}
    issued: dict[int, str] = {}
    for path in sorted(pki.root.rglob("*.pem")):
        if path.name.endswith(".key.pem"):
            continue
        for cert in x509.load_pem_x509_certificates(path.read_bytes()):
            if cert.issuer in by_subject:
                issued[cert.serial_number] = by_subject[cert.issuer]
    return issued


def _delegated_responder(state: RevocationState, ca: Authority) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    if ca.name not in state.delegated:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = state.now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP RESPONDER ({ca.name}) TEST")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
        )
        state.delegated[ca.name] = (cert, key)
    return state.delegated[ca.name]


def _ocsp_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/ocsp-response")


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> web.Response:
    return _ocsp_response(ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(_DER))


_DER = __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER


def _answer(state: RevocationState, der: bytes) -> web.Response:
    try:
        request = ocsp.load_der_ocsp_request(der)
    except ValueError:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    cert_id = (request.hash_algorithm.name, request.issuer_name_hash, request.issuer_key_hash)
    ca = next((a for a in state.authorities.values() if cert_id in a.cert_ids), None)
    if ca is None:
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    now, faults, serial = state.now(), state.ocsp_faults, request.serial_number
    revocation = state.revocations.get(serial)
    if revocation is not None and revocation.in_ocsp and revocation.authority == ca.name:
        status, revoked_at, reason = ocsp.OCSPCertStatus.REVOKED, revocation.revoked_at, revocation.reason
    elif state.issued.get(serial) == ca.name:
        status, revoked_at, reason = ocsp.OCSPCertStatus.GOOD, None, None
    else:
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
    next_update = None if faults.next_update is None else now + timedelta(seconds=faults.next_update)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        request.issuer_name_hash, request.issuer_key_hash, serial, request.hash_algorithm,
        status, now, next_update, revoked_at, reason,
    )
    if faults.signer == "delegated":
        responder, key = _delegated_responder(state, ca)
        builder = builder.certificates([responder])
    elif faults.signer == "foreign":
        responder, key = state.foreign
        builder = builder.certificates([responder])
    else:
        responder, key = ca.cert, ca.key
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        builder = builder.add_extension(nonce, critical=False)
    except x509.ExtensionNotFound:
        pass
    response = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    body = response.public_bytes(_DER)
    if faults.tamper:
        # Move producedAt by one second: still well-formed, but no longer what was signed.
        produced = b"\x18\x0f" + response.produced_at_utc.strftime("%Y%m%d%H%M%SZ").encode()
        at = body.index(produced) + len(produced) - 2
        body = body[:at] + bytes([ord("0") + (body[at] - ord("0") + 1) % 10]) + body[at + 1:]
    return _ocsp_response(body)


async def ocsp_post(request: web.Request) -> web.Response:
    """POST /ocsp: the DER request is the body."""
    body = await request.content.read(_MAX_REQUEST + 1)
    if len(body) > _MAX_REQUEST:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    return _answer(request.app[REVOCATION_STATE], body)


async def ocsp_get(request: web.Request) -> web.Response:
    """GET /ocsp/{request}: the DER request, base64 (standard or URL-safe), in the path."""
    encoded = request.match_info["encoded"].strip()
    try:
        der = base64.b64decode(encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                               validate=True)
    except (binascii.Error, ValueError):
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    return _answer(request.app[REVOCATION_STATE], der)


def _crl(state: RevocationState, ca: Authority, delta: bool, origin: str) -> bytes:
    now, series = state.now(), state.crls[ca.name]
    base = set(series.base)
    if delta:
        entries = [r for r in state.revocations.values()
                   if r.authority == ca.name and r.in_crl and r.serial not in base]
    else:
        entries = [state.revocations[s] for s in series.base]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject).last_update(now).next_update(now + CRL_VALIDITY)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()), critical=False)  # type: ignore[arg-type]
    )
    if delta:
        builder = builder.add_extension(x509.CRLNumber(series.next_number), critical=False)
        builder = builder.add_extension(x509.DeltaCRLIndicator(series.base_number), critical=True)
    else:
        builder = builder.add_extension(x509.CRLNumber(series.base_number), critical=False)
        # Point at the delta on the address the client used, so a test server on any port works.
        delta_point = x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{origin}/crl/{ca.name}-delta.crl")], None, None, None)
        builder = builder.add_extension(x509.FreshestCRL([delta_point]), critical=False)
    for revocation in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(revocation.serial).revocation_date(revocation.revoked_at)
        if revocation.reason is not x509.ReasonFlags.unspecified:  # RFC 5280: omit rather than say unspecified
            entry = entry.add_extension(x509.CRLReason(revocation.reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(_DER)  # type: ignore[arg-type]


async def crl(request: web.Request) -> web.Response:
    """GET /crl/{ca}.crl and /crl/{ca}-delta.crl."""
    state = request.app[REVOCATION_STATE]
    name = request.match_info["name"]
    delta = name.endswith("-delta")
    ca = state.authorities.get(name.removesuffix("-delta"))
    if ca is None:
        raise web.HTTPNotFound(text=f"no CRL {name}.crl here")
    body = _crl(state, ca, delta, str(request.url.origin()))
    return web.Response(body=body, content_type="application/pkix-crl")


@web.middleware
async def count_and_fail(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count requests per endpoint and apply the injected faults."""
    state = request.app[REVOCATION_STATE]
    if request.path.startswith("/ocsp"):
        state.requests["ocsp"] += 1
        faults = state.ocsp_faults
    elif request.path.startswith("/crl/"):
        state.requests[request.path.removeprefix("/crl/")] += 1
        faults = state.crl_faults
    else:
        return await handler(request)
    if faults.delay > 0:
        await asyncio.sleep(faults.delay)
    if faults.down and faults.mode == "drop":
        if request.transport is not None:
            request.transport.abort()  # the client sees the connection reset, not an HTTP answer
        raise asyncio.CancelledError
    if faults.down:
        raise web.HTTPServiceUnavailable(text="injected fault") if faults.status == 503 else web.HTTPException(
            text="injected fault") from None
    return await handler(request)
