"""GOST hash functions: Streebog (GOST R 34.11-2012, 256 and 512) and GOST R 34.11-94 with the Test S-box.

Kazakhstan's "GOST 34.311-95" is GOST R 34.11-94 with the Test parameter set (OID 1.2.643.2.2.30.0),
not the CryptoPro one. Digests are the raw output bytes, in the order the C code writes them (the
order XMLDSig DigestValue and the signature's ``e`` use); the standards print them reversed.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Protocol

from signing.gost.native import Native, native

_GOST94_CTX_SIZE = 512  # sizeof(gost_hash_ctx) is 120 on x86-64; room to spare for other builds
STREEBOG512 = "streebog512"
STREEBOG256 = "streebog256"
GOST94_TEST = "gost94_test"
DIGEST_SIZES = {STREEBOG512: 64, STREEBOG256: 32, GOST94_TEST: 32}


class GostHash(Protocol):
    name: str
    digest_size: int

    def update(self, data: bytes) -> None:
        """Feed more input."""
        ...

    def digest(self) -> bytes:
        """The digest of everything fed so far (may be called again, and input may follow)."""
        ...


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


class _Streebog:
    """Streebog through OpenSSL's EVP interface and the GOST provider."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.digest_size = DIGEST_SIZES[name]
        self._lib = native()
        md = self._lib.streebog512 if name == STREEBOG512 else self._lib.streebog256
        crypto = self._lib.crypto
        self._ctx = crypto.EVP_MD_CTX_new()
        if not self._ctx:
            raise MemoryError("EVP_MD_CTX_new")
        weakref.finalize(self, crypto.EVP_MD_CTX_free, self._ctx)
        if crypto.EVP_DigestInit_ex(self._ctx, md, None) != 1:
            raise RuntimeError("EVP_DigestInit_ex refused Streebog")

    def update(self, data: bytes) -> None:
        data = _as_bytes(data)
        if self._lib.crypto.EVP_DigestUpdate(self._ctx, data, len(data)) != 1:
            raise RuntimeError("EVP_DigestUpdate failed")

    def digest(self) -> bytes:
        crypto = self._lib.crypto
        copy = crypto.EVP_MD_CTX_new()
        try:
            out = ctypes.create_string_buffer(64)
            size = ctypes.c_uint(0)
            if crypto.EVP_MD_CTX_copy_ex(copy, self._ctx) != 1 or \
                    crypto.EVP_DigestFinal_ex(copy, out, ctypes.byref(size)) != 1:
                raise RuntimeError("EVP_DigestFinal_ex failed")
            return out.raw[:size.value]
        finally:
            crypto.EVP_MD_CTX_free(copy)


class _Gost94Test:
    """GOST R 34.11-94 (Test S-box) through the provider's exported block functions."""

    name = GOST94_TEST
    digest_size = 32

    def __init__(self) -> None:
        self._lib = native()
        provider = self._lib.provider
        self._ctx = ctypes.create_string_buffer(_GOST94_CTX_SIZE)
        if provider.init_gost_hash_ctx(ctypes.addressof(self._ctx), self._lib.test_sbox) != 1:
            raise MemoryError("init_gost_hash_ctx")
        weakref.finalize(self, _free_gost94, provider, self._ctx)  # holds the buffer until the C side is freed
        provider.start_hash(ctypes.addressof(self._ctx))

    def update(self, data: bytes) -> None:
        data = _as_bytes(data)
        self._lib.provider.hash_block(ctypes.addressof(self._ctx), data, len(data))

    def digest(self) -> bytes:
        out = ctypes.create_string_buffer(32)
        # finish_hash works on copies of the running state, so more input may still follow.
        self._lib.provider.finish_hash(ctypes.addressof(self._ctx), out)
        return out.raw


def _free_gost94(provider: ctypes.CDLL, buffer: ctypes.Array[ctypes.c_char]) -> None:
    provider.done_gost_hash_ctx(ctypes.addressof(buffer))


def new_hash(name: str) -> GostHash:
    """An incremental hasher: ``streebog512``, ``streebog256`` or ``gost94_test``."""
    if name in (STREEBOG512, STREEBOG256):
        return _Streebog(name)
    if name == GOST94_TEST:
        return _Gost94Test()
    raise ValueError(f"unknown GOST hash {name!r}")


def _evp_digest(lib: Native, md: int, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(64)
    size = ctypes.c_uint(0)
    if lib.crypto.EVP_Digest(data, len(data), out, ctypes.byref(size), md, None) != 1:
        raise RuntimeError("EVP_Digest failed")
    return out.raw[:size.value]


def streebog512(data: bytes) -> bytes:
    """GOST R 34.11-2012, 512-bit digest."""
    lib = native()
    return _evp_digest(lib, lib.streebog512, _as_bytes(data))


def streebog256(data: bytes) -> bytes:
    """GOST R 34.11-2012, 256-bit digest."""
    lib = native()
    return _evp_digest(lib, lib.streebog256, _as_bytes(data))


def gost94_test(data: bytes) -> bytes:
    """GOST R 34.11-94 with the Test parameter set (Kazakhstan's GOST 34.311-95)."""
    hasher = _Gost94Test()
    hasher.update(data)
    return hasher.digest()
