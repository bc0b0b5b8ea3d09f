"""GOST figures beside the RSA crypto floor, measured in the same run (called by bench_pipeline.py; also alone).

    .venv/bin/python benchmarks/bench_gost.py

One core, process CPU time: one GOST 34.10-2015 512-bit verify and sign (TC26 512 paramSetA), the older
34.310-2004 verify (CryptoPro-A), Streebog-512 and GOST R 34.11-94 (Test S-box) throughput, next to bare
RSA-2048 PKCS#1 v1.5 SHA-256 verify/sign and SHA-256 throughput from ``cryptography``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from signing import gost

_LABEL = 58


def _rate(action: Callable[[], object], seconds: float) -> float:
    action()
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        action()
        count += 1
    return count / (time.process_time() - start)


def _ops(label: str, action: Callable[[], object], seconds: float) -> None:
    rate = _rate(action, seconds)
    print(f"{label:<{_LABEL}} {rate:>9,.0f} /s   {1000 / rate:6.3f} ms")


def _throughput(label: str, hash_bytes: Callable[[bytes], object], seconds: float) -> None:
    block = bytes(range(256)) * 4096 * 4  # 4 MiB
    rate = _rate(lambda: hash_bytes(block), seconds)
    print(f"{label:<{_LABEL}} {rate * len(block) / 1e6:>9,.0f} MB/s")


def crypto_floor(seconds: float = 1.0) -> None:
    """Print the bare signature and hash costs, RSA first, then GOST (or why GOST is unavailable)."""
    print("crypto floor (one core):")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"x" * 1024
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    _ops("  RSA-2048 verify (PKCS#1 v1.5, SHA-256)",
         lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()), seconds)
    _ops("  RSA-2048 sign", lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()), seconds)
    _throughput("  SHA-256", lambda data: hashlib.sha256(data).digest(), seconds)
    if not gost.available():
        print("  GOST: unavailable (install libengine-gost-openssl: make gost)")
        return
    for curve, hash_name, name in ((gost.CURVE_512A, "streebog512", "GOST 34.10-2015 512 (paramSetA)"),
                                   (gost.CURVE_CRYPTOPRO_A, "gost94_test", "GOST 34.310-2004 (CryptoPro-A)")):
        private = gost.generate_private(curve)
        xy = gost.public_key(curve, private)
        hasher = gost.new_hash(hash_name)
        hasher.update(message)
        digest = hasher.digest()
        signed = gost.sign(curve, private, digest)
        _ops(f"  {name} verify", lambda c=curve, d=digest, s=signed, q=xy: gost.verify(c, q, d, s), seconds)
        _ops(f"  {name} sign", lambda c=curve, d=digest, k=private: gost.sign(c, k, d), seconds)
    _throughput("  Streebog-512 (GOST 34.11-2015)", gost.streebog512, seconds)
    _throughput("  GOST R 34.11-94, Test S-box (GOST 34.311-95)", gost.gost94_test, seconds)


if __name__ == "__main__":
    crypto_floor(2.0)
