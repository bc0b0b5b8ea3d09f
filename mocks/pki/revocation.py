"""The test PKI's revocation services on loopback: an RFC 6960 OCSP responder and RFC 5280 base + delta CRLs.

THIS IS A TEST SERVICE. The responder is the CA itself: responses are signed directly with the issuing CA's
key (no delegated responder) unless a test asks otherwise. It answers for certificates of the NCA
intermediates and of the roots, RSA and GOST (another issuer gets ``unauthorized``); the GOST hierarchy's
answers and CRLs are GOST 34.10-2015 signed, as NCA's are; every certificate in the PKI
directory counts as issued (the NCA intermediate too, by the root): ``good``, ``revoked`` once revoked,
``unknown`` for other serials; thisUpdate now, nextUpdate now + 10 minutes, a nonce echoed (unless the fault
``nonce: false`` makes it a responder that ignores nonces; ``replay: true`` sends the last answer made for the
serial again, as an attacker replaying a captured answer would). ``POST /ocsp`` (DER) or ``GET /ocsp/{base64}``.

CRLs, modelled simply: the base (``GET /crl/nca.crl``, ``/crl/root.crl``; nextUpdate now + 1 hour) lists
the revocations known at the last ``POST /_control/publish-base`` (none at start) and names the delta in
FreshestCRL; the delta (``/crl/nca-delta.crl``, ...; nextUpdate now + 10 minutes) lists those made since,
DeltaCRLIndicator = the base's CRLNumber.

Control (JSON; 400 for a bad body, 404 for a serial never issued or an unknown person): ``POST /_control/revoke``
``{"serial": "<hex>"``, ``"person": "<handle>"`` (that person's SIGN certificate; with ``"gost": true`` their GOST
SIGN certificate) or ``"ca": "nca"`` / ``"gost-nca"`` (the intermediate's certificate, revoked at its root's OCSP
and CRLs), ``"reason": "key_compromise",
"where": "both" | "crl_only" (OCSP keeps saying good) | "ocsp_only"}``;
``POST /_control/ocsp`` and ``/_control/crl`` with :class:`Faults` fields, e.g. ``{"down": true}``;
``POST /_control/publish-base``; ``POST /_control/reset``; ``GET /_control/state`` (with request counts).
Run: ``python -m mocks.pki.revocation --pki DIR --port 8790`` or ``await run_revocation(pki, port=...)``.

With a :class:`~mocks.statefile.StateFile` the revocations and the CRL series survive a restart (the demo keeps
them in ``<state>/world/revocations.json``); faults and request counts do not.
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
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mocks.pki import TestPki, gost, load_pki
from mocks.statefile import StateFile, StateFileError
from signing import gost_x509

SERVED_CAS = ("nca", "root", "gost-nca", "gost-root")
"CAs this service answers for (OCSP and CRLs)."
OCSP_VALIDITY = timedelta(minutes=10)
CRL_VALIDITY = timedelta(hours=1)
DELTA_VALIDITY = timedelta(minutes=10)
_CERT_ID_HASHES = (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
_REASONS = {flag.name: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl}
_WHERE = ("both", "crl_only", "ocsp_only")
_MAX_REQUEST = 16 * 1024


@dataclass
class Authority:
    """A CA this service speaks for, with its CRL series (numbers and base snapshot, reset by reset)."""

    name: str
    "Name in :attr:`TestPki.authorities` (nca, root)."
    cert: x509.Certificate
    "The CA certificate."
    key: CertificateIssuerPrivateKeyTypes | int
    "The CA's key: signs OCSP responses and CRLs (a GOST CA's is its private scalar: it signs with GOST)."
    cert_ids: frozenset[tuple[str, bytes, bytes]]
    "(hash name, issuerNameHash, issuerKeyHash) for every CertID hash algorithm accepted."
    delegated: tuple[x509.Certificate, rsa.RSAPrivateKey | int] | None = None
    "A delegated responder certificate (EKU OCSPSigning) and key, made on first use."
    base_number: int = 1
    "CRLNumber of the base CRL (and DeltaCRLIndicator of the delta)."
    next_number: int = 2
    "CRLNumber of the delta; grows with every CRL revocation."
    base: tuple[int, ...] = ()
    "Serials in the base CRL: the revocations known at the last publish."


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
        return {**vars(self), "serial": f"{self.serial:x}", "revoked_at": self.revoked_at.isoformat(),
                "reason": self.reason.name}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revocation:
        """The inverse of :meth:`as_json` (KeyError, ValueError for a damaged record)."""
        return cls(int(data["serial"], 16), str(data["authority"]), datetime.fromisoformat(data["revoked_at"]),
                   x509.ReasonFlags[data["reason"]], bool(data["in_ocsp"]), bool(data["in_crl"]))


@dataclass
class Faults:
    """Injected failures for the OCSP or the CRL routes (the last three apply to OCSP only)."""

    down: bool = False
    "Answer ``status`` instead (or close the connection in mode ``drop``)."
    status: int = 503
    "HTTP status while down."
    mode: str = "status"
    "``status`` or ``drop``."
    delay: float = 0.0
    "Seconds to hold every answer."
    signer: str = "ca"
    "``ca``; ``delegated``: a responder certificate the CA issued (EKU OCSPSigning); ``foreign``: the foreign CA."
    tamper: bool = False
    "Alter a signed byte of each response after signing."
    next_update: int | None = int(OCSP_VALIDITY.total_seconds())
    "Seconds from thisUpdate to nextUpdate; None leaves nextUpdate out."
    nonce: bool = True
    "Echo the request's nonce; False: ignore it, as some responders do."
    replay: bool = False
    "Answer with the last response made for the same serial (its old thisUpdate and nonce), if there is one."


@dataclass
class RevocationState:
    """Everything the service knows, stored on the application under ``REVOCATION_STATE``."""

    authorities: dict[str, Authority]
    "The CAs answered for, by name."
    issued: dict[int, str]
    "Serial -> issuing CA name, for every certificate found in the PKI directory."
    foreign: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]
    "The foreign test CA, for responses signed by the wrong key."
    clock: Callable[[], datetime]
    'Aware "now".'
    revocations: dict[int, Revocation] = field(default_factory=dict)
    "By serial."
    faults: dict[str, Faults] = field(default_factory=dict)
    "Injected faults of the ``ocsp`` and the ``crl`` routes."
    requests: Counter[str] = field(default_factory=Counter)
    "Requests received per endpoint (``ocsp``, ``nca.crl``, ``nca-delta.crl``, ...)."
    people: dict[str, int] = field(default_factory=dict)
    "Person handle -> serial of their SIGN certificate, for revocations by ``person``."
    gost_people: dict[str, int] = field(default_factory=dict)
    "Person handle -> serial of their GOST SIGN certificate, for revocations by ``person`` with ``gost: true``."
    store: StateFile | None = None
    "Where revocations and CRL numbers are kept between runs; None keeps them in memory only."
    answered: dict[int, bytes] = field(default_factory=dict)
    "The last OCSP response made per serial, for the ``replay`` fault."

    def reset(self) -> None:
        self.revocations.clear()
        self.requests.clear()
        self.answered.clear()
        for ca in self.authorities.values():
            ca.base_number, ca.next_number, ca.base = 1, 2, ()
        self.faults = {"ocsp": Faults(), "crl": Faults()}

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def save(self) -> None:
        """Write the revocations and CRL series to :attr:`store` (nothing without one)."""
        if self.store is not None:
            self.store.save({
                "revocations": [r.as_json() for r in self.revocations.values()],
                "crls": {ca.name: {"base_number": ca.base_number, "next_number": ca.next_number,
                                   "base": [f"{serial:x}" for serial in ca.base]} for ca in self.authorities.values()},
            })

    def restore(self) -> None:
        """Read what :meth:`save` wrote, if anything; a revocation of a serial not in this PKI is dropped."""
        data = self.store.load() if self.store is not None else None
        if data is None or self.store is None:
            return
        try:
            for record in data.get("revocations", []):
                revocation = Revocation.from_json(record)
                if self.issued.get(revocation.serial) == revocation.authority:
                    self.revocations[revocation.serial] = revocation
            for name, series in data.get("crls", {}).items():
                if name in self.authorities:
                    ca = self.authorities[name]
                    ca.base_number, ca.next_number = int(series["base_number"]), int(series["next_number"])
                    ca.base = tuple(int(serial, 16) for serial in series["base"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StateFileError(f"{self.store.path} is damaged ({exc!r}); start with --fresh") from None


REVOCATION_STATE = web.AppKey("pki_revocation_state", RevocationState)


def _authority(pki: TestPki, name: str) -> Authority:
    files = pki.authorities[name]
    cert, ids = files.load_certificate(), set()
    for algorithm in _CERT_ID_HASHES:
        # The request builder hashes the issuer's key for us (the BIT STRING, not the whole SPKI).
        key_hash = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, algorithm).build().issuer_key_hash
        name_hash = hashes.Hash(algorithm)
        name_hash.update(cert.subject.public_bytes())
        ids.add((algorithm.name, name_hash.finalize(), key_hash))
    key = files.load_private_scalar() if gost_x509.is_gost(cert) else files.load_private_key()
    return Authority(name, cert, key, frozenset(ids))  # type: ignore[arg-type]


def _issued_serials(pki: TestPki, authorities: dict[str, Authority]) -> dict[int, str]:
    by_subject = {a.cert.subject: a.name for a in authorities.values()}
    certificates = (cert for path in sorted(pki.root.rglob("*.pem")) if not path.name.endswith(".key.pem")
                    for cert in x509.load_pem_x509_certificates(path.read_bytes()))
    return {cert.serial_number: by_subject[cert.issuer] for cert in certificates if cert.issuer in by_subject}


def _delegated_responder(state: RevocationState, ca: Authority) -> tuple[x509.Certificate, rsa.RSAPrivateKey | int]:
    if ca.delegated is None:
        now = state.now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP RESPONDER ({ca.name}) TEST")]))
            .issuer_name(ca.cert.subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
        )
        if isinstance(ca.key, int):  # a GOST CA delegates to a GOST responder
            scalar, point = gost.new_key()
            ca.delegated = (gost.certificate(builder, point, ca.key), scalar)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ca.delegated = (builder.public_key(key.public_key()).sign(ca.key, hashes.SHA256()), key)  # type: ignore[arg-type]
    return ca.delegated


def _ocsp_response(body: bytes | ocsp.OCSPResponseStatus) -> web.Response:
    if isinstance(body, ocsp.OCSPResponseStatus):
        body = ocsp.OCSPResponseBuilder.build_unsuccessful(body).public_bytes(Encoding.DER)
    return web.Response(body=body, content_type="application/ocsp-response")


def _answer(state: RevocationState, der: bytes) -> web.Response:
    try:
        request = ocsp.load_der_ocsp_request(der)
    except ValueError:
        return _ocsp_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    cert_id = (request.hash_algorithm.name, request.issuer_name_hash, request.issuer_key_hash)
    ca = next((a for a in state.authorities.values() if cert_id in a.cert_ids), None)
    if ca is None:
        return _ocsp_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    now, faults, serial = state.now(), state.faults["ocsp"], request.serial_number
    if faults.replay and serial in state.answered:
        return _ocsp_response(state.answered[serial])
    revocation, revoked_at, reason = state.revocations.get(serial), None, None
    if revocation is not None and revocation.in_ocsp and revocation.authority == ca.name:
        status, revoked_at, reason = ocsp.OCSPCertStatus.REVOKED, revocation.revoked_at, revocation.reason
    else:
        status = ocsp.OCSPCertStatus.GOOD if state.issued.get(serial) == ca.name else ocsp.OCSPCertStatus.UNKNOWN
    next_update = None if faults.next_update is None else now + timedelta(seconds=faults.next_update)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        request.issuer_name_hash, request.issuer_key_hash, serial, request.hash_algorithm,
        status, now, next_update, revoked_at, reason,
    )
    signers = {"ca": lambda: (ca.cert, ca.key), "foreign": lambda: state.foreign,
               "delegated": lambda: _delegated_responder(state, ca)}
    responder, key = signers[faults.signer]()
    for extension in request.extensions if faults.nonce else ():
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    extra = [responder] if responder is not ca.cert else []
    if isinstance(key, int):  # the GOST hierarchy answers with GOST signatures
        body = gost.ocsp_response(builder, responder, key, extra)
        response = ocsp.load_der_ocsp_response(body)
    else:
        builder = builder.certificates(extra) if extra else builder
        response = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder).sign(key, hashes.SHA256())  # type: ignore[arg-type]
        body = response.public_bytes(Encoding.DER)
    if faults.tamper:
        # Move producedAt by one second: still well-formed, but no longer what was signed.
        produced = b"\x18\x0f" + response.produced_at_utc.strftime("%Y%m%d%H%M%SZ").encode()
        at = body.index(produced) + len(produced) - 2
        body = body[:at] + bytes([ord("0") + (body[at] - ord("0") + 1) % 10]) + body[at + 1:]
    state.answered[serial] = body
    return _ocsp_response(body)


async def ocsp_endpoint(request: web.Request) -> web.Response:
    """POST /ocsp (the DER request is the body) and GET /ocsp/{request} (base64, either alphabet)."""
    if request.method == "POST":
        if request.content_length is not None and request.content_length > _MAX_REQUEST:
            return _ocsp_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        return _answer(request.app[REVOCATION_STATE], await request.read())
    encoded = request.match_info["encoded"].strip().replace("-", "+").replace("_", "/")
    try:
        der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return _ocsp_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    return _answer(request.app[REVOCATION_STATE], der)


async def crl(request: web.Request) -> web.Response:
    """GET /crl/{ca}.crl (the base) and /crl/{ca}-delta.crl, signed by the CA at every fetch."""
    state, name = request.app[REVOCATION_STATE], request.match_info["name"]
    ca, delta = state.authorities.get(name.removesuffix("-delta")), name.endswith("-delta")
    if ca is None:
        raise web.HTTPNotFound(text=f"no CRL {name}.crl here")
    now = state.now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject).last_update(now).next_update(now + (DELTA_VALIDITY if delta else CRL_VALIDITY))
        .add_extension(_authority_key_id(ca.cert), critical=False)
    )
    if delta:
        builder = builder.add_extension(x509.CRLNumber(ca.next_number), critical=False)
        builder = builder.add_extension(x509.DeltaCRLIndicator(ca.base_number), critical=True)
    else:
        builder = builder.add_extension(x509.CRLNumber(ca.base_number), critical=False)
        # Point at the delta on the address the client used, so a test server on any port works.
        delta_url = x509.UniformResourceIdentifier(f"{request.url.origin()}/crl/{ca.name}-delta.crl")
        builder = builder.add_extension(x509.FreshestCRL([x509.DistributionPoint([delta_url], None, None, None)]),
                                        critical=False)
    for revocation in state.revocations.values():
        if revocation.authority != ca.name or not revocation.in_crl or (revocation.serial in ca.base) is delta:
            continue
        entry = x509.RevokedCertificateBuilder().serial_number(revocation.serial).revocation_date(revocation.revoked_at)
        if revocation.reason is not x509.ReasonFlags.unspecified:  # RFC 5280: omit rather than say unspecified
            entry = entry.add_extension(x509.CRLReason(revocation.reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    if isinstance(ca.key, int):  # a GOST CA signs its CRLs with GOST
        body = gost.crl(builder, ca.key)
    else:
        body = builder.sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]
    return web.Response(body=body, content_type="application/pkix-crl")


def _authority_key_id(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    if gost_x509.is_gost(cert):
        return x509.AuthorityKeyIdentifier(gost_x509.key_hash(cert), None, None)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key())  # type: ignore[arg-type]


@web.middleware
async def count_and_fail(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count requests per endpoint and apply the injected faults."""
    state = request.app[REVOCATION_STATE]
    group, _, rest = request.path.strip("/").partition("/")
    if group not in ("ocsp", "crl"):
        return await handler(request)
    state.requests["ocsp" if group == "ocsp" else rest] += 1
    faults = state.faults[group]
    await asyncio.sleep(faults.delay)
    if faults.down and faults.mode == "drop" and request.transport is not None:
        request.transport.abort()  # the client sees the connection reset, not an HTTP answer
    if faults.down:
        return web.Response(status=faults.status, text="injected fault", headers={"Retry-After": "1"})
    return await handler(request)


# Checks of the /_control/ocsp and /_control/crl fields; type() rather than isinstance, as bool is an int.
_FAULT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "down": lambda v: type(v) is bool,
    "status": lambda v: type(v) is int and 400 <= v <= 599,
    "mode": lambda v: v in ("status", "drop"),
    "delay": lambda v: type(v) in (int, float) and 0 <= v <= 60,
    "signer": lambda v: v in ("ca", "delegated", "foreign"),
    "tamper": lambda v: type(v) is bool,
    "next_update": lambda v: v is None or (type(v) is int and v >= 0),
    "nonce": lambda v: type(v) is bool,
    "replay": lambda v: type(v) is bool,
}
_OCSP_ONLY = ("signer", "tamper", "next_update", "nonce", "replay")


def _revoke(state: RevocationState, data: dict[str, Any]) -> web.Response:
    if len({"serial", "person", "ca"} & set(data)) > 1:
        raise ValueError('give one of "serial", "person" or "ca", not both')
    if "person" in data:
        people = state.gost_people if data.get("gost") is True else state.people
        if data["person"] not in people:
            return web.json_response({"error": f"no person {data['person']!r} in the test PKI"}, status=404)
        serial = people[data["person"]]
    elif "ca" in data:
        if data["ca"] not in state.authorities or data["ca"] in ("root", "gost-root"):
            return web.json_response({"error": f"no intermediate CA {data['ca']!r} here"}, status=404)
        serial = state.authorities[data["ca"]].cert.serial_number
    else:
        serial = int(str(data.get("serial", "")).removeprefix("0x"), 16)  # ValueError: answered 400
    reason, where = data.get("reason", "unspecified"), data.get("where", "both")
    if reason not in _REASONS or where not in _WHERE:
        raise ValueError(f'"reason" must be one of {sorted(_REASONS)}, "where" one of {list(_WHERE)}')
    if serial not in state.issued:
        return web.json_response({"error": f"serial {serial:x} was not issued by {SERVED_CAS}"}, status=404)
    revocation = state.revocations[serial] = Revocation(
        serial, state.issued[serial], state.now(), _REASONS[reason], where != "crl_only", where != "ocsp_only")
    if revocation.in_crl:
        state.authorities[revocation.authority].next_number += 1  # the delta's content changed
    state.save()
    return web.json_response(revocation.as_json())


async def control(request: web.Request) -> web.Response:
    """POST /_control/{revoke,ocsp,crl,publish-base,reset} and GET /_control/state (see the module doc)."""
    state, action = request.app[REVOCATION_STATE], request.match_info["action"]
    try:
        data = await request.json() if request.method == "POST" and request.can_read_body else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if action == "revoke":
            return _revoke(state, data)
        if action in ("ocsp", "crl"):
            faults = state.faults[action]
            for key, value in data.items():
                if key not in _FAULT_CHECKS or (action == "crl" and key in _OCSP_ONLY) or not _FAULT_CHECKS[key](value):
                    raise ValueError(f"unknown key or bad value: {key!r}: {value!r}")
            vars(faults).update({key: float(v) if key == "delay" else v for key, v in data.items()})
            return web.json_response(vars(faults))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if action == "publish-base":
        for ca in state.authorities.values():
            ca.base = tuple(r.serial for r in state.revocations.values() if r.authority == ca.name and r.in_crl)
            ca.base_number, ca.next_number = ca.next_number, ca.next_number + 1
        state.save()
    elif action == "reset":
        state.reset()
        state.save()
    elif action != "state":
        raise web.HTTPNotFound(text=f"no control action {action!r}")
    return web.json_response({
        "revocations": [r.as_json() for r in state.revocations.values()],
        "crls": {ca.name: {"base_number": ca.base_number, "next_number": ca.next_number,
                           "base": [f"{serial:x}" for serial in ca.base]} for ca in state.authorities.values()},
        "faults": {group: vars(faults) for group, faults in state.faults.items()},
        "requests": dict(state.requests), "issued": len(state.issued),
    })


def create_revocation_app(pki: TestPki, *, clock: Callable[[], datetime] | None = None,
                          store: StateFile | None = None) -> web.Application:
    """The OCSP/CRL service for ``pki`` (read here, once); ``clock`` gives an aware "now" (default UTC now);
    ``store`` keeps revocations between runs (read here; :class:`~mocks.statefile.StateFileError` if damaged)."""
    authorities = {name: _authority(pki, name) for name in SERVED_CAS}
    foreign = pki.authorities["foreign-ca"]
    state = RevocationState(authorities, _issued_serials(pki, authorities),
                            (foreign.load_certificate(), foreign.load_private_key()),  # type: ignore[arg-type]
                            clock or (lambda: datetime.now(UTC)),
                            people={p.handle: p.sign.load_certificate().serial_number for p in pki.people.values()},
                            gost_people={p.handle: p.gost_sign.load_certificate().serial_number
                                         for p in pki.people.values() if p.gost_sign is not None},
                            store=store)
    state.reset()
    state.restore()
    app = web.Application(middlewares=[count_and_fail], client_max_size=_MAX_REQUEST)
    app[REVOCATION_STATE] = state
    app.router.add_post("/ocsp", ocsp_endpoint)
    app.router.add_get("/ocsp/{encoded:.+}", ocsp_endpoint)
    app.router.add_get("/crl/{name}.crl", crl)
    app.router.add_route("*", "/_control/{action}", control)
    return app


async def run_revocation(
    pki: TestPki, host: str = "127.0.0.1", port: int = 8790, *, clock: Callable[[], datetime] | None = None
) -> web.AppRunner:
    """Start the service on a real socket and return the runner; the caller awaits ``runner.cleanup()``."""
    runner = web.AppRunner(create_revocation_app(pki, clock=clock))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m mocks.pki.revocation --pki DIR [--host 127.0.0.1] [--port 8790]``."""
    parser = argparse.ArgumentParser(prog="python -m mocks.pki.revocation", description="Test PKI OCSP and CRLs")
    parser.add_argument("--pki", type=Path, required=True, help="directory of a generated test PKI")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8790, help="port to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    web.run_app(create_revocation_app(load_pki(args.pki)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
