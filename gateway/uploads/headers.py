"""The tus 1.0.0 headers this gateway reads and writes (https://tus.io/protocols/resumable-upload)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from aiohttp import web

from gateway.errors import GatewayError

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_KEY = re.compile(r"[!-+\--~]+")  # tus: a key is ASCII, without spaces or commas
MAX_FILENAME = 255


@dataclass(frozen=True)
class Creation:
    """What a creation request (POST) declares."""

    length: int
    "Upload-Length: the package's size in bytes."
    sha256: str
    "The ``sha256`` metadata: lowercase hex SHA-256 of the whole package."
    filename: str
    "The ``filename`` metadata."


def require_tus(request: web.Request) -> None:
    """Every request but OPTIONS names the protocol version it speaks (412 otherwise)."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise GatewayError("UPLOAD_TUS_VERSION", f"send Tus-Resumable: {TUS_VERSION}")


def number(request: web.Request, name: str) -> int:
    """A non-negative integer header (400 UPLOAD_HEADERS_INVALID when absent or not one)."""
    value = request.headers.get(name)
    if value is None or not _DIGITS.fullmatch(value):
        raise GatewayError("UPLOAD_HEADERS_INVALID", f"{name}: a non-negative integer is required")
    return int(value)


def metadata(header: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64(value)`` pairs (a key alone means an empty value)."""
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not _KEY.fullmatch(key) or key in pairs:
            raise GatewayError("UPLOAD_HEADERS_INVALID", "Upload-Metadata: keys must be distinct ASCII words")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise GatewayError("UPLOAD_HEADERS_INVALID", f"Upload-Metadata: {key} is not base64 of UTF-8") from None
    return pairs


def creation(request: web.Request, max_bytes: int) -> Creation:
    """The POST's declared length, digest and file name, checked."""
    if "Upload-Defer-Length" in request.headers:
        raise GatewayError("UPLOAD_HEADERS_INVALID", "Upload-Defer-Length is not supported: send Upload-Length")
    length = number(request, "Upload-Length")
    if length > max_bytes:
        raise GatewayError("UPLOAD_TOO_LARGE", f"Tus-Max-Size is {max_bytes} bytes")
    if length == 0:
        raise GatewayError("UPLOAD_HEADERS_INVALID", "Upload-Length: a package has at least one byte")
    pairs = metadata(request.headers.get("Upload-Metadata", ""))
    sha256, filename = pairs.get("sha256", ""), pairs.get("filename", "")
    if not SHA256_HEX.fullmatch(sha256):
        raise GatewayError("UPLOAD_HEADERS_INVALID", "Upload-Metadata: sha256 must be 64 lowercase hex digits")
    if not filename or len(filename) > MAX_FILENAME or any(c in filename for c in "/\\") or not filename.isprintable():
        raise GatewayError("UPLOAD_HEADERS_INVALID",
                           f"Upload-Metadata: filename must be 1 to {MAX_FILENAME} printable characters, no slashes")
    return Creation(length, sha256, filename)


def encode_metadata(pairs: dict[str, str]) -> str:
    """Upload-Metadata for a client."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())
