"""Certificate paths of the GOST hierarchy, validated with the rules the RSA path gets from
``cryptography.x509.verification`` (which cannot check GOST signatures).

A path runs from the leaf through issuers whose subject names the certificate's issuer (and whose key
identifier matches the certificate's authorityKeyIdentifier when both are present) and whose GOST key signed
it, up to a configured anchor (a root, or an intermediate trusted on its own). Every certificate must be valid
at the validation time; every issuer (the anchor too) must be a CA (basicConstraints cA), hold keyUsage
keyCertSign, have a pathLenConstraint no smaller than the number of CAs below it (the leaf not counted) and no
critical extension we do not understand; at most ``max_depth`` intermediates. The leaf's extensions are the
verifier's business (key purpose, roles), as on the RSA path.

Only good paths are cached (by the leaf's fingerprint), and used only while the validation time falls inside
every certificate's validity. Checking a GOST signature costs milliseconds of pure Python: callers run
validation off the event loop, as they do for the RSA path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from signing import gost_x509
from signing.idnumbers import mask_ids

__all__ = ["GostPath", "GostPathError", "GostPathValidator"]

GostPath = tuple[tuple[x509.Certificate, ...], datetime, datetime]
"A validated path (leaf first, anchor last), its latest not_before and its earliest not_after."


class GostPathError(ValueError):
    """No GOST path from the certificate to a trust anchor (the trust store reports it as untrusted)."""


class _Rejected(Exception):
    """One candidate issuer cannot continue the path."""


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def _subject(certificate: x509.Certificate) -> str:
    return mask_ids(certificate.subject.rfc4514_string())


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_validity(certificate: x509.Certificate, at: datetime) -> None:
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        start, end = certificate.not_valid_before_utc.isoformat(), certificate.not_valid_after_utc.isoformat()
        raise _Rejected(f"{_subject(certificate)} is not valid at {at.isoformat()} (valid {start} to {end})")


def _check_issuer_role(issuer: x509.Certificate, cas_below: int) -> None:
    """``issuer`` may issue certificates with ``cas_below`` CA certificates under it in the path."""
    constraints = _extension(issuer, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise _Rejected(f"{_subject(issuer)} is not a CA (basicConstraints cA is not set)")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise _Rejected(f"{_subject(issuer)} allows {constraints.path_length} CAs below it, the path has {cas_below}")
    usage = _extension(issuer, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not usage.key_cert_sign:
        raise _Rejected(f"{_subject(issuer)} may not sign certificates (keyUsage keyCertSign is not set)")
    for extension in issuer.extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise _Rejected(f"{_subject(issuer)} has an unknown critical extension {extension.oid.dotted_string}")


def _key_ids_fit(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    authority = _extension(certificate, x509.AuthorityKeyIdentifier)
    subject = _extension(issuer, x509.SubjectKeyIdentifier)
    if not isinstance(authority, x509.AuthorityKeyIdentifier) or authority.key_identifier is None:
        return True
    return not isinstance(subject, x509.SubjectKeyIdentifier) or subject.digest == authority.key_identifier


class GostPathValidator:
    """GOST trust anchors and known intermediates, loaded once; validates and caches paths."""

    def __init__(self, anchors: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate] = (), *,
                 cache_size: int = 10_000, max_depth: int = 4) -> None:
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self._anchor_prints = frozenset(_fingerprint(a) for a in self.anchors)
        self._max_depth = max_depth
        self._cache: OrderedDict[bytes, GostPath] = OrderedDict()
        self._cache_size = cache_size

    def validate(self, leaf: x509.Certificate, untrusted: Sequence[x509.Certificate], at: datetime,
                 *, leaf_fingerprint: bytes | None = None) -> GostPath:
        """The path valid at ``at``, or raise :class:`GostPathError` saying why the last candidate failed."""
        key = leaf_fingerprint or _fingerprint(leaf)
        cached = self._cache.get(key)
        if cached is not None and cached[1] <= at <= cached[2]:
            self._cache.move_to_end(key)
            return cached
        if not self.anchors:
            raise GostPathError("no GOST trust anchor is configured")
        try:
            _check_validity(leaf, at)
        except _Rejected as exc:
            raise GostPathError(str(exc)) from None
        candidates = [*untrusted, *self.intermediates, *self.anchors]
        reasons: list[str] = []
        chain = self._extend((leaf,), candidates, at, reasons)
        if chain is None:
            why = reasons[-1] if reasons else f"no certificate of {mask_ids(leaf.issuer.rfc4514_string())} is known"
            raise GostPathError(f"no GOST path to a trust anchor: {why}")
        path: GostPath = (chain, max(c.not_valid_before_utc for c in chain), min(c.not_valid_after_utc for c in chain))
        self._cache[key] = path
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return path

    def _extend(self, chain: tuple[x509.Certificate, ...], candidates: Sequence[x509.Certificate], at: datetime,
                reasons: list[str]) -> tuple[x509.Certificate, ...] | None:
        """``chain`` completed to an anchor (depth first over the candidate issuers), or None."""
        current, seen = chain[-1], {_fingerprint(c) for c in chain}
        for issuer in candidates:
            printed = _fingerprint(issuer)
            if printed in seen or issuer.subject != current.issuer or not _key_ids_fit(current, issuer):
                continue
            try:
                _check_issuer_role(issuer, len(chain) - 1)
                _check_validity(issuer, at)
                if not gost_x509.issued_by(current, issuer):
                    raise _Rejected(f"the GOST signature of {_subject(current)} by {_subject(issuer)} does not verify")
            except (_Rejected, gost_x509.GostKeyError) as exc:
                reasons.append(str(exc))
                continue
            if printed in self._anchor_prints:
                return (*chain, issuer)
            if len(chain) > self._max_depth:
                reasons.append(f"the path is longer than {self._max_depth} intermediates")
                continue
            found = self._extend((*chain, issuer), candidates, at, reasons)
            if found is not None:
                return found
        return None
