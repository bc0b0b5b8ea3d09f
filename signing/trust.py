"""Certificate paths to the configured trust anchors.

Path building and signature checks are done by ``cryptography.x509.verification`` (Rust, RFC 5280
with the web PKI's CA rules). Its end-entity rules are for TLS, so the end-entity extension policy
is relaxed to "permit all": the NCA-specific checks (key usage, roles) are ours, in the verifier.

Only good paths are cached, keyed by the leaf's fingerprint, and only used while the validation
time falls inside every certificate's validity: an untrusted chain is never remembered as good.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError


class UntrustedCertificateError(ValueError):
    """No path from the certificate to a trust anchor."""


@dataclass(frozen=True)
class TrustedPath:
    """A validated path: signer first, trust anchor last."""

    certificates: tuple[x509.Certificate, ...]
    "The path."
    valid_from: datetime
    "Latest not_before along the path."
    valid_until: datetime
    "Earliest not_after along the path."


class PathValidator(Protocol):
    """What the verifier asks of a trust store. :class:`TrustStore` is one (RSA/ECDSA chains); GOST chains,
    whose signatures ``cryptography`` cannot check, plug in another (``DocumentVerifier(gost_paths=...)``)."""

    def validate(
        self, leaf: x509.Certificate, untrusted: Sequence[x509.Certificate], at: datetime,
        *, leaf_fingerprint: bytes | None = None,
    ) -> TrustedPath:
        """The path for ``leaf`` valid at ``at``, or raise :class:`UntrustedCertificateError`."""
        ...


def load_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """Read every certificate from PEM files (several per file allowed) or DER files (one each)."""
    certificates: list[x509.Certificate] = []
    for path in paths:
        data = Path(path).read_bytes()
        if b"-----BEGIN" in data:
            certificates.extend(x509.load_pem_x509_certificates(data))
        else:
            certificates.append(x509.load_der_x509_certificate(data))
    return certificates


def fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


class TrustStore:
    """Trust anchors and known intermediates, loaded once; validates and caches paths."""

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate] = (),
        *,
        cache_size: int = 10_000,
        max_depth: int = 4,
    ) -> None:
        if not anchors:
            raise ValueError("at least one trust anchor is required")
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self._store = Store(list(self.anchors))
        self._max_depth = max_depth
        self._cache: OrderedDict[bytes, TrustedPath] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_files(cls, anchors: Iterable[Path], intermediates: Iterable[Path] = ()) -> TrustStore:
        return cls(load_certificates(anchors), load_certificates(intermediates))

    def validate(
        self, leaf: x509.Certificate, untrusted: Sequence[x509.Certificate], at: datetime,
        *, leaf_fingerprint: bytes | None = None,
    ) -> TrustedPath:
        """Return the path for ``leaf`` valid at ``at``, or raise :class:`UntrustedCertificateError`."""
        key = leaf_fingerprint or fingerprint(leaf)
        cached = self._cache.get(key)
        if cached is not None and cached.valid_from <= at <= cached.valid_until:
            self._cache.move_to_end(key)
            return cached
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(self._max_depth)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, [*untrusted, *self.intermediates])
        except VerificationError as exc:
            raise UntrustedCertificateError(str(exc)) from None
        chain = tuple(verified.chain)
        path = TrustedPath(
            certificates=chain,
            valid_from=max(c.not_valid_before_utc for c in chain),
            valid_until=min(c.not_valid_after_utc for c in chain),
        )
        self._cache[key] = path
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return path
