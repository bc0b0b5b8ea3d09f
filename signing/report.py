"""The validation report: what was found about one signature, in the ETSI EN 319 102-1 vocabulary.

The report is stored with the application, shown in the cabinet, and its sub-indication travels in
every rejection. It holds the signer's full IIN because the applicant reads it in their own cabinet;
log lines must use :meth:`ValidationReport.log_summary`, which masks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from signing.idnumbers import mask_id


class Indication(StrEnum):
    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(StrEnum):
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    TRY_LATER = "TRY_LATER"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"


@dataclass(frozen=True)
class SignerInfo:
    """Who signed, as read from the NCA certificate."""

    iin: str | None
    "IIN from the subject SERIALNUMBER."
    bin: str | None
    "BIN from the subject OU, for employees of an organisation."
    name: str
    "Subject common name."
    organisation: str | None
    "Subject O, for employees of an organisation."
    roles: tuple[str, ...]
    "Roles from the extended key usage (individual, organisation, first_head, can_sign, ...)."
    policies: tuple[str, ...]
    "Certificate policy OIDs."
    key_purpose: str
    "sign, auth or unknown, from key usage."
    certificate_serial: str
    "Serial number of the signing certificate, hex."


@dataclass(frozen=True)
class ChainElement:
    """One certificate of the validated path, signer first."""

    subject: str
    "RFC 4514 subject."
    issuer: str
    "RFC 4514 issuer."
    serial: str
    "Serial number, hex."
    not_before: datetime
    "Start of validity."
    not_after: datetime
    "End of validity."
    sha256: str
    "Fingerprint of the DER encoding."


@dataclass(frozen=True)
class RevocationInfo:
    """Which revocation source answered for the signer's certificate."""

    status: str
    "good, revoked, unknown or not_checked."
    source: str
    """ocsp, crl, cache (an OCSP answer still within its nextUpdate), shared (an OCSP answer another process fetched,
    from the shared cache, checked again here) or none."""
    checked_at: datetime | None
    "When the source produced the answer."
    revoked_at: datetime | None = None
    "Revocation time, when revoked."
    reason: str | None = None
    "CRL reason code name (key_compromise, superseded, ...), when revoked."
    next_update: datetime | None = None
    "Until when the answer may be relied on (OCSP/CRL nextUpdate, or the configured freshness)."
    url: str | None = None
    "Address of the OCSP responder or CRL that answered."
    detail: str | None = None
    "Why a better source did not answer (e.g. OCSP failed and the CRL answered), or why none did."


@dataclass(frozen=True)
class ValidationReport:
    """What the verifier found. ``indication`` is TOTAL_PASSED only if every check passed."""

    indication: Indication
    "Overall result."
    sub_indication: SubIndication | None
    "Why it did not pass (None when passed)."
    error_code: str | None
    "The gateway error code the failure maps to (see gateway.errors)."
    validation_time: datetime
    "When validation ran (UTC)."
    signer: SignerInfo | None = None
    "The signer, when a certificate was found."
    chain: tuple[ChainElement, ...] = ()
    "The certificate path, signer first, when one was built."
    signature_algorithm: str | None = None
    "SignatureMethod URI."
    digest_algorithm: str | None = None
    "DigestMethod URI of the reference."
    revocation: RevocationInfo | None = None
    "Revocation result for the signing certificate."
    errors: tuple[str, ...] = ()
    "Readable reasons for failure."
    warnings: tuple[str, ...] = ()
    "Readable remarks that did not fail validation."
    signature_format: str = "XMLDSig"
    "XMLDSig, or XAdES-BES when signed properties were verified."
    claimed_signing_time: datetime | None = None
    "XAdES SigningTime as claimed by the signer (no timestamp authority: not proof of time)."

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def to_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, tuple):
                return [convert(v) for v in value]
            if hasattr(value, "__dataclass_fields__"):
                return {k: convert(getattr(value, k)) for k in value.__dataclass_fields__}
            return value

        return {name: convert(getattr(self, name)) for name in self.__dataclass_fields__}

    def log_summary(self) -> str:
        """One line for logs, with the IIN and BIN masked."""
        who = ""
        if self.signer:
            iin = mask_id(self.signer.iin) if self.signer.iin else "-"
            bin_ = mask_id(self.signer.bin) if self.signer.bin else "-"
            who = f" signer={iin} bin={bin_}"
        return f"{self.indication}/{self.sub_indication or '-'}{who}"
