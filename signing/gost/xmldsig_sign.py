"""Making GOST enveloped signatures laid out as Kalkan lays them out (for tests and the gateway's own GOST key).

SignedInfo: inclusive C14N 1.0; Reference ``URI=""`` with the enveloped-signature transform followed by
inclusive C14N 1.0 WithComments; KeyInfo holds the signer's certificate (and any CA certificates given).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from signing.gost import ecc, keys
from signing.gost.curves import CURVE_512A, CURVE_CRYPTOPRO_A
from signing.gost.xmldsig import (
    C14N_1_0,
    C14N_1_0_COMMENTS,
    DIGEST_GOST94,
    DIGEST_METHODS,
    DIGEST_STREEBOG512,
    DS,
    SIGNATURE_2004,
    SIGNATURE_2015_512,
    SIGNATURE_METHODS,
    canonical,
    digest,
)
from signing.policy import ENVELOPED_TRANSFORM


class GostKeyError(ValueError):
    """The private scalar does not belong to the certificate, or the key is not a usable GOST key."""


@dataclass(frozen=True)
class GostSigningKey:
    """A GOST private scalar with its certificate."""

    private_scalar: int
    "d, the private key (keep it out of logs)."
    certificate: x509.Certificate
    "The certificate whose GOST public key is d·G."
    chain: tuple[x509.Certificate, ...] = ()
    "CA certificates to add after the signer's in KeyInfo (usually none)."

    def __repr__(self) -> str:  # never print the scalar
        return f"GostSigningKey({self.certificate.subject.rfc4514_string()})"

    def public(self) -> keys.GostPublicKey:
        try:
            key = keys.certificate_key(self.certificate)
        except keys.UnsupportedGostKey as exc:
            raise GostKeyError(str(exc)) from None
        if not 0 < self.private_scalar < key.curve.q or \
                ecc.public_key(key.curve, self.private_scalar) != key.xy_le:
            raise GostKeyError("the private key does not match the certificate")
        return key


_METHODS = {CURVE_512A: (SIGNATURE_2015_512, DIGEST_STREEBOG512), CURVE_CRYPTOPRO_A: (SIGNATURE_2004, DIGEST_GOST94)}


class GostDocumentSigner:
    """Signs XML documents with a GOST key (enveloped, over the whole document)."""

    def __init__(self, key: GostSigningKey) -> None:
        self._public = key.public()
        self.key = key
        self._method, self._digest_method = _METHODS[self._public.curve]
        self._certificates = [key.certificate, *key.chain]

    @property
    def certificate(self) -> x509.Certificate:
        return self.key.certificate

    def sign(self, document: etree._Element) -> etree._Element:
        """Return a signed copy of ``document``; the input is not modified."""
        root = copy.deepcopy(document)
        reference_digest = digest(DIGEST_METHODS[self._digest_method], canonical(root, C14N_1_0_COMMENTS))
        signature = etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS})
        signed_info = etree.SubElement(signature, f"{{{DS}}}SignedInfo")
        etree.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod", Algorithm=C14N_1_0)
        etree.SubElement(signed_info, f"{{{DS}}}SignatureMethod", Algorithm=self._method)
        reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="")
        transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
        etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=ENVELOPED_TRANSFORM)
        etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=C14N_1_0_COMMENTS)
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=self._digest_method)
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(reference_digest).decode()
        value = etree.SubElement(signature, f"{{{DS}}}SignatureValue")
        x509_data = etree.SubElement(etree.SubElement(signature, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
        for certificate in self._certificates:
            etree.SubElement(x509_data, f"{{{DS}}}X509Certificate").text = base64.b64encode(
                certificate.public_bytes(Encoding.DER)).decode()
        method = SIGNATURE_METHODS[self._method]
        signed = ecc.sign(self._public.curve, self.key.private_scalar,
                          digest(method.hash_name, canonical(signed_info, C14N_1_0)))
        value.text = base64.b64encode(signed).decode()
        return root

    def sign_bytes(self, document: etree._Element) -> bytes:
        return etree.tostring(self.sign(document), xml_declaration=True, encoding="UTF-8")
