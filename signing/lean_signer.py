"""A lean enveloped XMLDSig signer for the gateway's own documents (receipts and the results it signs).

signxml's XMLSigner builds every signature generically: it re-parses and re-serialises the document and its
SignedInfo several times and resolves references in Python, about 0.15 ms of Python around each RSA signature
(measured: ``benchmarks/bench_pipeline.py``). The gateway signs documents of one fixed shape, so this signer does
only what such a signature needs, with the same output as signxml's for that shape:

* the Reference is ``URI=""`` with the enveloped-signature and exclusive C14N transforms, SHA-256: its digest is
  SHA-256 over the exclusive C14N (without comments) of the document as given, before the Signature is added;
* SignedInfo (exclusive C14N, RSA-SHA256) is rendered from a template in its canonical form (exclusive C14N of
  SignedInfo does not depend on its ancestors: every element in it carries the ``ds`` prefix it declares), and
  that canonical form is what is signed with PKCS#1 v1.5 (one call into ``cryptography``);
* KeyInfo holds the signer's certificate (and any chain) as signxml writes it.

Only documents of that shape take this path (:func:`lean_eligible`): a root with an ``Id``/``ID`` attribute (signxml
would reference ``#Id``), one that already holds a ``ds:Signature`` (or a placeholder), or one with siblings at the
document level goes through signxml as before. Tests check every output with signxml's XMLVerifier and with the
gateway's own DocumentVerifier.
"""

from __future__ import annotations

import base64
import copy
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# The canonical (exclusive C14N) form of SignedInfo: empty elements as start/end tag pairs, one namespace declaration.
_SIGNED_INFO = (
    f'<ds:SignedInfo xmlns:ds="{DS}">'
    f'<ds:CanonicalizationMethod Algorithm="{EXC_C14N}"></ds:CanonicalizationMethod>'
    f'<ds:SignatureMethod Algorithm="{RSA_SHA256}"></ds:SignatureMethod>'
    '<ds:Reference URI=""><ds:Transforms>'
    f'<ds:Transform Algorithm="{ENVELOPED}"></ds:Transform>'
    f'<ds:Transform Algorithm="{EXC_C14N}"></ds:Transform>'
    f'</ds:Transforms><ds:DigestMethod Algorithm="{SHA256}"></ds:DigestMethod>'
    '<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>'
)
_SIGNATURE_PREFIX = f'<ds:Signature xmlns:ds="{DS}">'


def lean_eligible(document: etree._Element) -> bool:
    """Whether ``document`` has the fixed shape the lean signer handles exactly as signxml would."""
    if document.get("Id") is not None or document.get("ID") is not None:
        return False
    if document.getprevious() is not None or document.getnext() is not None:
        return False
    return next(document.iter(f"{{{DS}}}Signature"), None) is None


class LeanRsaSigner:
    """Enveloped RSA-SHA256 signatures over the whole document (see the module's description)."""

    def __init__(self, private_key: rsa.RSAPrivateKey, certificates: list[x509.Certificate]) -> None:
        self._key = private_key
        # As signxml writes them: the PEM body (64-character lines, a final newline) of each certificate.
        bodies = "".join(
            f"<ds:X509Certificate>{_pem_body(certificate)}</ds:X509Certificate>" for certificate in certificates)
        self._key_info = f"<ds:KeyInfo><ds:X509Data>{bodies}</ds:X509Data></ds:KeyInfo></ds:Signature>"
        self._parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)

    def signature_for(self, document: etree._Element) -> etree._Element:
        """The ds:Signature element that signs ``document`` (not yet attached to it)."""
        canonical = etree.tostring(document, method="c14n", exclusive=True, with_comments=False)
        digest = base64.b64encode(hashlib.sha256(canonical).digest()).decode()
        signed_info = _SIGNED_INFO.replace("{digest}", digest)
        value = self._key.sign(signed_info.encode(), padding.PKCS1v15(), hashes.SHA256())
        text = (f"{_SIGNATURE_PREFIX}{signed_info}<ds:SignatureValue>{base64.b64encode(value).decode()}"
                f"</ds:SignatureValue>{self._key_info}")
        return etree.fromstring(text, self._parser)

    def sign(self, document: etree._Element) -> etree._Element:
        """A signed copy of ``document`` (the input is not modified), its Signature the root's last child."""
        root = copy.deepcopy(document)
        root.tail = None
        root.append(self.signature_for(root))
        return root


def _pem_body(certificate: x509.Certificate) -> str:
    pem = certificate.public_bytes(Encoding.PEM).decode()
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return "\n".join(lines) + "\n"
