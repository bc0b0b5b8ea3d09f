"""The E-licensing mock's check of WS-Security on incoming calls, when it is configured to require it.

The gateway's SOAP connector signs its calls with the gateway's system key when the service asks for it
(``ws_security = true``); this mock then verifies them with the same strict verifier the gateway uses for its
own senders, and that the signer is the gateway (``expected_bin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from signing.wssecurity import EnvelopeVerifier, WsSecurityPolicy, WsSecurityRejected, security_headers

if TYPE_CHECKING:
    from mocks.pki import TestPki


@dataclass(frozen=True)
class RequiredWsSecurity:
    """Calls must carry a valid WS-Security signature by the system certificate with ``expected_bin``."""

    verifier: EnvelopeVerifier
    "The strict verifier (trusting the test PKI)."
    expected_bin: str
    "BIN of the caller's system certificate (the gateway's)."

    def refusal(self, envelope: etree._Element) -> str | None:
        """Why the call is refused, or None when its signature is good."""
        if not security_headers(envelope, None):
            return "a WS-Security signature is required"
        try:
            verified = self.verifier.verify(envelope)
        except WsSecurityRejected as rejected:
            return f"WS-Security refused ({rejected.code}): {rejected.reason}"
        if verified.document.identity.bin != self.expected_bin:
            return "the WS-Security signature is not the gateway's"
        return None


def gateway_calls_only(pki: TestPki) -> RequiredWsSecurity:
    """Only calls WS-Security-signed by the test PKI's ``gateway`` system certificate (the demo's provider)."""
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    return RequiredWsSecurity(EnvelopeVerifier(verifier, WsSecurityPolicy()), pki.system_bins["gateway"])
