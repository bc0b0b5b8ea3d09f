"""GOST primitives against the standards' own examples, and the Kazakh byte orders pinned by round trips."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from signing import gost
from signing.gost import CURVE_512A, CURVE_CRYPTOPRO_A, CURVE_TEST_512

# No skip when the library is missing: `make test` installs it, and a machine without it must fail here.

# GOST R 34.11-2012 appendix A: the standard prints messages and digests as numbers, most significant
# byte first; the byte strings the function consumes and produces are the reversal.
M1 = bytes.fromhex("323130393837363534333231303938373635343332313039383736353433323130393837363534333231"
                   "303938373635343332313039383736353433323130")[::-1]
M2 = bytes.fromhex("fbe2e5f0eee3c820fbeafaebef20fffbf0e1e0f0f520e0ed20e8ece0ebe5f0f2f120fff0eeec20f120faf2"
                   "fee5e2202ce8f6f3ede220e8e6eee1e8f0f2d1202ce8f0f2e5e220e5d1")[::-1]
H512 = {
    M1: "486f64c1917879417fef082b3381a4e211c324f074654c38823a7b76f830ad00fa1fbae42b1285c0352f227524bc9ab1"
        "6254288dd6863dccd5b9f54a1ad0541b",
    M2: "28fbc9bada033b1460642bdcddb90c3fb3e56c497ccd0f62b8a2ad4935e85f037613966de4ee00531ae60f3b5a47f8da"
        "e06915d5f2f194996fcabf2622e6881e",
}
H256 = {
    M1: "00557be5e584fd52a449b16b0251d05d27f94ab76cbaa6da890b59d8ef1e159d",
    M2: "508f7e553c06501d749a66fc28c6cac0b005746d97537fa85d9e40904efed29d",
}

# GOST R 34.11-94 with the Test parameter set (digests as the byte strings the function returns).
GOST94_TEST = {
    b"This is message, length=32 bytes": "b1c466d37519b82e8319819ff32595e047a28cb6f83eff1c6916a815a637fffa",
    b"Suppose the original message has length = 50 bytes":
        "471aba57a60a770d3a76130635c1fbea4ef14de51f78b4ae57dd893b62f55208",
    b"abc": "f3134348c44fb1b2a277729e2285ebb5cb5e0f29c975bc753b70497c06a4d51d",
    b"message digest": "ad4434ecb18f2c99b60cbe59ec3d2469582b65273f48de72db2fde16a4889a4d",
    b"The quick brown fox jumps over the lazy dog":
        "77b7fa410c9ac58a25f49bca7d0468c9296529315eaca76bd1a10f376d1f4294",
    # The empty message as the standard's algorithm computes it (some vendors print ce85b99c...).
    b"": "891d358a84c6033cf17bac82d77bb5d6791695a08ffce3768d39fbcacf8b29bd",
}
# The same message under the CryptoPro S-box: what a wrong parameter set would give.
GOST94_CRYPTOPRO_32 = "2cefc2f7b7bdc514e18ea57fa74ff357e7fa17d652c75f69cb1be7893ede48eb"

# GOST R 34.10-2012 appendix A.2 (512-bit example), numbers as the standard prints them.
A2_D = int("0BA6048AADAE241BA40936D47756D7C93091A0E8514669700EE7508E508B102072E8123B2200A0563322DAD2827E27"
           "14A2636B7BFD18AADFC62967821FA18DD4", 16)
A2_K = int("0359E7F4B1410FEACC570456C6801496946312120B39D019D455986E364F365886748ED7A44B3E794434006011842286"
           "212273A6D14CF70EA3AF71BB1AE679F1", 16)
A2_E = int("3754F3CFACC9E0615C4F4A7C4D8DAB531B09B6F9C170C533A71D147035B0C5917184EE536593F4414339976C647C5D"
           "5A407ADEDB1D560C4FC6777D2972075B8C", 16)
A2_R = int("2F86FA60A081091A23DD795E1E3C689EE512A3C82EE0DCC2643C78EEA8FCACD35492558486B20F1C9EC197C9069985"
           "0260C93BCBCD9C5C3317E19344E173AE36", 16)
A2_S = int("1081B394696FFE8E6585E7A9362D26B6325F56778AADBC081C0BFBE933D52FF5823CE288E8C4F362526080DF7F70CE"
           "406A6EEB1F56919CB92A9853BDE73E5B4A", 16)
A2_QX = int("115DC5BC96760C7B48598D8AB9E740D4C4A85A65BE33C1815B5C320C854621DD5A515856D13314AF69BC5B924C8B4"
            "DDFF75C45415C1D9DD9DD33612CD530EFE1", 16)
A2_QY = int("37C7C90CD40B0F5621DC3AC1B751CFA0E2634FA0503B3D52639F5D7FB72AFD61EA199441D943FFE7F0C70A2759A3C"
            "DB84C114E1F9339FDF27F35ECA93677BEEC", 16)


@pytest.mark.parametrize("message", [M1, M2], ids=["M1", "M2"])
def test_streebog_examples_of_the_standard(message: bytes) -> None:
    assert gost.streebog512(message)[::-1].hex() == H512[message]
    assert gost.streebog256(message)[::-1].hex() == H256[message]


@pytest.mark.parametrize("message", list(GOST94_TEST), ids=lambda m: repr(m[:12]))
def test_gost94_test_parameter_set(message: bytes) -> None:
    assert gost.gost94_test(message).hex() == GOST94_TEST[message]


def test_gost94_is_not_the_cryptopro_variant() -> None:
    assert gost.gost94_test(b"This is message, length=32 bytes").hex() != GOST94_CRYPTOPRO_32


@pytest.mark.parametrize("name,one_shot", [("streebog512", gost.streebog512), ("streebog256", gost.streebog256),
                                           ("gost94_test", gost.gost94_test)])
def test_incremental_hash_matches_one_shot(name: str, one_shot: object) -> None:
    data = bytes(range(256)) * 41 + b"tail"  # block boundaries of 32 and 64 bytes crossed unevenly
    hasher = gost.new_hash(name)
    for start in range(0, len(data), 77):
        hasher.update(data[start:start + 77])
    assert callable(one_shot)
    assert hasher.digest() == one_shot(data)
    assert hasher.digest() == one_shot(data), "digest() may be called again"
    hasher.update(b"more")
    assert hasher.digest() == one_shot(data + b"more"), "input may follow digest()"


def test_unknown_hash_name_is_refused() -> None:
    with pytest.raises(ValueError):
        gost.new_hash("md5")


@pytest.mark.parametrize("curve", [CURVE_512A, CURVE_CRYPTOPRO_A, CURVE_TEST_512], ids=lambda c: c.name)
def test_curve_parameters_are_consistent(curve: gost.Curve) -> None:
    from signing.gost.ecc import _combine
    assert (curve.y ** 2 - curve.x ** 3 - curve.a * curve.x - curve.b) % curve.p == 0
    assert _combine(curve, curve.q, None, 0) is None, "q·G is the point at infinity: q is the order of G"
    assert _combine(curve, curve.q - 1, None, 0) == (curve.x, curve.p - curve.y)


def test_gost_34_10_2012_example_2_sign_and_verify() -> None:
    digest = A2_E.to_bytes(64, "little")  # e is read little-endian from the digest bytes
    public = gost.public_key(CURVE_TEST_512, A2_D)
    assert public == A2_QX.to_bytes(64, "little") + A2_QY.to_bytes(64, "little")
    signature = gost.sign(CURVE_TEST_512, A2_D, digest, k=A2_K)
    assert signature == A2_R.to_bytes(64, "little") + A2_S.to_bytes(64, "little")
    # ... which is the exact byte reversal of RFC 4491's big-endian s‖r.
    assert signature == (A2_S.to_bytes(64, "big") + A2_R.to_bytes(64, "big"))[::-1]
    assert gost.verify(CURVE_TEST_512, public, digest, signature)


def test_verify_refuses_every_wrong_input() -> None:
    digest = A2_E.to_bytes(64, "little")
    public = gost.public_key(CURVE_TEST_512, A2_D)
    good = gost.sign(CURVE_TEST_512, A2_D, digest, k=A2_K)
    assert not gost.verify(CURVE_TEST_512, public, digest[::-1], good), "digest read big-endian"
    assert not gost.verify(CURVE_TEST_512, public, digest, good[64:] + good[:64]), "s‖r instead of r‖s"
    assert not gost.verify(CURVE_TEST_512, public, digest, good[::-1]), "RFC 4491 order"
    assert not gost.verify(CURVE_TEST_512, public[64:] + public[:64], digest, good), "Y‖X"
    assert not gost.verify(CURVE_TEST_512, public[:64][::-1] + public[64:][::-1], digest, good), "big-endian key"
    flipped = bytearray(good)
    flipped[3] ^= 1
    assert not gost.verify(CURVE_TEST_512, public, digest, bytes(flipped))
    assert not gost.verify(CURVE_TEST_512, public, digest, good[:-1]), "short signature"
    assert not gost.verify(CURVE_TEST_512, public, digest, bytes(128)), "r = s = 0"
    q = CURVE_TEST_512.q.to_bytes(64, "little")
    assert not gost.verify(CURVE_TEST_512, public, digest, q + good[64:]), "r = q"
    off_curve = (A2_QX.to_bytes(64, "little") + (A2_QY + 1).to_bytes(64, "little"))
    assert not gost.verify(CURVE_TEST_512, off_curve, digest, good), "key not on the curve"


@pytest.mark.parametrize("curve,hash_name", [(CURVE_512A, "streebog512"), (CURVE_CRYPTOPRO_A, "gost94_test")],
                         ids=["2015-512", "2004"])
def test_sign_verify_round_trip_on_the_kazakh_curves(curve: gost.Curve, hash_name: str) -> None:
    private = gost.generate_private(curve)
    public = gost.public_key(curve, private)
    hasher = gost.new_hash(hash_name)
    hasher.update(b"<doc>signed</doc>")
    digest = hasher.digest()
    signature = gost.sign(curve, private, digest)
    assert len(signature) == 2 * curve.size
    assert gost.verify(curve, public, digest, signature)
    assert gost.sign(curve, private, digest) != signature, "k is random"
    other = gost.public_key(curve, gost.generate_private(curve))
    assert not gost.verify(curve, other, digest, signature)


def test_private_scalar_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        gost.public_key(CURVE_512A, 0)
    with pytest.raises(ValueError):
        gost.sign(CURVE_512A, CURVE_512A.q, bytes(64))


def test_missing_library_is_a_clear_error() -> None:
    """Pointed at a missing provider, every call raises GostUnavailable with the install hint."""
    code = (
        "from signing import gost\n"
        "assert not gost.available()\n"
        "for call in (lambda: gost.streebog512(b''), lambda: gost.new_hash('gost94_test'),\n"
        "             lambda: gost.verify(gost.CURVE_512A, bytes(128), bytes(64), bytes(128))):\n"
        "    try:\n"
        "        call()\n"
        "    except gost.GostUnavailable as exc:\n"
        "        assert 'libengine-gost-openssl' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('no GostUnavailable')\n"
        "print('ok')\n"
    )
    env = {"EGOV_GOST_PROVIDER": "/nonexistent/gostprov.so", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", os.getcwd())}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
