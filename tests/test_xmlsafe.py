"""parse_untrusted (no DTD, no entities, no network, bounded) and detach (SOAP-embedded documents)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

import pytest
from lxml import etree

from mocks.pki import TestPki
from mocks.portal.applicant import reader_registration, signer_for
from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from signing.xmlsafe import UnsafeXmlError, XmlLimits, detach, local_name, parse_untrusted
from tests.helpers import SOAP_ENV

LOL = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
       + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                  for i in range(1, 10))
       + b"]><lolz>&lol9;</lolz>")


DEFAULT_LIMITS = XmlLimits()


def refused(data: bytes, reason: str, limits: XmlLimits = DEFAULT_LIMITS) -> UnsafeXmlError:
    with pytest.raises(UnsafeXmlError) as caught:
        parse_untrusted(data, limits)
    assert caught.value.reason == reason, caught.value.detail
    assert caught.value.detail and str(caught.value) == caught.value.detail
    return caught.value


# ------------------------------------------------------------------------------------------ DTD attacks

@pytest.mark.parametrize("data", [
    pytest.param(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', id="xxe"),
    pytest.param(b'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><r>&x;</r>', id="xxe-network"),
    pytest.param(b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><r/>',
                 id="parameter-entity"),
    pytest.param(b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>', id="external-dtd"),
    pytest.param(b'<!DOCTYPE r PUBLIC "-//EVIL//DTD//EN" "file:///etc/passwd"><r/>', id="external-dtd-public"),
    pytest.param(b'<!DOCTYPE r><r/>', id="bare-doctype"),
    pytest.param(b'<!DOCTYPE\n r [ ]><r/>', id="doctype-newline"),
    pytest.param(LOL, id="billion-laughs"),
    pytest.param(b'<!DOCTYPE r [<!ENTITY a "' + b"A" * 50_000 + b'">]><r>' + b"&a;" * 5_000 + b"</r>",
                 id="quadratic-blowup"),
    pytest.param(b'<r><!ENTITY x "y"></r>', id="entity-declaration-without-doctype"),
])
def test_dtd_and_entities_forbidden(data: bytes) -> None:
    refused(data, "forbidden")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("document", [
    '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
    '<!DOCTYPE r SYSTEM "file:///etc/passwd"><r>&e;</r>',
    LOL.decode().replace('<?xml version="1.0"?>', ""),
])
def test_dtd_forbidden_in_other_encodings(document: str, encoding: str) -> None:
    """The ASCII byte pre-check cannot see these: the parse itself must still refuse them, as 'forbidden'."""
    data = document.encode(encoding)
    if encoding == "utf-16-be":
        data = '<?xml version="1.0" encoding="UTF-16BE"?>'.encode(encoding) + data
    assert b"<!DOCTYPE" not in data
    refused(data, "forbidden")


def test_dtd_forbidden_in_utf7() -> None:
    data = (b'<?xml version="1.0" encoding="UTF-7"?>'
            b"+ADw-!DOCTYPE r SYSTEM +ACI-http://127.0.0.1:9/evil.dtd+ACI-+AD4-+ADw-r/+AD4-")
    refused(data, "forbidden")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_external_dtd_is_never_opened(tmp_path: Path) -> None:
    """A DOCTYPE the byte check misses (UTF-16) must not make libxml2 open the SYSTEM file: a FIFO would
    block the parser (and the event loop) forever."""
    fifo = tmp_path / "evil.dtd"
    os.mkfifo(fifo)
    data = f'<!DOCTYPE r SYSTEM "file://{fifo}"><r>&e;</r>'.encode("utf-16")
    outcome: list[object] = []

    def parse() -> None:
        try:
            parse_untrusted(data)
            outcome.append("parsed")
        except UnsafeXmlError as exc:
            outcome.append(exc.reason)

    thread = threading.Thread(target=parse, daemon=True)
    thread.start()
    thread.join(5)
    hung = thread.is_alive()
    if hung:  # release the parser: opening the write end unblocks its open(), closing gives it EOF
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert not hung, "the parser opened the external DTD named by the document"
    assert outcome == ["forbidden"]


# ------------------------------------------------------------------------------------------------ limits

def test_depth_limit() -> None:
    limits = XmlLimits()
    ok = b"<a>" * limits.max_depth + b"</a>" * limits.max_depth
    assert local_name(parse_untrusted(ok)) == "a"
    deep = b"<a>" * (limits.max_depth + 1) + b"</a>" * (limits.max_depth + 1)
    refused(deep, "forbidden")


def test_very_deep_nesting_is_refused() -> None:
    with pytest.raises(UnsafeXmlError) as caught:
        parse_untrusted(b"<a>" * 5000 + b"</a>" * 5000)
    assert caught.value.reason in {"forbidden", "malformed"}


def test_depth_limit_is_configurable() -> None:
    refused(b"<a><b><c/></b></a>", "forbidden", XmlLimits(max_depth=2))


def test_element_count_limit() -> None:
    limits = XmlLimits()
    ok = b"<r>" + b"<a/>" * (limits.max_elements - 1) + b"</r>"
    assert len(parse_untrusted(ok)) == limits.max_elements - 1
    refused(b"<r>" + b"<a/>" * limits.max_elements + b"</r>", "forbidden")


def test_size_limit() -> None:
    limits = XmlLimits(max_bytes=1000)
    body = b"<r>" + b"x" * (1000 - 7) + b"</r>"
    assert len(body) == 1000 and parse_untrusted(body, limits).text
    refused(body[:-4] + b"x</r>", "too_large", limits)
    refused(b"<r>" + b"x" * XmlLimits().max_bytes + b"</r>", "too_large")


def test_size_checked_before_parsing() -> None:
    # too large *and* forbidden: refused for size without being looked at
    refused(b'<!DOCTYPE r [<!ENTITY a "b">]><r>' + b" " * 2000 + b"</r>", "too_large", XmlLimits(max_bytes=1000))


@pytest.mark.parametrize("data", [b"<a><b></a>", b"", b"hello", b"<a>", b"<a/><b/>", b"<r>&undefined;</r>",
                                  b"<r>\xff\xfe</r>"])
def test_malformed(data: bytes) -> None:
    refused(data, "malformed")


def test_ordinary_document_parses() -> None:
    root = parse_untrusted(b'<?xml version="1.0" encoding="UTF-8"?><r xmlns="urn:r"><!-- c --><a>\xd0\x96</a></r>')
    assert root.tag == "{urn:r}r" and root.findtext("{urn:r}a") == "Ж"


# ------------------------------------------------------------------------------------------------ detach

STANDALONE = (b'<app:Application xmlns:app="urn:app" xmlns:x="urn:x" xmlns:own-unused="urn:own">'
              b'<app:iin>880314405125</app:iin><x:note x:lang="kk">\xd0\x96</x:note>'
              b'<plain xmlns="">text</plain></app:Application>')


def _envelope(document: bytes) -> bytes:
    return (b'<soap:Envelope xmlns:soap="' + SOAP_ENV.encode() + b'" xmlns:shep="urn:shep" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:unused="urn:unused" xmlns="urn:default">'
            b"<soap:Body><shep:SendMessage><request><requestData><data>" + document
            + b"</data></requestData></request></shep:SendMessage></soap:Body></soap:Envelope>")


def _inclusive_digest(element: etree._Element) -> str:
    return hashlib.sha256(etree.tostring(element, method="c14n", exclusive=False)).hexdigest()


def test_detach_drops_envelope_namespaces_and_keeps_the_digest() -> None:
    envelope = parse_untrusted(_envelope(STANDALONE))
    embedded = envelope.find(".//{urn:app}Application")
    # in place, inclusive C14N drags the envelope's declarations in: a different digest
    in_place = etree.tostring(embedded, method="c14n")
    assert b"urn:unused" in in_place and b"urn:shep" in in_place
    detached = detach(embedded)
    assert detached.getparent() is None and detached.getroottree().getroot() is detached
    for prefix in ("soap", "shep", "xsi", "unused"):
        assert prefix not in detached.nsmap
    assert detached.nsmap.get(None) != "urn:default"
    assert detached.nsmap["own-unused"] == "urn:own"  # its own declarations stay, used or not
    assert _inclusive_digest(detached) == _inclusive_digest(parse_untrusted(STANDALONE))
    assert embedded.getparent() is not None  # the envelope is left as it was


def test_detached_signed_application_verifies(pki: TestPki) -> None:
    """The real use: the portal embeds a signed application in SOAP; the detached copy still verifies."""
    person = pki.person("saule")
    signed = etree.tostring(signer_for(person).sign(reader_registration(person)))
    detached = detach(parse_untrusted(_envelope(signed)).find(".//{urn:egov:kazneb:reader-registration:v1}*"))
    assert _inclusive_digest(detached) == _inclusive_digest(parse_untrusted(signed))
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    assert DocumentVerifier(VerificationPolicy(), trust).verify(detached).report.passed
