"""GOST cryptography for Kazakh keys: Streebog, GOST R 34.11-94 (Test S-box) and GOST 34.10 signatures.

Everything runs in C (the system OpenSSL 3 and the GOST provider of ``libengine-gost-openssl``), loaded
on first use; :func:`available` says whether it is there, and every call raises :class:`GostUnavailable`
when it is not. The byte orders are the Kazakh ones: see docs/gost.md.
"""

from signing.gost.curves import CURVE_512A, CURVE_CRYPTOPRO_A, CURVE_TEST_512, Curve
from signing.gost.ecc import generate_private, public_key, sign, verify
from signing.gost.hashes import GostHash, gost94_test, new_hash, streebog256, streebog512
from signing.gost.native import GostUnavailable, available

__all__ = [
    "CURVE_512A", "CURVE_CRYPTOPRO_A", "CURVE_TEST_512", "Curve", "GostHash", "GostUnavailable", "available",
    "generate_private", "gost94_test", "new_hash", "public_key", "sign", "streebog256", "streebog512", "verify",
]
