"""An NCA-like test PKI: trusted root and NCA intermediate, an untrusted foreign CA, people,
organisation employees and systems, each with SIGN and AUTH certificates in the NCA profile.

THIS IS A TEST PKI: private keys are stored unencrypted (PKCS#8 PEM) next to password
protected PKCS#12 copies. Use it for tests and demos only.

Typical use::

    pki = ensure_pki(Path(".egov/pki"))
    aigerim = pki.person("aigerim")
    cert, key = aigerim.sign.load_certificate(), aigerim.sign.load_private_key()

The handles and what each is for are in :mod:`mocks.pki.people` and in ``index.json``.
"""

from __future__ import annotations

import datetime
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mocks.pki.builder import CRL_URLS, INDEX_VERSION, OCSP_URL, build
from mocks.pki.people import SYSTEMS

__all__ = [
    "CRL_URLS",
    "OCSP_URL",
    "CaFiles",
    "GostKeyFiles",
    "KeyFiles",
    "Person",
    "TestPki",
    "ensure_pki",
    "generate_pki",
    "load_pki",
]


def _load_pem_key(path: Path) -> PrivateKeyTypes:
    # Read from disk on every call: nothing here caches key material.
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


@dataclass(frozen=True)
class KeyFiles:
    """One certificate with its private key, as PEM files and a PKCS#12 bundle."""

    cert: Path
    """PEM certificate."""
    key: Path
    """Unencrypted PKCS#8 PEM private key."""
    p12: Path
    """PKCS#12 with key, certificate and CA chain, protected by :attr:`TestPki.p12_password`."""

    def load_certificate(self) -> x509.Certificate:
        """Parse :attr:`cert`."""
        return x509.load_pem_x509_certificate(self.cert.read_bytes())

    def load_private_key(self) -> PrivateKeyTypes:
        """Parse :attr:`key` (read afresh on each call)."""
        return _load_pem_key(self.key)


def _load_gost_scalar(path: Path) -> int:
    from signing.gost_x509 import load_private_key_pem

    return load_private_key_pem(path.read_bytes())[1]


@dataclass(frozen=True)
class GostKeyFiles:
    """One GOST 34.10-2015 certificate with its private key, as PEM files (no PKCS#12 for GOST)."""

    cert: Path
    """PEM certificate (GOST-signed, GOST key)."""
    key: Path
    """Unencrypted PKCS#8 PEM private key (the scalar little-endian, as GOST PKCS#8 keys store it)."""

    def load_certificate(self) -> x509.Certificate:
        """Parse :attr:`cert`."""
        return x509.load_pem_x509_certificate(self.cert.read_bytes())

    def load_private_scalar(self) -> int:
        """The private key (read afresh on each call), for :func:`signing.gost.sign`."""
        return _load_gost_scalar(self.key)


@dataclass(frozen=True)
class CaFiles:
    """A CA certificate and its key (the key is for the mock OCSP responder and CRL issuer)."""

    cert: Path
    """PEM CA certificate."""
    key: Path
    """Unencrypted PKCS#8 PEM private key of the CA."""

    def load_certificate(self) -> x509.Certificate:
        """Parse :attr:`cert`."""
        return x509.load_pem_x509_certificate(self.cert.read_bytes())

    def load_private_key(self) -> PrivateKeyTypes:
        """Parse :attr:`key` (read afresh on each call)."""
        return _load_pem_key(self.key)

    def load_private_scalar(self) -> int:
        """A GOST CA's private key (gost-root, gost-nca)."""
        return _load_gost_scalar(self.key)


@dataclass(frozen=True)
class Person:
    """A certificate holder: an individual or an organisation's employee."""

    handle: str
    """Short key, e.g. ``aigerim`` or ``kitap-head``."""
    kind: str
    """``individual`` or ``employee``."""
    iin: str = field(repr=False)  # kept out of repr() like in signing.nca
    """The person's IIN (in subject SERIALNUMBER); personal data, mask before logging."""
    bin: str | None
    """Employer's BIN (subject OU) for employees, else None."""
    organisation: str | None
    """Employer's name (subject O) for employees, else None."""
    org: str | None
    """Employer's handle in :attr:`TestPki.organisations`, else None."""
    surname: str
    """Subject SURNAME."""
    given_name: str
    """Patronymic, as stored in subject GIVENNAME."""
    name: str
    """First name (CN is ``surname name``)."""
    sex: str
    """``male`` or ``female``, matching IIN digit 7."""
    birth_date: datetime.date
    """Birth date, matching IIN digits 1-6."""
    roles: tuple[str, ...]
    """:class:`signing.nca.SignerRole` values in the certificates' EKU."""
    description: str
    """What tests use this person for."""
    sign: KeyFiles
    """Signing certificate (keyUsage digitalSignature + nonRepudiation)."""
    auth: KeyFiles
    """Authentication certificate (keyUsage digitalSignature + keyEncipherment)."""
    gost_sign: GostKeyFiles | None = None
    """GOST 34.10-2015 signing certificate from the GOST NCA intermediate, for the people who hold one."""
    gost_auth: GostKeyFiles | None = None
    """GOST 34.10-2015 authentication certificate, beside :attr:`gost_sign`."""


@dataclass(frozen=True)
class TestPki:
    """A generated test PKI on disk, as described by its index.json."""

    __test__ = False  # not a pytest test class despite the name

    root: Path
    """Directory holding the PKI; every path below is inside it."""
    p12_password: str
    """Password of every PKCS#12 file."""
    trust_anchors: tuple[Path, ...]
    """Root certificates the gateway trusts (the KZ test root)."""
    intermediates: tuple[Path, ...]
    """Intermediate CA certificates the gateway may use to build chains (the NCA test CA)."""
    people: dict[str, Person]
    """People by handle."""
    organisations: dict[str, dict]
    """Organisations by handle: ``{"bin": ..., "name": ...}``."""
    systems: dict[str, KeyFiles]
    """System certificates by name: gateway, library, elicense, portal."""
    authorities: dict[str, CaFiles] = field(default_factory=dict)
    """CAs by name: root, nca, gost-root, gost-nca (trusted) and foreign-root, foreign-ca (not trusted)."""
    system_bins: dict[str, str] = field(default_factory=dict)
    """BIN in each system certificate's subject OU, by system name."""
    gost_systems: dict[str, GostKeyFiles] = field(default_factory=dict)
    """Each system's GOST 34.10-2015 SIGN certificate and key (same subject), e.g. for a GOST-signing gateway."""

    def person(self, handle: str) -> Person:
        """The person with this handle; KeyError lists the known handles."""
        try:
            return self.people[handle]
        except KeyError:
            known = ", ".join(sorted(self.people))
            raise KeyError(f"no person {handle!r} in the test PKI; known: {known}") from None


def _key_files(root: Path, entry: dict[str, Any]) -> KeyFiles:
    return KeyFiles(cert=root / entry["cert"], key=root / entry["key"], p12=root / entry["p12"])


def load_pki(out_dir: Path) -> TestPki:
    """Load a PKI previously written by :func:`generate_pki`."""
    root = Path(out_dir)
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    if index.get("version") != INDEX_VERSION:
        raise ValueError(f"{root / 'index.json'}: unsupported version {index.get('version')!r}")
    people = {
        handle: Person(
            handle=handle,
            kind=p["kind"],
            iin=p["iin"],
            bin=p["bin"],
            organisation=p["organisation"],
            org=p["org"],
            surname=p["surname"],
            given_name=p["given_name"],
            name=p["name"],
            sex=p["sex"],
            birth_date=datetime.date.fromisoformat(p["birth_date"]),
            roles=tuple(p["roles"]),
            description=p["description"],
            sign=_key_files(root, p["sign"]),
            auth=_key_files(root, p["auth"]),
            gost_sign=GostKeyFiles(root / p["gost"]["sign"]["cert"], root / p["gost"]["sign"]["key"])
            if "gost" in p else None,
            gost_auth=GostKeyFiles(root / p["gost"]["auth"]["cert"], root / p["gost"]["auth"]["key"])
            if "gost" in p else None,
        )
        for handle, p in index["people"].items()
    }
    authorities = index["authorities"]
    _write_trust_file(root, index)
    return TestPki(
        root=root,
        p12_password=index["p12_password"],
        trust_anchors=tuple(root / p for p in index["trust_anchors"]),
        intermediates=tuple(root / p for p in index["intermediates"]),
        people=people,
        organisations={handle: dict(org) for handle, org in index["organisations"].items()},
        systems={name: _key_files(root, s) for name, s in index["systems"].items()},
        authorities={name: CaFiles(root / a["cert"], root / a["key"]) for name, a in authorities.items()},
        system_bins={name: s["bin"] for name, s in index["systems"].items()},
        gost_systems={name: GostKeyFiles(root / s["gost"]["cert"], root / s["gost"]["key"])
                      for name, s in index["systems"].items() if "gost" in s},
    )


def _write_trust_file(root: Path, index: dict[str, Any]) -> None:
    """``trust.toml``: the ``[trust]`` of a gateway configuration that trusts this PKI (what `verify` reads).

    Rewritten only when its text would change, so loading a PKI that is in use costs no write."""
    path = root / "trust.toml"
    anchors = ", ".join(json.dumps(p) for p in index["trust_anchors"])  # a JSON string is a TOML basic string
    intermediates = ", ".join(json.dumps(p) for p in index["intermediates"])
    # The demo's gateway asks its OCSP responder about every certificate of the path (the NCA intermediate names
    # no responder or CRL of its own), and so does `verify` with this file.
    crls = ", ".join(json.dumps(CRL_URLS[name]) for name in ("nca", "root", "gost-nca", "gost-root"))
    text = f"# The test PKI's trust, as a gateway configuration names it.\n[trust]\nanchors = [{anchors}]\n" \
           f"intermediates = [{intermediates}]\n[revocation]\nocsp_url = {json.dumps(OCSP_URL)}\n" \
           f"crl_urls = [{crls}]\n"
    with suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def generate_pki(out_dir: Path, *, p12_password: str = "egov-test") -> TestPki:
    """Generate a fresh PKI into ``out_dir`` (overwriting one already there) and load it."""
    build(Path(out_dir), p12_password)
    return load_pki(out_dir)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    # Parallel test processes may call ensure_pki at once; one generates, the others wait and load.
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_pki(out_dir: Path, *, max_age: datetime.timedelta = datetime.timedelta(days=14)) -> TestPki:
    """Load the PKI in ``out_dir``, generating it when index.json is missing or unreadable.

    A PKI older than ``max_age`` is regenerated too: its "future" certificates become valid
    after 30 days and the current ones expire after a year, which would silently change
    what the rejection tests test.
    """
    out_dir = Path(out_dir)
    with _locked(out_dir):
        try:
            index = json.loads((out_dir / "index.json").read_text(encoding="utf-8"))
            created = datetime.datetime.fromisoformat(index["created"])
            current = {spec.name for spec in SYSTEMS} <= set(index["systems"])  # a system added since: remade
            if datetime.datetime.now(datetime.UTC) - created <= max_age and current:
                return load_pki(out_dir)
        except (OSError, ValueError, KeyError):
            pass
        return generate_pki(out_dir)
