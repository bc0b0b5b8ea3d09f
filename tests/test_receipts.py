"""Receipts and the gateway's own signatures: the lean signer (the same bytes as signxml's), receipts signed in
batches under a Merkle root, and what a receipt holder verifies (:func:`gateway.lifecycle.receipts.verify_receipt`)."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

import schemas
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.receipts import (
    RECEIPT_NS,
    ReceiptInvalid,
    ReceiptIssuer,
    fold_path,
    leaf_hash,
    merkle_tree,
    receipt_element,
    request_digest,
    sign_receipt_batch,
    signed_receipt,
    verify_receipt,
)
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.lean_signer import lean_eligible
from signing.signer import DocumentSigner, SigningKey
from tests.helpers import GatewayUnderTest, rest_request, run_cli, second_gateway, trusting_verifier

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"r": RECEIPT_NS, "ds": DS}
DOCUMENTS = [
    b"<ReaderTicket xmlns='urn:egov:kazneb:reader-ticket:v1'><iin>1</iin></ReaderTicket>",
    b"<a:R xmlns:a='urn:a' xmlns:b='urn:b' xml:lang='kk'>\n  <b:x attr='1 &amp; 2'>t\xc3\xa9xt<!-- c --></b:x>\n"
    b"<y/>  </a:R>",
    b"<R xmlns='urn:r'><ds:foo xmlns:ds='urn:other'/>\n</R>",
]


def _keys(pki: TestPki) -> SigningKey:
    files = pki.systems["gateway"]
    return SigningKey.from_pem(files.cert, files.key)


def _app(number: int, applicant: str) -> Application:
    now = datetime.now(UTC).isoformat()
    return Application(id=f"{{00000000-0000-0000-0000-{number:012d}}}", sender_id="portal", message_id=f"m-{number}",
                       service_id=READER_TICKET_SERVICE, channel="rest", applicant_iin=applicant, applicant_bin=None,
                       applicant_name="Test Person", organisation=None, status=Status.ACCEPTED, created_at=now,
                       updated_at=now, document=b"<x/>", report={})


@pytest.mark.parametrize("source", DOCUMENTS)
def test_lean_signature_is_signxmls_byte_for_byte(pki: TestPki, source: bytes) -> None:
    key = _keys(pki)
    document = etree.fromstring(source)
    assert lean_eligible(document)
    lean = DocumentSigner(key).sign_bytes(document)
    assert lean == DocumentSigner(key, lean=False).sign_bytes(document)  # RSA PKCS#1 v1.5 is deterministic
    config = SignatureConfiguration(location="./")
    verified = XMLVerifier().verify(lean, x509_cert=key.certificate, expect_config=config)
    assert verified.signed_xml is not None
    assert trusting_verifier(pki).verify(etree.fromstring(lean)).identity.common_name == "gateway"
    assert etree.tostring(document) == etree.tostring(etree.fromstring(source))  # the input is left alone


def test_lean_signature_fails_when_the_signed_document_changes(pki: TestPki) -> None:
    signed = etree.fromstring(DocumentSigner(_keys(pki)).sign_bytes(etree.fromstring(DOCUMENTS[0])))
    signed.find("{urn:egov:kazneb:reader-ticket:v1}iin").text = "2"
    with pytest.raises(Exception) as raised:
        trusting_verifier(pki).verify(signed)
    assert "HASH_FAILURE" in str(raised.value)


def test_documents_of_another_shape_are_signed_by_signxml(pki: TestPki) -> None:
    key = _keys(pki)
    with_id = etree.fromstring(b"<R xmlns='urn:r' Id='doc-1'><x/></R>")
    already = etree.fromstring(DocumentSigner(key).sign_bytes(etree.fromstring(DOCUMENTS[0])))
    assert not lean_eligible(with_id) and not lean_eligible(already)
    signed = etree.fromstring(DocumentSigner(key).sign_bytes(with_id))
    assert signed.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).get("URI") == "#doc-1"  # as signxml does it


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_every_leaf_folds_to_the_root(size: int) -> None:
    leaves = [leaf_hash(str(index).encode()) for index in range(size)]
    root, paths = merkle_tree(leaves)
    for leaf, path in zip(leaves, paths, strict=True):
        assert fold_path(leaf, path) == root
        assert len(path) <= max(1, (size - 1).bit_length())
    if size > 1:
        assert fold_path(leaf_hash(b"other"), paths[0]) != root
        assert fold_path(leaves[1], paths[0]) != root


def _batch(pki: TestPki, size: int) -> tuple[list[etree._Element], list[str]]:
    person = pki.person("aigerim")
    documents = [signed_application(person, READER_TICKET_SERVICE) for _ in range(size)]
    receipts = [receipt_element(_app(index, person.iin), request_digest(document), "TOTAL_PASSED")
                for index, document in enumerate(documents)]
    return documents, sign_receipt_batch(receipts, DocumentSigner(_keys(pki)), datetime.now(UTC).isoformat())


def test_a_batched_receipt_verifies_as_its_holder_does(pki: TestPki) -> None:
    documents, signed = _batch(pki, 5)
    verifier = trusting_verifier(pki)
    for index, (document, text) in enumerate(zip(documents, signed, strict=True)):
        verified = verify_receipt(text.encode(), verifier, document=document)
        assert verified.batched and verified.signer.identity.common_name == "gateway"
        assert verified.receipt.findtext("r:messageId", namespaces=NS) == f"m-{index}"
        assert verified.receipt.find("r:batchProof", NS) is None  # the fields come from what was hashed
        canonical = etree.tostring(document, method="c14n", exclusive=True)
        assert verified.request_digest == base64.b64encode(hashlib.sha256(canonical).digest()).decode()
        receipt = etree.fromstring(text.encode())
        assert schemas.load_xml_schema("gateway/receipt.xsd").validate(receipt)
        assert receipt.find("r:batchProof", NS).get("size") == "5"
        assert receipt.find("r:batchProof/r:ReceiptBatch/ds:Signature", NS) is not None
    roots = {etree.fromstring(text.encode()).findtext("r:batchProof/r:ReceiptBatch/r:root", namespaces=NS)
             for text in signed}
    assert len(roots) == 1  # one signature for the whole batch


def test_a_tampered_batched_receipt_fails_with_its_code(pki: TestPki) -> None:
    documents, signed = _batch(pki, 3)
    verifier = trusting_verifier(pki)

    def fails(receipt: etree._Element, code: str, document: etree._Element | None = None) -> None:
        with pytest.raises(ReceiptInvalid) as raised:
            verify_receipt(etree.tostring(receipt), verifier, document=document)
        assert raised.value.code == code, raised.value

    receipt = etree.fromstring(signed[0].encode())
    receipt.find("r:applicant/r:iin", NS).text = "000000000000"
    fails(receipt, "RECEIPT_NOT_IN_BATCH")
    receipt = etree.fromstring(signed[0].encode())
    sibling = receipt.find("r:batchProof/r:sibling", NS)
    sibling.text = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    fails(receipt, "RECEIPT_NOT_IN_BATCH")
    receipt = etree.fromstring(signed[0].encode())  # another receipt's proof, from the same signed batch
    receipt.replace(receipt.find("r:batchProof", NS), etree.fromstring(signed[1].encode()).find("r:batchProof", NS))
    fails(receipt, "RECEIPT_NOT_IN_BATCH")
    receipt = etree.fromstring(signed[0].encode())  # a root of the forger's choice: the batch signature breaks
    receipt.find("r:batchProof/r:ReceiptBatch/r:root", NS).text = base64.b64encode(b"\0" * 32).decode()
    fails(receipt, "RECEIPT_SIGNATURE_INVALID")
    receipt = etree.fromstring(signed[0].encode())  # no proof at all: then it must carry a signature of its own
    receipt.remove(receipt.find("r:batchProof", NS))
    fails(receipt, "RECEIPT_SIGNATURE_INVALID")
    receipt = etree.fromstring(signed[0].encode())
    receipt.find("r:batchProof", NS).set("algorithm", "urn:other")
    fails(receipt, "RECEIPT_FORMAT")
    other = copy.deepcopy(documents[0])
    other.append(etree.Element("{urn:other}extra"))  # not what was sent
    fails(etree.fromstring(signed[0].encode()), "RECEIPT_REQUEST_MISMATCH", document=other)


def test_a_single_receipt_verifies_the_same_way(pki: TestPki) -> None:
    person = pki.person("aigerim")
    document = signed_application(person, READER_TICKET_SERVICE)
    text = signed_receipt(_app(1, person.iin), request_digest(document), DocumentSigner(_keys(pki)), "TOTAL_PASSED")
    verified = verify_receipt(text.encode(), trusting_verifier(pki), document=document)
    assert not verified.batched and verified.signer.identity.common_name == "gateway"
    receipt = etree.fromstring(text.encode())
    receipt.find("r:messageId", NS).text = "m-other"
    with pytest.raises(ReceiptInvalid) as raised:
        verify_receipt(etree.tostring(receipt), trusting_verifier(pki))
    assert raised.value.code == "RECEIPT_SIGNATURE_INVALID"
    assert "HASH_FAILURE" in raised.value.detail or "changed" in raised.value.detail


async def test_receipts_pending_together_share_one_signature(pki: TestPki) -> None:
    person = pki.person("aigerim")
    document = signed_application(person, READER_TICKET_SERVICE)
    issuer = ReceiptIssuer(DocumentSigner(_keys(pki)), batched=True)
    together = await asyncio.gather(*(issuer.issue(_app(index, person.iin), request_digest(document), "TOTAL_PASSED")
                                      for index in range(6)))
    assert (issuer.batches, issuer.receipts) == (1, 6)
    digest = request_digest(document)
    alone = await issuer.issue(_app(9, person.iin), digest, "TOTAL_PASSED")  # low load: a batch of one, no wait
    assert (issuer.batches, issuer.receipts) == (2, 7)
    for text in [*together, alone]:
        assert verify_receipt(text.encode(), trusting_verifier(pki), document=document).batched


async def test_a_batch_that_cannot_be_signed_fails_each_of_its_receipts(pki: TestPki) -> None:
    class Broken(DocumentSigner):
        def sign_bytes(self, document: etree._Element) -> bytes:
            raise RuntimeError("the key is gone")

    person = pki.person("aigerim")
    document = signed_application(person, READER_TICKET_SERVICE)
    issuer = ReceiptIssuer(Broken(_keys(pki)), batched=True)
    outcomes = await asyncio.gather(*(issuer.issue(_app(index, person.iin), request_digest(document), "TOTAL_PASSED")
                                      for index in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)


async def test_a_batched_gateway_answers_with_receipts_a_holder_verifies(gw: GatewayUnderTest, tmp_path: Path,
                                                                          http: aiohttp.ClientSession) -> None:
    runner, url = await second_gateway(gw, tmp_path, signer=replace(gw.settings.signer, receipt_batches=True))
    try:
        person = gw.pki.person("aigerim")
        documents = [signed_application(person, READER_TICKET_SERVICE) for _ in range(4)]
        bodies = [rest_request(document) for document in documents]

        async def send(body: dict) -> dict:
            async with http.post(f"{url}/api/v1/requests", json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        answers = await asyncio.gather(*(send(body) for body in bodies))
        verifier = trusting_verifier(gw.pki)
        for document, body, answer in zip(documents, bodies, answers, strict=True):
            verified = verify_receipt(answer["receipt"].encode(), verifier, document=copy.deepcopy(document))
            assert verified.batched
            assert verified.receipt.findtext("r:sessionId", namespaces=NS) == answer["responseInfo"]["sessionId"]
            mid = body["requestInfo"]["messageId"]
            async with http.get(f"{url}/api/v1/cabinet/{person.iin}/applications/{mid}/receipt",
                                headers=gw.auth()) as response:
                assert response.status == 200
                assert verify_receipt(await response.read(), verifier, document=document).batched
    finally:
        await runner.cleanup()


async def test_the_holders_command_line_verifies_a_receipt(pki: TestPki, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    documents, signed = _batch(pki, 2)
    (tmp_path / "receipt.xml").write_text(signed[1])
    (tmp_path / "sent.xml").write_bytes(etree.tostring(documents[1]))
    trust = [arg for anchor in pki.trust_anchors for arg in ("--trust", str(anchor))]
    trust += [arg for intermediate in pki.intermediates for arg in ("--intermediate", str(intermediate))]
    code, out = await run_cli(capsys, "verify-receipt", "--in", str(tmp_path / "receipt.xml"),
                              "--document", str(tmp_path / "sent.xml"), "--json", *trust)
    assert code == 0, out
    assert json.loads(out)["batched"] is True and json.loads(out)["requestDigestChecked"] is True
    tampered = etree.fromstring(signed[1].encode())
    tampered.find("r:serviceId", NS).text = "other.service"
    (tmp_path / "tampered.xml").write_bytes(etree.tostring(tampered))
    code, out = await run_cli(capsys, "verify-receipt", "--in", str(tmp_path / "tampered.xml"), "--json", *trust)
    assert code == 1 and json.loads(out)["code"] == "RECEIPT_NOT_IN_BATCH"
