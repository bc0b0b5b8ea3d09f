"""Signed receipts: every accepted application gets one, bound to the request by its digest.

The digest is SHA-256 over the exclusive canonical form of the business document exactly as the
applicant signed and sent it (their ds:Signature included), so the receipt proves what was received,
not merely that something was.
"""

from __future__ import annotations

import base64
import hashlib

from lxml import etree

from gateway.lifecycle.application import Application
from signing.signer import DocumentSigner

RECEIPT_NS = "urn:egov-gateway:receipt:v1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def request_digest(document: etree._Element) -> str:
    """Base64 SHA-256 of the exclusive C14N of the document as received.

    The canonical form is hashed as lxml writes it, piece by piece, never held whole (a 10 MB document would
    need another 10 MB). Only for an element with no siblings (a root without top-level comments or processing
    instructions, as intake hands it over): the tree writer would include those, so any other element takes
    the one-piece way, which gives the same bytes for it."""
    digest = hashlib.sha256()
    if document.getprevious() is None and document.getnext() is None:
        etree.ElementTree(document).write_c14n(_Hashing(digest), exclusive=True, with_comments=False)
    else:
        digest.update(etree.tostring(document, method="c14n", exclusive=True, with_comments=False))
    return base64.b64encode(digest.digest()).decode()


class _Hashing:
    """A file-like sink that hashes what is written to it."""

    def __init__(self, digest: hashlib._Hash) -> None:
        self._digest = digest

    def write(self, data: bytes, /) -> int:
        self._digest.update(data)
        return len(data)


def receipt_request_digest(receipt: str) -> str | None:
    """The ``requestDigest`` a stored receipt (the gateway's own signed XML) was made with; None if it has none."""
    try:
        root = etree.fromstring(receipt.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    found = root.find(f"{{{RECEIPT_NS}}}requestDigest")
    return found.text if found is not None else None


def signed_receipt(app: Application, received: etree._Element, signer: DocumentSigner, indication: str) -> str:
    """Build and sign the receipt for ``app``; returns the signed XML."""
    E = etree.SubElement
    root = etree.Element(f"{{{RECEIPT_NS}}}Receipt", nsmap={None: RECEIPT_NS})
    for name, value in (("sessionId", app.id), ("messageId", app.message_id), ("senderId", app.sender_id),
                        ("serviceId", app.service_id), ("receivedAt", app.created_at)):
        E(root, f"{{{RECEIPT_NS}}}{name}").text = value
    applicant = E(root, f"{{{RECEIPT_NS}}}applicant")
    E(applicant, f"{{{RECEIPT_NS}}}iin").text = app.applicant_iin
    if app.applicant_bin:
        E(applicant, f"{{{RECEIPT_NS}}}bin").text = app.applicant_bin
    E(applicant, f"{{{RECEIPT_NS}}}name").text = app.applicant_name
    digest = E(root, f"{{{RECEIPT_NS}}}requestDigest", algorithm=SHA256, canonicalization=EXC_C14N)
    digest.text = request_digest(received)
    E(root, f"{{{RECEIPT_NS}}}signatureIndication").text = indication
    return signer.sign_bytes(root).decode()
