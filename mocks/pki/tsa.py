"""A mock time-stamping authority (RFC 3161), like NCA's ``tsp.pki.gov.kz``, for the demo and the tests.

``POST /tsa`` with an ``application/timestamp-query`` body answers an ``application/timestamp-reply``: a granted
TimeStampResp whose token is CMS SignedData over a TSTInfo (the request's SHA-256 imprint and nonce, genTime now),
signed by a TSA certificate that the test PKI's NCA CA issues when the service starts (EKU id-kp-timeStamping,
critical, as RFC 3161 requires). THIS IS A TEST TSA: its key lives in memory and its policy OID is made up.

``POST /_control/tsa`` with a JSON object changes how it answers (tests): ``{"down": true}`` answers 503,
``{"nonce": "wrong"}`` / ``{"imprint": "wrong"}`` stamp the wrong value, ``{"signer": "foreign"}`` signs with a
TSA certificate of the untrusted foreign CA, ``{"signer": "no-eku"}`` with one lacking the timeStamping EKU;
``{}`` restores the defaults. ``GET /_control/tsa`` shows them and the count of stamps given.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mocks.pki import TestPki, load_pki

TSA_POLICY = "1.2.398.3.3.2.6.99"
"A made-up policy OID under NCA's arc, marking test stamps."
_SIGNERS = ("tsa", "foreign", "no-eku")


@dataclass
class TsaState:
    """The TSA's keys and the faults tests inject."""

    certificates: dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey, tuple[x509.Certificate, ...]]]
    "Signer name -> certificate, key and its CA chain."
    faults: dict[str, Any] = field(default_factory=dict)
    "down, nonce, imprint, signer (see the module doc)."
    stamps: int = 0
    "Tokens given so far."
    serial: int = 0
    "Last serial number used."


TSA_STATE = web.AppKey("tsa_state", TsaState)


def _issue(ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey, name: str, *, eku: bool) -> tuple[
        x509.Certificate, rsa.RSAPrivateKey]:
    key, now = rsa.generate_private_key(public_exponent=65537, key_size=2048), datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                 x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
    )
    usage = ExtendedKeyUsageOID.TIME_STAMPING if eku else ExtendedKeyUsageOID.EMAIL_PROTECTION
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=True)
    return builder.sign(ca_key, hashes.SHA256()), key


def tsa_state(pki: TestPki) -> TsaState:
    """Issue the TSA's certificates: the NCA CA's (trusted), the foreign CA's and one without the EKU."""
    certificates = {}
    for signer, ca_name, eku in (("tsa", "nca", True), ("foreign", "foreign-ca", True), ("no-eku", "nca", False)):
        ca = pki.authorities[ca_name]
        ca_cert, ca_key = ca.load_certificate(), ca.load_private_key()
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        cert, key = _issue(ca_cert, ca_key, f"TIMESTAMP AUTHORITY ({signer}) TEST", eku=eku)
        certificates[signer] = (cert, key, (ca_cert,))
    return TsaState(certificates)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _token(state: TsaState, imprint: bytes, nonce: int | None) -> cms.ContentInfo:
    faults = state.faults
    cert, key, chain = state.certificates[faults.get("signer", "tsa")]
    if faults.get("imprint") == "wrong":
        imprint = hashlib.sha256(b"not what was asked" + imprint).digest()
    if nonce is not None and faults.get("nonce") == "wrong":
        nonce += 1
    state.serial += 1
    info = tsp.TSTInfo({
        "version": "v1", "policy": TSA_POLICY,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": imprint},
        "serial_number": state.serial, "gen_time": datetime.now(UTC).replace(microsecond=0),
        "accuracy": {"seconds": 1}, **({"nonce": nonce} if nonce is not None else {})})
    content = info.dump()
    asn1_cert = _asn1(cert)
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [
            {"cert_hash": hashlib.sha256(asn1_cert.dump()).digest()}]}]}),
    ])
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": asn1_cert.issuer,
                                                                  "serial_number": asn1_cert.serial_number}}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
        "signature": signature})
    signed = cms.SignedData({
        "version": "v3", "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(content)},
        "certificates": [asn1_cert, *(_asn1(c) for c in chain)],
        "signer_infos": [signer]})
    return cms.ContentInfo({"content_type": "signed_data", "content": signed})


async def stamp(request: web.Request) -> web.Response:
    """POST /tsa: one TimeStampReq in, one TimeStampResp out."""
    state = request.app[TSA_STATE]
    if state.faults.get("down"):
        return web.Response(status=503, text="injected fault", headers={"Retry-After": "1"})
    if request.content_type != "application/timestamp-query":
        return web.Response(status=415, text="application/timestamp-query expected")
    try:
        query = tsp.TimeStampReq.load(await request.read())
        imprint = query["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].native != "sha256":
            raise ValueError("only SHA-256 imprints")
        nonce = query["nonce"].native
        token = _token(state, imprint["hashed_message"].native, nonce)
        response = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
    except (ValueError, TypeError, KeyError) as exc:
        response = tsp.TimeStampResp({"status": {"status": "rejection", "status_string": [str(exc)[:200]],
                                                 "fail_info": {"bad_data_format"}}})
    else:
        state.stamps += 1
    return web.Response(body=response.dump(), content_type="application/timestamp-reply")


async def control(request: web.Request) -> web.Response:
    state = request.app[TSA_STATE]
    if request.method == "POST":
        data = await request.json()
        allowed = {"down": (True, False), "nonce": ("wrong",), "imprint": ("wrong",), "signer": _SIGNERS}
        if not isinstance(data, dict) or any(k not in allowed or v not in allowed[k] for k, v in data.items()):
            return web.json_response({"error": f"expected keys and values of {allowed}"}, status=400)
        state.faults = dict(data)
    return web.json_response({"faults": state.faults, "stamps": state.stamps})


def create_tsa_app(pki: TestPki) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[TSA_STATE] = tsa_state(pki)
    app.router.add_post("/tsa", stamp)
    app.router.add_route("*", "/_control/tsa", control)
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m mocks.pki.tsa --pki DIR [--port 8750]``."""
    parser = argparse.ArgumentParser(prog="python -m mocks.pki.tsa", description="Test PKI time-stamping authority")
    parser.add_argument("--pki", type=Path, required=True, help="directory of a generated test PKI")
    parser.add_argument("--port", type=int, default=8750)
    args = parser.parse_args(argv)
    web.run_app(create_tsa_app(load_pki(args.pki)), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
