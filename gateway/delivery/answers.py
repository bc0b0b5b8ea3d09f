"""Checking a back-end's answer before it becomes an application's result: safe XML, the provider's signature,
the service's result schema; then the gateway's own signature when the provider did not sign.

Security: a signature by any trusted key is not enough when the service names its provider (``provider_bin``):
the answer must come from that organisation's certificate, or any trusted party could issue results.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.config import ProviderSignature
from gateway.delivery.registry import Service
from gateway.errors import GatewayError
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier, SignatureRejected
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
    """Pure checks (no storage): raises GatewayError PROVIDER_BAD_RESPONSE or PROVIDER_SIGNATURE_INVALID."""

    def __init__(self, signer: DocumentSigner, provider_verifier: DocumentVerifier, xml_limits: XmlLimits) -> None:
        self.signer, self.provider_verifier, self.xml_limits = signer, provider_verifier, xml_limits

    def check(self, service: Service, answer: bytes) -> CheckedAnswer:
        try:
            root = parse_untrusted(answer, self.xml_limits)
        except UnsafeXmlError as exc:
            raise GatewayError("PROVIDER_BAD_RESPONSE", exc.detail) from None
        provider_signed = root.find(DS_SIGNATURE) is not None
        if provider_signed:
            content = self._provider_content(service, root)
        elif service.settings.provider_signature is ProviderSignature.REQUIRED:
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", "the provider's answer is not signed")
        else:
            content = root
        schema = service.result_schema
        if schema is not None and not schema.validate(content):
            error = schema.error_log.last_error
            raise GatewayError("PROVIDER_BAD_RESPONSE", error.message if error else "schema")
        return CheckedAnswer(answer if provider_signed else self.signer.sign_bytes(root), provider_signed)

    def _provider_content(self, service: Service, root: etree._Element) -> etree._Element:
        try:
            verified = self.provider_verifier.verify(root)
        except SignatureRejected as rejected:
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", "; ".join(rejected.report.errors)) from None
        expected = service.settings.provider_bin
        if expected and verified.identity.bin != expected:
            signer = verified.identity.organisation or verified.identity.common_name
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", f"signed by {signer}, not by the provider")
        return verified.signed
