"""Reading what senders send: untrusted XML into a tree (refusals as CLIENT_* codes), dates into aware datetimes."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from lxml import etree

from gateway.errors import GatewayError
from gateway.monitor.metrics import UNKNOWN
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted

if TYPE_CHECKING:
    from gateway.delivery.registry import ServiceRegistry

_XML_ERROR_CODES = {"too_large": "CLIENT_BODY_TOO_LARGE", "forbidden": "CLIENT_FORBIDDEN_XML"}


def parse_xml(data: bytes, limits: XmlLimits, where: str = "") -> etree._Element:
    """Parse untrusted XML, turning a refusal into the matching CLIENT_* error."""
    try:
        return parse_untrusted(data, limits)
    except UnsafeXmlError as exc:
        code = _XML_ERROR_CODES.get(exc.reason, "CLIENT_MALFORMED_XML")
        raise GatewayError(code, f"{where}{exc.detail}") from None


def parse_datetime(value: str, local_zone: tzinfo) -> datetime:
    """xsd:dateTime to an aware datetime; a value without offset is local time in ``local_zone``.

    Kazakh clients send their local time without an offset (``shep.local_time_zone``, Asia/Almaty by default)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"messageDate {value!r} is not an ISO dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=local_zone)


def service_label(registry: ServiceRegistry, service_id: str | None) -> str:
    """The metrics' service label: a registered serviceId, else "unknown" (a caller cannot grow the label set)."""
    if service_id is None or registry.get(service_id) is None:
        return UNKNOWN
    return service_id
