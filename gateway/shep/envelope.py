"""SOAP 1.1 names and the few helpers every SHEP message needs, whether the gateway receives it or sends it."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from signing.xmlsafe import XmlLimits, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
BODY = f"{{{SOAP_ENV}}}Body"
HEADER = f"{{{SOAP_ENV}}}Header"
FAULT = f"{{{SOAP_ENV}}}Fault"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")








def own_xml(data: bytes | str) -> etree._Element:
    """Re-read XML the gateway itself produced (a signed result or receipt) for embedding."""
    raw = data.encode() if isinstance(data, str) else data
    return parse_untrusted(raw, XmlLimits(max_bytes=len(raw) + 1))




