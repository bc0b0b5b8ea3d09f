"""Signing and verifying one WS-Security envelope (measured, never asserted).

    .venv/bin/python benchmarks/bench_ws_security.py [--rounds 300]

The envelope holds a signed KazNEB reader registration (about 7 KB in all), signed by the test PKI's ``portal``
system certificate (RSA-2048). Verification is the gateway's :class:`signing.wssecurity.EnvelopeVerifier` with
the test PKI trusted; after the first round the certificate path comes from the trust store's cache, as it does
for a sender that calls repeatedly. Revocation and the replay check (Redis) are not included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

from mocks.pki import generate_pki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.policy import VerificationPolicy
from signing.signer import SigningKey
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from signing.wssecurity import SOAP11, EnvelopeVerifier, WsSecurityPolicy
from signing.wssecurity_sign import sign_envelope
from signing.xmlsafe import parse_untrusted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        pki = generate_pki(Path(directory) / "pki")
        files = pki.systems["portal"]
        key = SigningKey.from_pem(files.cert, files.key)
        envelope = etree.fromstring(f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><x:Op xmlns:x="urn:x"/></s:Body>'
                                    '</s:Envelope>')
        envelope[0][0].append(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE))
        plain = etree.tostring(envelope)
        started = time.perf_counter()
        signed = [etree.tostring(sign_envelope(etree.fromstring(plain), key)) for _ in range(rounds)]
        sign_ms = (time.perf_counter() - started) * 1000 / rounds
        verifier = EnvelopeVerifier(DocumentVerifier(VerificationPolicy(), TrustStore.from_files(
            pki.trust_anchors, pki.intermediates)), WsSecurityPolicy())
        parsed = [parse_untrusted(raw) for raw in signed]
        verifier.verify(parsed[0])
        started = time.perf_counter()
        for tree in parsed:
            verifier.verify(tree)
        verify_ms = (time.perf_counter() - started) * 1000 / rounds
    print(f"envelope {len(signed[0])} bytes, {rounds} rounds: sign {sign_ms:.2f} ms, verify {verify_ms:.2f} ms")


if __name__ == "__main__":
    main()
