"""What certificates, CRLs and OCSP responses say that revocation checking needs (RFC 5280, RFC 6960)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from signing import gost_x509

E = TypeVar("E", bound=x509.ExtensionType)


def key_hash(certificate: x509.Certificate) -> bytes:
    # SHA-1 of the subjectPublicKey BIT STRING: OCSP's issuerKeyHash and ResponderID byKey (RFC 6960 4.1.1).
    if gost_x509.is_gost(certificate):  # cryptography cannot load GOST keys; the BIT STRING is read from the DER
        return gost_x509.key_hash(certificate)
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def http_uris(names: Iterable[x509.GeneralName]) -> tuple[str, ...]:
    return tuple(n.value for n in names
                 if isinstance(n, x509.UniformResourceIdentifier) and n.value.startswith(("http://", "https://")))


def ocsp_url(certificate: x509.Certificate) -> str | None:
    aia = extension(certificate.extensions, x509.AuthorityInformationAccess) or ()
    urls = http_uris(d.access_location for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP)
    return urls[0] if urls else None


def crl_urls(points: x509.CRLDistributionPoints | x509.FreshestCRL | None) -> tuple[str, ...]:
    return http_uris(name for point in points or () for name in point.full_name or ())


def extension(extensions: x509.Extensions, kind: type[E]) -> E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    found = extension(entry.extensions, x509.CRLReason)
    return found.reason if found else x509.ReasonFlags.unspecified


def names(response: ocsp.OCSPResponse, certificate: x509.Certificate, known_hash: bytes | None) -> bool:
    """Whether the response's ResponderID designates ``certificate`` (by key hash, ``known_hash`` if given, or
    by name)."""
    if response.responder_key_hash is None:
        return response.responder_name == certificate.subject
    return response.responder_key_hash == (known_hash or key_hash(certificate))
