"""The SOAP intakes' header processing: SOAP 1.1 mustUnderstand, and WS-Security as a sender's credential.

:func:`inspect_envelope` is called by :func:`gateway.intake.soap_io.read_operation` on every parsed envelope:

* a header block for us (no actor, ``.../actor/next`` or ours) with ``mustUnderstand`` "1"/"true" that the gateway
  does not process is refused with CLIENT_MUST_UNDERSTAND (the SOAP 1.1 ``MustUnderstand`` fault);
  ``wsse:Security`` is processed on the endpoints of ``[ws_security] endpoints``;
* a ``wsse:Security`` header there is verified (:class:`signing.wssecurity.EnvelopeVerifier`, in a bounded pool
  of worker threads: the caller is not authenticated yet), then the signer's revocation (documents' policy), then
  replay (the signature is remembered in Redis for the replay window). A header that fails refuses the request,
  whoever the sender is (fail closed). The verified BIN is kept on the request for :func:`signed_by`; the
  operation the intake goes on with is a child of the very Body that was verified.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from aiohttp import web
from lxml import etree
from redis.asyncio import Redis

from gateway.config import WsSecuritySettings
from gateway.errors import GatewayError
from gateway.shep.envelope import BODY, HEADER, SOAP_ENV
from signing.policy import RevocationMode
from signing.revocation import RevocationChecker, apply_revocation
from signing.verifier import SignatureRejected
from signing.wssecurity import (
    NEXT_ACTOR,
    SECURITY,
    EnvelopeVerifier,
    VerifiedEnvelope,
    WsSecurityRejected,
    security_headers,
)

log = logging.getLogger("egov.wss")

_MUST_UNDERSTAND = f"{{{SOAP_ENV}}}mustUnderstand"
_ACTOR = f"{{{SOAP_ENV}}}actor"
_ENDPOINTS = {"/shep/sync": "sync", "/shep/async": "async"}
_SIGNED_BY = web.RequestKey("egov.ws_security.bin", str)


class WsSecurityGate:
    """Verifies WS-Security headers for the SOAP intakes, a bounded number at once per process."""

    def __init__(self, verifier: EnvelopeVerifier, settings: WsSecuritySettings, *, redis: Redis, prefix: str,
                 revocation: RevocationChecker | None, revocation_mode: RevocationMode) -> None:
        self.verifier = verifier
        self.settings = settings
        self.redis = redis
        self.prefix = prefix
        self.revocation = revocation
        self.revocation_mode = revocation_mode
        self.replay_window = timedelta(seconds=settings.max_lifetime_seconds) + verifier.policy.clock_skew
        self._executor = ThreadPoolExecutor(max_workers=settings.max_concurrent_checks,
                                            thread_name_prefix="egov-wss")
        self._slots = asyncio.Semaphore(settings.max_concurrent_checks)

    def enabled(self, endpoint: str) -> bool:
        return endpoint in self.settings.endpoints

    async def check(self, envelope: etree._Element) -> VerifiedEnvelope:
        """The verified, unrevoked, first-seen signature of ``envelope``, or a GatewayError."""
        verified = await self._verify_off_loop(envelope)
        try:
            document = await apply_revocation(verified.document, self.revocation, self.revocation_mode)
        except SignatureRejected as rejected:
            raise _refusal(rejected.report.error_code or "SIG_REVOKED", "; ".join(rejected.report.errors),
                           rejected) from None
        seconds = max(1, int(self.replay_window.total_seconds()))
        first = await self.redis.set(f"{self.prefix}:wss:seen:{verified.replay_key.hex()}", b"1", nx=True, ex=seconds)
        if not first:
            log.info("WS-Security signature replayed (signer BIN %s)", document.identity.bin)
            raise GatewayError("CLIENT_WSS_REPLAY", "this signature was already accepted; sign each request anew")
        return verified

    async def _verify_off_loop(self, envelope: etree._Element) -> VerifiedEnvelope:
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self.settings.queue_seconds)
            except TimeoutError:
                raise GatewayError("GATEWAY_OVERLOADED", "WS-Security checks are at capacity", retry_after=1) from None
        else:
            await self._slots.acquire()
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.verifier.verify, envelope)
        future.add_done_callback(lambda _: self._slots.release())  # the slot is free only when the thread is
        try:
            return await asyncio.shield(future)
        except WsSecurityRejected as rejected:
            log.info("WS-Security refused: %s", rejected)
            raise _refusal(rejected.code, rejected.reason, rejected) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _refusal(code: str, reason: str, rejected: WsSecurityRejected | SignatureRejected) -> GatewayError:
    report = rejected.report
    return GatewayError(code, reason, sub_indication=report.sub_indication if report else None,
                        report=report.to_dict() if report else None)


def _for_us(block: etree._Element, actor: str | None) -> bool:
    target = block.get(_ACTOR)
    return target is None or target == NEXT_ACTOR or (actor is not None and target == actor)


def check_must_understand(envelope: etree._Element, understood: frozenset[str], actor: str | None) -> None:
    """Refuse a header block for us marked mustUnderstand that is not in ``understood`` (Clark names)."""
    for header in envelope.iterchildren(HEADER):
        for block in header:
            if not isinstance(block.tag, str) or not _for_us(block, actor):
                continue
            if (block.get(_MUST_UNDERSTAND) or "").strip() in ("1", "true") and block.tag not in understood:
                raise GatewayError("CLIENT_MUST_UNDERSTAND", f"header {etree.QName(block).text[:120]} is not processed "
                                                             "by this endpoint")


async def inspect_envelope(request: web.Request, envelope: etree._Element, gate: WsSecurityGate | None) -> None:
    """Header processing for one SOAP request (see the module's docstring); keeps the verified BIN on it."""
    endpoint = _ENDPOINTS.get(request.path, "")
    enabled = gate is not None and gate.enabled(endpoint)
    actor = gate.settings.actor if gate is not None else None
    check_must_understand(envelope, frozenset({SECURITY}) if enabled else frozenset(), actor)
    if gate is None or not enabled:
        return
    if not security_headers(envelope, actor):
        return
    verified = await gate.check(envelope)
    bodies = envelope.findall(BODY)
    if len(bodies) != 1 or verified.body is not bodies[0]:  # the intake reads the operation from this Body
        raise GatewayError("CLIENT_WSS_INVALID", "the verified Body is not the envelope's Body")
    signer_bin = verified.document.identity.bin
    if not signer_bin:  # the verifier requires one; never let a missing BIN through as "signed"
        raise GatewayError("CLIENT_WSS_NOT_SYSTEM_CERTIFICATE")
    request[_SIGNED_BY] = signer_bin


def signed_by(request: web.Request) -> str | None:
    """The BIN of the system certificate whose WS-Security signature over this request verified, if any."""
    return request.get(_SIGNED_BY)
