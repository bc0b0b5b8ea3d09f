"""Signed receipts: every accepted application gets one, bound to the request by its digest.

The digest is SHA-256 over the exclusive canonical form of the business document exactly as the
applicant signed and sent it (their ds:Signature included), so the receipt proves what was received,
not merely that something was.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from gateway.lifecycle.application import Application
from gateway.monitor.metrics import observe_receipt_batch
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from signing.xmlsafe import write_canonical

RECEIPT_NS = "urn:egov-gateway:receipt:v1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
DS = "http://www.w3.org/2000/09/xmldsig#"


def request_digest(document: etree._Element) -> str:
    """Base64 SHA-256 of the exclusive C14N of the document as received.

    The canonical form is hashed as lxml writes it, piece by piece (:func:`signing.xmlsafe.write_canonical`), never
    held whole: a 10 MB document would need another 10 MB."""
    digest = hashlib.sha256()
    write_canonical(document, _Hashing(digest), exclusive=True, with_comments=False)
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


def signed_receipt(app: Application, received_digest: str, signer: DocumentSigner, indication: str) -> str:
    """Build and sign the receipt for ``app`` (an enveloped signature of its own); returns the signed XML.
    ``received_digest``: :func:`request_digest` of the document as received."""
    return signer.sign_bytes(receipt_element(app, received_digest, indication)).decode()


# ------------------------------------------------------------------------------------------- batched receipts
#
# With ``[signer] receipt_batches = true`` receipts are signed in batches (group commit): the receipts pending when
# the signer gets to them are the leaves of a Merkle tree, the gateway signs one ReceiptBatch document naming its
# root, and each receipt carries its inclusion path and that signed ReceiptBatch. One signature serves a whole
# batch, so the cost per receipt falls with load; at low load a batch holds one receipt and nothing waits (the
# batch is signed at the event loop's next turn). What a holder verifies: :func:`verify_receipt`.

RECEIPT_BATCH_HASH = "urn:egov-gateway:receipt:merkle-sha256"
"Leaves SHA-256(0x00 || exclusive C14N of the receipt without batchProof), nodes SHA-256(0x01 || left || right)."
MAX_BATCH = 256
MAX_PATH = 64
_PROOF = f"{{{RECEIPT_NS}}}batchProof"
_BATCH = f"{{{RECEIPT_NS}}}ReceiptBatch"
_SIBLING = f"{{{RECEIPT_NS}}}sibling"


def leaf_hash(canonical: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + canonical).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_tree(leaves: list[bytes]) -> tuple[bytes, list[list[tuple[str, bytes]]]]:
    """The root over ``leaves`` and each leaf's path, bottom up, as (side of the sibling, sibling hash); an odd node
    at the end of a level goes up unchanged (never paired with itself)."""
    if not leaves:
        raise ValueError("no leaves")
    paths: list[list[tuple[str, bytes]]] = [[] for _ in leaves]
    level, members = list(leaves), [[index] for index in range(len(leaves))]
    while len(level) > 1:
        upper, upper_members = [], []
        for index in range(0, len(level) - 1, 2):
            left, right = level[index], level[index + 1]
            for member in members[index]:
                paths[member].append(("right", right))
            for member in members[index + 1]:
                paths[member].append(("left", left))
            upper.append(node_hash(left, right))
            upper_members.append(members[index] + members[index + 1])
        if len(level) % 2:
            upper.append(level[-1])
            upper_members.append(members[-1])
        level, members = upper, upper_members
    return level[0], paths


def fold_path(leaf: bytes, path: list[tuple[str, bytes]]) -> bytes:
    """The root that ``leaf`` and its path lead to."""
    node = leaf
    for side, sibling in path:
        node = node_hash(sibling, node) if side == "left" else node_hash(node, sibling)
    return node


def receipt_element(app: Application, received_digest: str, indication: str) -> etree._Element:
    """The receipt's content (unsigned): what :func:`signed_receipt` signs. ``received_digest``: the document as
    received, by :func:`request_digest`."""
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
    digest.text = received_digest
    E(root, f"{{{RECEIPT_NS}}}signatureIndication").text = indication
    return root


def sign_receipt_batch(receipts: list[etree._Element], signer: DocumentSigner, signed_at: str) -> list[str]:
    """Sign ``receipts`` (unsigned receipt elements) under one Merkle root; each comes back as signed XML with its
    batchProof (its path, then the signed ReceiptBatch), which is also appended to the element given."""
    leaves = [leaf_hash(etree.tostring(receipt, method="c14n", exclusive=True, with_comments=False))
              for receipt in receipts]
    root_hash, paths = merkle_tree(leaves)
    batch = etree.Element(_BATCH, nsmap={None: RECEIPT_NS})
    etree.SubElement(batch, f"{{{RECEIPT_NS}}}root", algorithm=RECEIPT_BATCH_HASH).text = (
        base64.b64encode(root_hash).decode())
    etree.SubElement(batch, f"{{{RECEIPT_NS}}}size").text = str(len(receipts))
    etree.SubElement(batch, f"{{{RECEIPT_NS}}}signedAt").text = signed_at
    signed_batch = signer.sign_bytes(batch)
    out = []
    batch_element = etree.fromstring(signed_batch)
    for index, (receipt, path) in enumerate(zip(receipts, paths, strict=True)):
        proof = etree.SubElement(receipt, _PROOF, algorithm=RECEIPT_BATCH_HASH, index=str(index),
                                 size=str(len(receipts)))
        for side, sibling in path:
            etree.SubElement(proof, _SIBLING, side=side).text = base64.b64encode(sibling).decode()
        proof.append(copy.deepcopy(batch_element))
        out.append(etree.tostring(receipt, xml_declaration=True, encoding="UTF-8").decode())
    return out


class ReceiptIssuer:
    """Signs every accepted application's receipt: one signature each, or (``batched``) in group-committed batches.

    Batches: a receipt waits only for the event loop's next turn; whatever is pending then (at most
    :data:`MAX_BATCH`) is signed under one root. A failure to sign fails every receipt of that batch (the requests
    are refused as before, nothing was written for them)."""

    def __init__(self, signer: DocumentSigner, *, batched: bool = False,
                 clock: Callable[[], str] | None = None) -> None:
        self.signer, self.batched = signer, batched
        self._clock = clock or (lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
        self._pending: list[tuple[etree._Element, asyncio.Future[str]]] = []
        self._scheduled = False
        self.batches = 0
        "Batches signed by this process (with :attr:`receipts`: the mean batch size)."
        self.receipts = 0

    async def issue(self, app: Application, received_digest: str, indication: str) -> str:
        """The signed receipt of ``app`` (XML text); ``received_digest`` is :func:`request_digest` of the document
        as received."""
        if not self.batched:
            self.batches += 1
            self.receipts += 1
            return signed_receipt(app, received_digest, self.signer, indication)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._pending.append((receipt_element(app, received_digest, indication), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False
        live = [(receipt, future) for receipt, future in batch if not future.done()]  # a cancelled request's goes
        if not live:
            return
        try:
            signed = sign_receipt_batch([receipt for receipt, _ in live], self.signer, self._clock())
        except Exception as exc:  # every waiting request gets the failure; none is left hanging
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.receipts += len(live)
        observe_receipt_batch(len(live))
        for (_, future), text in zip(live, signed, strict=True):
            if not future.done():
                future.set_result(text)


class ReceiptInvalid(Exception):
    """A receipt that does not verify; :attr:`code` says which check failed."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt that verified: its signed content and who signed it."""

    receipt: etree._Element
    "The receipt exactly as signed (without its signature or batchProof), re-parsed from the canonical bytes."
    signer: VerifiedDocument
    "The gateway's signature that passed: over the receipt itself, or over the ReceiptBatch naming its root."
    batched: bool
    "True for a receipt signed in a batch (the inclusion path was checked)."

    @property
    def request_digest(self) -> str | None:
        return self.receipt.findtext(f"{{{RECEIPT_NS}}}requestDigest")


def verify_receipt(receipt: bytes | etree._Element, verifier: DocumentVerifier, *,
                   document: etree._Element | None = None) -> VerifiedReceipt:
    """Verify a receipt as its holder does; raises :class:`ReceiptInvalid`.

    A single receipt: its enveloped signature (``verifier``: the gateway's certificate, its path to a trust anchor).
    A batched one: (1) the ReceiptBatch inside batchProof, taken out as a document of its own, carries the gateway's
    valid signature, and its ``root`` is read from what that signature covers; (2) SHA-256(0x00 || exclusive C14N of
    the receipt without batchProof), folded with the path's siblings (SHA-256(0x01 || left || right)), gives that
    root. Either way, with ``document`` (what the holder sent) its exclusive C14N SHA-256 must equal requestDigest.
    Fields must be read from :attr:`VerifiedReceipt.receipt`, not from the input. Which certificate is the gateway's
    is the caller's check (``signer.identity``).
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(receipt, parser) if isinstance(receipt, bytes) else etree.fromstring(
            etree.tostring(receipt), parser)
    except etree.XMLSyntaxError as exc:
        raise ReceiptInvalid("RECEIPT_FORMAT", f"not XML: {exc}") from None
    if root.tag != f"{{{RECEIPT_NS}}}Receipt":
        raise ReceiptInvalid("RECEIPT_FORMAT", f"not a receipt: {etree.QName(root).text}")
    proofs = root.findall(_PROOF)
    if not proofs:
        try:
            verified = verifier.verify(root)
        except SignatureRejected as rejected:
            raise ReceiptInvalid("RECEIPT_SIGNATURE_INVALID", "; ".join(rejected.report.errors)) from None
        content, batched = verified.signed, False
    else:
        verified, content = _verify_batched(root, proofs, verifier, parser)
        batched = True
    if document is not None and content.findtext(f"{{{RECEIPT_NS}}}requestDigest") != request_digest(document):
        raise ReceiptInvalid("RECEIPT_REQUEST_MISMATCH", "requestDigest is not the digest of this document")
    return VerifiedReceipt(content, verified, batched)


def _verify_batched(root: etree._Element, proofs: list[etree._Element], verifier: DocumentVerifier,
                    parser: etree.XMLParser) -> tuple[VerifiedDocument, etree._Element]:
    if len(proofs) != 1 or root[-1] is not proofs[0] or root.find(f"{{{DS}}}Signature") is not None:
        raise ReceiptInvalid("RECEIPT_FORMAT", "exactly one batchProof, the receipt's last child, and no Signature")
    proof = proofs[0]
    if proof.get("algorithm") != RECEIPT_BATCH_HASH:
        raise ReceiptInvalid("RECEIPT_FORMAT", f"unknown batch hash {proof.get('algorithm')!r}")
    batches = proof.findall(_BATCH)
    if len(batches) != 1 or proof[-1] is not batches[0]:
        raise ReceiptInvalid("RECEIPT_FORMAT", "batchProof must end with exactly one ReceiptBatch")
    path: list[tuple[str, bytes]] = []
    for child in proof[:-1]:
        side = child.get("side")
        if child.tag != _SIBLING or side not in ("left", "right"):
            raise ReceiptInvalid("RECEIPT_FORMAT", "batchProof holds siblings (side left or right), then the batch")
        try:
            sibling = base64.b64decode("".join((child.text or "").split()), validate=True)
        except binascii.Error:
            raise ReceiptInvalid("RECEIPT_FORMAT", "a sibling is not base64") from None
        if len(sibling) != hashlib.sha256().digest_size:
            raise ReceiptInvalid("RECEIPT_FORMAT", "a sibling is not a SHA-256 hash")
        path.append((side, sibling))
    if len(path) > MAX_PATH:
        raise ReceiptInvalid("RECEIPT_FORMAT", "the inclusion path is too long")
    batch_document = etree.fromstring(etree.tostring(batches[0]), parser)  # a document of its own
    try:
        verified = verifier.verify(batch_document)
    except SignatureRejected as rejected:
        raise ReceiptInvalid("RECEIPT_SIGNATURE_INVALID",
                             "the batch signature does not pass: " + "; ".join(rejected.report.errors)) from None
    signed_root = verified.signed.find(f"{{{RECEIPT_NS}}}root")
    if verified.signed.tag != _BATCH or signed_root is None or signed_root.get("algorithm") != RECEIPT_BATCH_HASH:
        raise ReceiptInvalid("RECEIPT_FORMAT", "the signed batch names no root")
    try:
        expected = base64.b64decode("".join((signed_root.text or "").split()), validate=True)
    except binascii.Error:
        raise ReceiptInvalid("RECEIPT_FORMAT", "the batch root is not base64") from None
    content = etree.fromstring(etree.tostring(root), parser)
    content.remove(content[-1])  # batchProof (its tail goes with it; the content is what was hashed)
    canonical = etree.tostring(content, method="c14n", exclusive=True, with_comments=False)
    if fold_path(leaf_hash(canonical), path) != expected:
        raise ReceiptInvalid("RECEIPT_NOT_IN_BATCH",
                             "the receipt and its inclusion path do not lead to the signed batch root")
    return verified, etree.fromstring(canonical, parser)
