"""Checking a back-end's answer before it becomes an application's result: safe XML, the provider's signature
(its organisation and the revocation of its certificate), the service's result schema, the answer's reference to
its application; then the gateway's own signature when the provider did not sign.

Security: a signature by any trusted key is not enough. The answer must come from the provider's own certificate
(``provider_bin``, required with ``provider_signature = "required"``), that certificate must not be revoked, and
the signed content must name this application's applicant and the application itself, or a genuine answer for
someone else could be passed off as this one's.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.config import ProviderSignature
from gateway.delivery.registry import Service
from gateway.errors import GatewayError
from gateway.lifecycle.application import Application
from signing.applicant import ApplicantKind
from signing.idnumbers import mask_id
from signing.policy import RevocationMode
from signing.report import SubIndication
from signing.revocation import RevocationChecker, apply_revocation
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted

DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer that passed every check, ready for the cabinet."""

    signed: bytes
    "The result as stored: the provider's signed bytes unchanged, or the answer signed by the gateway."
    provider_signed: bool
    "True when the provider signed it (and its signature was checked)."


class AnswerCheck:
    """Checks without storage. Raises GatewayError: PROVIDER_BAD_RESPONSE, PROVIDER_SIGNATURE_INVALID,
    PROVIDER_RESULT_MISMATCH, or PROVIDER_SIGNATURE_UNCHECKED (the provider's revocation status could not be
    learnt now: transient, the answer may be checked again later)."""

    def __init__(self, signer: DocumentSigner, provider_verifier: DocumentVerifier, xml_limits: XmlLimits, *,
                 revocation: RevocationChecker | None = None,
                 revocation_mode: RevocationMode = RevocationMode.OFF) -> None:
        self.signer, self.provider_verifier, self.xml_limits = signer, provider_verifier, xml_limits
        self.revocation, self.revocation_mode = revocation, revocation_mode

    async def check(self, service: Service, answer: bytes, app: Application) -> CheckedAnswer:
        try:
            root = parse_untrusted(answer, self.xml_limits)
        except UnsafeXmlError as exc:
            raise GatewayError("PROVIDER_BAD_RESPONSE", exc.detail) from None
        provider_signed = root.find(DS_SIGNATURE) is not None
        if provider_signed:
            content = await self._provider_content(service, root)
        elif service.settings.provider_signature is ProviderSignature.REQUIRED:
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", "the provider's answer is not signed")
        else:
            content = root
        schema = service.result_schema
        if schema is not None and not schema.validate(content):
            error = schema.error_log.last_error
            raise GatewayError("PROVIDER_BAD_RESPONSE", error.message if error else "schema")
        if service.settings.bind_results:
            check_binding(service, content, app)
        return CheckedAnswer(answer if provider_signed else self.signer.sign_bytes(root), provider_signed)

    async def _provider_content(self, service: Service, root: etree._Element) -> etree._Element:
        try:
            verified = self.provider_verifier.verify(root)
        except SignatureRejected as rejected:
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", "; ".join(rejected.report.errors)) from None
        expected = service.settings.provider_bin
        if expected and verified.identity.bin != expected:
            signer = verified.identity.organisation or verified.identity.common_name
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", f"signed by {signer}, not by the provider")
        await self._check_revocation(verified)
        return verified.signed

    async def _check_revocation(self, verified: VerifiedDocument) -> None:
        """The provider's certificate, checked like an applicant's (the same checker, mode and cache)."""
        try:
            await apply_revocation(verified, self.revocation, self.revocation_mode)
        except SignatureRejected as rejected:
            detail = "; ".join(rejected.report.errors)
            if rejected.report.sub_indication is SubIndication.TRY_LATER:
                raise GatewayError("PROVIDER_SIGNATURE_UNCHECKED", detail) from None
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", detail) from None


def check_binding(service: Service, content: etree._Element, app: Application) -> None:
    """The answer names this application's applicant (IIN, or BIN for organisation services) and the application
    (its sessionId or messageId), each in exactly one element; raises PROVIDER_RESULT_MISMATCH otherwise."""
    settings = service.settings
    if service.applicant.kind is ApplicantKind.ORGANISATION:
        element, expected, what = settings.result_bin_element, app.applicant_bin, "BIN"
    else:
        element, expected, what = settings.result_iin_element, app.applicant_iin, "IIN"
    named = _single(content, element)
    if not expected or named != expected:
        raise GatewayError("PROVIDER_RESULT_MISMATCH",
                           f"the answer is for {what} {mask_id(named or '')}, not for this application's applicant")
    reference = _single(content, settings.result_reference_element)
    if reference not in (app.id, app.message_id):
        raise GatewayError("PROVIDER_RESULT_MISMATCH",
                           f"<{settings.result_reference_element}> names another application, not this one "
                           "(its sessionId or messageId)")


def _single(content: etree._Element, local_name: str) -> str | None:
    """The token-normalised text of the one element with this local name; None when absent or repeated."""
    found = [el for el in content.iter() if isinstance(el.tag, str) and etree.QName(el).localname == local_name]
    return " ".join("".join(found[0].itertext()).split()) if len(found) == 1 else None
