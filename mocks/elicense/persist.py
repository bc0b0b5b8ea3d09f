"""E-licensing's registrations as JSON, so a demo restart keeps every application, its timeline and its result.

The business document is stored as its exclusive C14N and read again with the provider's own rules at
start (they are deterministic); the timeline is stored as it was fixed at submission, and a result
already signed is stored byte for byte, so the gateway polling after a restart gets the same document.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Protocol

from lxml import etree

from mocks.elicense.forms import read_application, review
from mocks.elicense.steps import STEP_BY_CODE, StepTiming
from signing.xmlsafe import parse_untrusted


class Stored(Protocol):
    """The fields of :class:`mocks.elicense.app.Registration` that are stored (the rest is derived)."""

    number: str
    certificate_number: str
    digest: str
    document: bytes
    registered_at: datetime
    timings: tuple[StepTiming, ...]


def registration_json(registration: Stored) -> dict[str, Any]:
    """One registration as JSON (see :func:`registration_fields`)."""
    return {
        "number": registration.number, "certificate_number": registration.certificate_number,
        "digest": registration.digest, "document": registration.document.decode("utf-8"),
        "registered_at": registration.registered_at.isoformat(),
        "timings": [{"code": t.step.code, "started_at": t.started_at.isoformat(), "due_at": t.due_at.isoformat(),
                     "completes_at": t.completes_at.isoformat()} for t in registration.timings],
    }


def registration_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of a Registration from :func:`registration_json` (KeyError, ValueError if damaged)."""
    document = data["document"].encode("utf-8")
    application = read_application(parse_untrusted(document))
    return {
        "number": data["number"], "certificate_number": data["certificate_number"], "digest": data["digest"],
        "document": document, "application": application,
        "registered_at": datetime.fromisoformat(data["registered_at"]),
        "grounds": review(application),
        "timings": tuple(StepTiming(STEP_BY_CODE[t["code"]], datetime.fromisoformat(t["started_at"]),
                                    datetime.fromisoformat(t["due_at"]), datetime.fromisoformat(t["completes_at"]))
                         for t in data["timings"]),
    }


def results_json(results: dict[str, bytes]) -> dict[str, str]:
    return {number: base64.b64encode(body).decode("ascii") for number, body in results.items()}


def read_results(data: dict[str, str]) -> dict[str, bytes]:
    return {number: base64.b64decode(body, validate=True) for number, body in data.items()}


def canonical(document: etree._Element) -> bytes:
    """The exclusive C14N the digest is taken of, and what is stored."""
    return etree.tostring(document, method="c14n", exclusive=True)
