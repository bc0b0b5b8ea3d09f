"""GOST R 34.10-2012 / 34.10-2015 signatures in the byte orders Kazakh keys use.

Public key: X‖Y, each little-endian. Digest: read as a little-endian integer. Signature: r‖s, each
little-endian (the exact byte reversal of RFC 4491's big-endian s‖r). The point arithmetic runs in
OpenSSL (``EC_POINT_mul``, which computes n·G + m·Q in one call and uses a constant-time ladder for
k·G); the scalar arithmetic around it is plain Python.
"""

from __future__ import annotations

import ctypes
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from signing.gost.curves import Curve
from signing.gost.native import Native, native

_groups: dict[Curve, int] = {}
_groups_lock = threading.Lock()


class _Ctx:
    """One BN_CTX and the OpenSSL objects allocated under it, all freed at the end."""

    def __init__(self, lib: Native) -> None:
        self.lib = lib
        self.bn_ctx = lib.crypto.BN_CTX_new()
        self._frees: list[tuple[Callable[[int], None], int]] = []

    def bn(self, value: int, size: int) -> int:
        raw = value.to_bytes(size, "big")
        bignum = self.lib.crypto.BN_bin2bn(raw, len(raw), None)
        if not bignum:
            raise MemoryError("BN_bin2bn")
        self._frees.append((self.lib.crypto.BN_clear_free, bignum))
        return int(bignum)

    def point(self, group: int) -> int:
        point = self.lib.crypto.EC_POINT_new(group)
        if not point:
            raise MemoryError("EC_POINT_new")
        self._frees.append((self.lib.crypto.EC_POINT_free, point))
        return int(point)

    def close(self) -> None:
        for free, pointer in reversed(self._frees):
            free(pointer)
        self.lib.crypto.BN_CTX_free(self.bn_ctx)


@contextmanager
def _ctx() -> Iterator[_Ctx]:
    ctx = _Ctx(native())
    try:
        yield ctx
    finally:
        ctx.close()


def _group(curve: Curve) -> int:
    """The EC_GROUP of ``curve``, built once and kept for the life of the process (read-only after)."""
    group = _groups.get(curve)
    if group is not None:
        return group
    with _groups_lock, _ctx() as ctx:
        if curve in _groups:
            return _groups[curve]
        crypto, n = ctx.lib.crypto, curve.size
        group = crypto.EC_GROUP_new_curve_GFp(ctx.bn(curve.p, n), ctx.bn(curve.a % curve.p, n),
                                              ctx.bn(curve.b, n), ctx.bn_ctx)
        if not group:
            raise ValueError(f"OpenSSL refused the curve {curve.name}")
        generator = ctx.point(group)
        if crypto.EC_POINT_set_affine_coordinates(group, generator, ctx.bn(curve.x, n), ctx.bn(curve.y, n),
                                                  ctx.bn_ctx) != 1 or \
                crypto.EC_GROUP_set_generator(group, generator, ctx.bn(curve.q, n), ctx.bn(1, 1)) != 1:
            raise ValueError(f"the base point of {curve.name} is not on the curve")
        _groups[curve] = int(group)
        return int(group)


def _combine(curve: Curve, n: int, point: tuple[int, int] | None, m: int) -> tuple[int, int] | None:
    """n·G + m·point (point=None: n·G only); None for the point at infinity; ValueError if off-curve."""
    group = _group(curve)
    with _ctx() as ctx:
        crypto, size = ctx.lib.crypto, curve.size
        result = ctx.point(group)
        if point is None:
            ok = crypto.EC_POINT_mul(group, result, ctx.bn(n, size), None, None, ctx.bn_ctx)
        else:
            other = ctx.point(group)
            if crypto.EC_POINT_set_affine_coordinates(group, other, ctx.bn(point[0], size),
                                                      ctx.bn(point[1], size), ctx.bn_ctx) != 1:
                raise ValueError("the public key is not a point of the curve")
            ok = crypto.EC_POINT_mul(group, result, ctx.bn(n, size), other, ctx.bn(m, size), ctx.bn_ctx)
        if ok != 1:
            raise RuntimeError("EC_POINT_mul failed")
        if crypto.EC_POINT_is_at_infinity(group, result):
            return None
        x, y = ctx.bn(0, 1), ctx.bn(0, 1)
        if crypto.EC_POINT_get_affine_coordinates(group, result, x, y, ctx.bn_ctx) != 1:
            raise RuntimeError("EC_POINT_get_affine_coordinates failed")
        out = ctypes.create_string_buffer(size)
        crypto.BN_bn2binpad(x, out, size)
        x_value = int.from_bytes(out.raw, "big")
        crypto.BN_bn2binpad(y, out, size)
        return x_value, int.from_bytes(out.raw, "big")


def _digest_scalar(curve: Curve, digest: bytes) -> int:
    if not digest:
        raise ValueError("empty digest")
    e = int.from_bytes(digest, "little") % curve.q
    return e or 1


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def public_key(curve: Curve, private_scalar: int) -> bytes:
    """The public key d·G as X‖Y, each little-endian."""
    if not 0 < private_scalar < curve.q:
        raise ValueError("the private scalar is out of range")
    point = _combine(curve, private_scalar, None, 0)
    if point is None:
        raise ValueError("the private scalar gives the point at infinity")
    return _le(point[0], curve.size) + _le(point[1], curve.size)


def generate_private(curve: Curve) -> int:
    """A uniformly random private scalar in [1, q-1]."""
    return 1 + secrets.randbelow(curve.q - 1)


def sign(curve: Curve, private_scalar: int, digest: bytes, *, k: int | None = None) -> bytes:
    """The signature r‖s (each little-endian) of ``digest``. ``k`` is for known-answer tests only."""
    if not 0 < private_scalar < curve.q:
        raise ValueError("the private scalar is out of range")
    e = _digest_scalar(curve, digest)
    while True:
        nonce = k if k is not None else generate_private(curve)
        point = _combine(curve, nonce, None, 0)
        r = point[0] % curve.q if point is not None else 0
        s = (r * private_scalar + nonce * e) % curve.q
        if r and s:
            return _le(r, curve.size) + _le(s, curve.size)
        if k is not None:
            raise ValueError("this k gives r = 0 or s = 0")


def verify(curve: Curve, public_xy_le: bytes, digest: bytes, signature_le: bytes) -> bool:
    """Whether ``signature_le`` (r‖s LE) is a signature of ``digest`` under ``public_xy_le`` (X‖Y LE).

    Malformed keys and signatures give False; only a missing C library raises (GostUnavailable).
    """
    native()  # a missing library is an error, never a plain "does not verify"
    size = curve.size
    if len(public_xy_le) != 2 * size or len(signature_le) != 2 * size or not digest:
        return False
    r = int.from_bytes(signature_le[:size], "little")
    s = int.from_bytes(signature_le[size:], "little")
    qx = int.from_bytes(public_xy_le[:size], "little")
    qy = int.from_bytes(public_xy_le[size:], "little")
    if not (0 < r < curve.q and 0 < s < curve.q and qx < curve.p and qy < curve.p):
        return False
    v = pow(_digest_scalar(curve, digest), -1, curve.q)
    try:
        point = _combine(curve, s * v % curve.q, (qx, qy), (curve.q - r) * v % curve.q)
    except ValueError:
        return False
    return point is not None and point[0] % curve.q == r
