"""The C code GOST runs on, loaded once through ctypes: the system OpenSSL 3 and the GOST provider.

* ``libcrypto.so.3`` does the elliptic-curve arithmetic: its public EC API works on any prime curve
  (``EC_GROUP_new_curve_GFp``) and ``EC_POINT_mul`` computes n·G + m·Q in one call.
* ``gostprov.so`` (Debian package ``libengine-gost-openssl``) brings Streebog (fetched in a private
  ``OSSL_LIB_CTX``, so nothing else in the process sees the provider) and exports the GOST R 34.11-94
  block functions, which we drive with the Test S-box parameter set: the provider's own ``md_gost94``
  uses the CryptoPro S-box, with which every Kazakh GOST 34.311-95 digest comes out wrong.

Where to look can be changed with ``EGOV_LIBCRYPTO`` and ``EGOV_GOST_PROVIDER`` (paths). Without the
libraries every GOST call raises :class:`GostUnavailable`; :func:`available` says so up front.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from dataclasses import dataclass

LIBCRYPTO_ENV = "EGOV_LIBCRYPTO"
PROVIDER_ENV = "EGOV_GOST_PROVIDER"
_LIBCRYPTO_DEFAULTS = ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
                       "libcrypto.so.3")
_PROVIDER_DEFAULTS = ("/usr/lib/x86_64-linux-gnu/ossl-modules/gostprov.so",
                      "/usr/lib/aarch64-linux-gnu/ossl-modules/gostprov.so")
INSTALL_HINT = "install the Debian package libengine-gost-openssl (make gost)"

_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "OSSL_LIB_CTX_new": (_P, []),
    "OSSL_PROVIDER_load": (_P, [_P, ctypes.c_char_p]),
    "EVP_MD_fetch": (_P, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "EVP_Digest": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                  ctypes.POINTER(ctypes.c_uint), _P, _P]),
    "EVP_MD_CTX_new": (_P, []),
    "EVP_MD_CTX_free": (None, [_P]),
    "EVP_MD_CTX_copy_ex": (ctypes.c_int, [_P, _P]),
    "EVP_DigestInit_ex": (ctypes.c_int, [_P, _P, _P]),
    "EVP_DigestUpdate": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "EVP_DigestFinal_ex": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]),
    "BN_CTX_new": (_P, []),
    "BN_CTX_free": (None, [_P]),
    "BN_bin2bn": (_P, [ctypes.c_char_p, ctypes.c_int, _P]),
    "BN_bn2binpad": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int]),
    "BN_new": (_P, []),
    "BN_clear_free": (None, [_P]),
    "EC_GROUP_new_curve_GFp": (_P, [_P, _P, _P, _P]),
    "EC_GROUP_set_generator": (ctypes.c_int, [_P, _P, _P, _P]),
    "EC_POINT_new": (_P, [_P]),
    "EC_POINT_free": (None, [_P]),
    "EC_POINT_set_affine_coordinates": (ctypes.c_int, [_P, _P, _P, _P, _P]),
    "EC_POINT_get_affine_coordinates": (ctypes.c_int, [_P, _P, _P, _P, _P]),
    "EC_POINT_is_at_infinity": (ctypes.c_int, [_P, _P]),
    "EC_POINT_mul": (ctypes.c_int, [_P, _P, _P, _P, _P, _P]),
}
_GOST94_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "init_gost_hash_ctx": (ctypes.c_int, [_P, _P]),
    "start_hash": (ctypes.c_int, [_P]),
    "hash_block": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "finish_hash": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "done_gost_hash_ctx": (None, [_P]),
}


class GostUnavailable(RuntimeError):
    """The C libraries GOST needs are not installed (or not loadable) on this machine."""


@dataclass(frozen=True)
class Native:
    """The loaded libraries and the objects fetched from them once."""

    crypto: ctypes.CDLL
    "The system libcrypto (OpenSSL 3)."
    provider: ctypes.CDLL
    "gostprov.so, for the raw GOST R 34.11-94 functions."
    streebog512: int
    "EVP_MD* of Streebog-512 from the private library context."
    streebog256: int
    "EVP_MD* of Streebog-256."
    test_sbox: int
    "Address of the provider's GostR3411_94_TestParamSet S-box table."


_lock = threading.Lock()
_loaded: Native | None = None
_failure: str | None = None


def _candidates(env: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
    override = os.environ.get(env)
    return (override,) if override else defaults


def _open(env: str, defaults: tuple[str, ...], what: str) -> ctypes.CDLL:
    errors = []
    for path in _candidates(env, defaults):
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise GostUnavailable(f"{what} cannot be loaded ({'; '.join(errors)}); {INSTALL_HINT}")


def _declare(lib: ctypes.CDLL, signatures: dict[str, tuple[type | None, list[type]]]) -> None:
    for name, (restype, argtypes) in signatures.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise GostUnavailable(f"{name} is missing from {lib._name}; {INSTALL_HINT}") from None
        function.restype = restype
        function.argtypes = argtypes


def _load() -> Native:
    crypto = _open(LIBCRYPTO_ENV, _LIBCRYPTO_DEFAULTS, "OpenSSL 3 libcrypto")
    _declare(crypto, _SIGNATURES)
    provider = _open(PROVIDER_ENV, _PROVIDER_DEFAULTS, "the GOST provider (gostprov.so)")
    _declare(provider, _GOST94_SIGNATURES)
    libctx = crypto.OSSL_LIB_CTX_new()
    if not libctx or not crypto.OSSL_PROVIDER_load(libctx, provider._name.encode()):
        raise GostUnavailable(f"OpenSSL refused to load the GOST provider {provider._name}; {INSTALL_HINT}")
    md512 = crypto.EVP_MD_fetch(libctx, b"md_gost12_512", None)
    md256 = crypto.EVP_MD_fetch(libctx, b"md_gost12_256", None)
    if not md512 or not md256:
        raise GostUnavailable(f"the GOST provider offers no Streebog; {INSTALL_HINT}")
    try:
        sbox = ctypes.addressof(ctypes.c_char.in_dll(provider, "GostR3411_94_TestParamSet"))
    except ValueError:
        raise GostUnavailable(f"the GOST provider exports no Test S-box; {INSTALL_HINT}") from None
    return Native(crypto=crypto, provider=provider, streebog512=md512, streebog256=md256, test_sbox=sbox)


def native() -> Native:
    """The loaded libraries; raises :class:`GostUnavailable` (every time, with the same reason) if missing."""
    global _loaded, _failure
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None and _failure is None:
            try:
                _loaded = _load()
            except GostUnavailable as exc:
                _failure = str(exc)
        if _loaded is None:
            raise GostUnavailable(_failure)
        return _loaded


def available() -> bool:
    """Whether GOST signatures can be verified and made here."""
    try:
        native()
    except GostUnavailable:
        return False
    return True


def reset() -> None:
    """Forget what was loaded (or why loading failed), so the next call looks again (tests, env changes)."""
    global _loaded, _failure
    with _lock:
        _loaded = None
        _failure = None
