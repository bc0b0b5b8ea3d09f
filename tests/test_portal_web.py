"""The mock portal's web site against the real gateway (server side; browser tests drive the same pages).

Pages are read with lxml.html and found by their ``data-testid`` attributes, as a browser test would.
"""

from __future__ import annotations

import asyncio
import re
import string
from typing import Any

import pytest
import pytest_asyncio
from lxml import etree, html

from gateway.cabinet.catalogue import SERVICES, STATUSES, STEPS
from gateway.errors import CATALOGUE as GATEWAY_ERRORS
from gateway.shell.app import MaskingAccessLogger
from mocks.portal.web import create_portal_app
from mocks.portal.web.i18n import CATALOGUE, LANGUAGES, t
from mocks.portal.web.state import STATE as STATE_KEY
from mocks.portal.web.state import full_name
from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from tests.helpers import (
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    by_testid,
    portal_login,
    post_form,
    text_of,
)

READER = "kazneb.reader-ticket"
FUND = "kazneb.fund-submission"
EXPORT = "elicense.cultural-export"


@pytest_asyncio.fixture
async def portal(gw: GatewayUnderTest, aiohttp_client: Any) -> Any:
    app = create_portal_app(pki=gw.pki, gateway_url=gw.url, sender=PORTAL, password=PORTAL_PASSWORD)
    # As run_portal does: cabinet paths carry an IIN, so the access log masks them.
    return await aiohttp_client(app, server_kwargs={"access_log_class": MaskingAccessLogger})


def one(doc: Any, value: str) -> Any:
    found = by_testid(doc, value)
    assert len(found) == 1, f"expected one data-testid={value!r}, found {len(found)}"
    return found[0]


def pki_person(portal: Any, handle: str) -> Any:
    from mocks.portal.web.state import STATE

    return portal.server.app[STATE].pki.person(handle)


async def page(response: Any) -> Any:
    return html.fromstring(await response.text())


def test_catalogue_is_complete_in_three_languages() -> None:
    formatter = string.Formatter()
    for key, texts in CATALOGUE.items():
        assert len(texts) == len(LANGUAGES) and all(text.strip() for text in texts), key
        fields = [{name for _, name, _, _ in formatter.parse(text) if name} for text in texts]
        assert fields[0] == fields[1] == fields[2], f"{key}: placeholders differ {fields}"


async def test_login_lists_people_and_home_the_services_in_each_language(portal: Any, gw: GatewayUnderTest) -> None:
    for lang in LANGUAGES:
        response = await portal.get(f"/login?lang={lang}")
        assert response.status == 200
        doc = await page(response)
        assert doc.get("lang") == lang
        assert text_of(doc.xpath("//h1")[0]) == t(lang, "home_title")
        assert one(doc, f"lang-{lang}").get("aria-current") == "true"
        for handle in gw.pki.people:
            assert one(doc, f"person-{handle}").get("value") == handle
        assert {"aigerim", "daniyar", "saule"} <= {el.get("data-testid")[7:] for el in
                                                   one(doc, "group-citizens").xpath(".//*[@data-group]")}
        special = {el.get("data-testid")[7:] for el in one(doc, "group-special").xpath(".//*[@data-group]")}
        assert special == {"expired", "future", "stranger"}
        employees = text_of(one(doc, "group-employees"))
        assert gw.pki.organisations["kitap"]["name"] in employees and t(lang, "role_first_head") in employees
    await portal_login(portal, "aigerim")
    for lang in LANGUAGES:
        doc = await page(await portal.get(f"/?lang={lang}"))
        assert text_of(one(doc, "nav-person")) == t(lang, "you_are", name=full_name(pki_person(portal, "aigerim")))
        for service in (READER, FUND, EXPORT):
            card = one(doc, f"service-{service}")
            assert t(lang, f"svc_{service}") in text_of(card)
            if service == FUND:  # an organisation's service: not offered to a citizen, and it says why
                assert card.get("href") is None and t(lang, "org_only") in text_of(card)
            else:
                assert card.get("href") == f"/apply/{service}"
    # The language is remembered: the next page without ?lang= stays in English.
    again = await page(await portal.get("/"))
    assert again.get("lang") == "en"


async def test_reader_form_validates_in_the_chosen_language(portal: Any, gw: GatewayUnderTest) -> None:
    await portal_login(portal, "aigerim")
    form = await page(await portal.get(f"/apply/{READER}?lang=ru"))
    assert one(form, "field-email").get("value") == "aigerim@example.kz"
    assert one(form, "field-email").get("pattern") and one(form, "field-consent").get("required") is not None
    assert one(form, "submit") is not None
    calls = gw.library_calls
    response = await post_form(portal, READER, "aigerim", lang="ru", email="aigerim-at-example", consent=False)
    assert response.status == 422
    doc = await page(response)
    assert text_of(one(doc, "error-email")) == t("ru", "v_email")
    assert text_of(one(doc, "error-consent")) == t("ru", "v_consent")
    assert one(doc, "field-email").get("value") == "aigerim-at-example"  # what the person typed is kept
    assert text_of(one(doc, "form-errors")) == t("ru", "form_has_errors")
    assert gw.library_calls == calls
    listing = await (await portal.get(f"/cabinet/{gw.pki.person('aigerim').iin}")).text()
    assert 'data-testid="application-row"' not in listing


async def test_valid_submission_shows_what_was_signed_and_the_completed_application(
        portal: Any, gw: GatewayUnderTest) -> None:
    aigerim = gw.pki.person("aigerim")
    response = await post_form(portal, READER, "aigerim", lang="en")
    assert response.status == 200
    assert re.fullmatch(rf"/cabinet/{aigerim.iin}/[0-9a-f-]{{36}}", response.url.path)
    doc = await page(response)
    assert text_of(one(doc, "submitted")) == t("en", "submitted_now")
    assert text_of(one(doc, "signed-certificate")) == f"{aigerim.surname} {aigerim.name}"
    assert one(doc, "signed-key-type").get("data-key") == "sign"
    signed = text_of(one(doc, "signed-xml"))
    assert "ReaderRegistration" in signed and "SignatureValue" in signed and aigerim.iin in signed
    badge = one(doc, "status-badge")
    assert badge.get("data-status") == "completed" and text_of(badge) == STATUSES["completed"]["en"]
    assert [item.get("data-status") for item in by_testid(doc, "timeline-item")][-1] == "completed"
    assert one(doc, "result-signature").get("data-indication") == "TOTAL_PASSED"
    assert text_of(one(doc, "result-ticket-number"))
    assert one(doc, "applicant-signature").get("data-indication") == "TOTAL_PASSED"
    assert one(doc, "result-link").get("href") == f"{response.url.path}/result.xml"


async def test_auth_key_refusal_is_explained_in_russian(portal: Any, gw: GatewayUnderTest) -> None:
    response = await post_form(portal, READER, "aigerim", lang="ru", bad_case="auth")
    assert response.status == 200
    doc = await page(response)
    refusal = one(doc, "refusal")
    assert refusal.get("data-code") == "SIG_NOT_SIGNING_KEY"
    assert text_of(one(doc, "refusal-message")) == GATEWAY_ERRORS["SIG_NOT_SIGNING_KEY"].messages["ru"]
    assert text_of(one(doc, "refusal-sub-indication")) == (
        f"CHAIN_CONSTRAINTS_FAILURE — {t('ru', 'si_CHAIN_CONSTRAINTS_FAILURE')}")
    report = text_of(one(doc, "validation-report"))
    assert t("ru", "key_auth") in report and t("ru", "ind_INDETERMINATE") in report
    assert one(doc, "signed-key-type").get("data-key") == "auth"
    assert t("ru", "refused_title") in text_of(refusal)


async def test_tampered_and_someone_elses_documents_are_refused(portal: Any, gw: GatewayUnderTest) -> None:
    doc = await page(await post_form(portal, READER, "aigerim", lang="en", bad_case="tamper"))
    assert one(doc, "refusal").get("data-code") == "SIG_HASH_FAILURE"
    assert "someone.else@example.kz" in text_of(one(doc, "bad-case-note"))
    doc = await page(await post_form(portal, READER, "aigerim", lang="kk", bad_case="other", other_person="daniyar"))
    assert one(doc, "refusal").get("data-code") == "ID_IIN_MISMATCH"
    assert gw.pki.person("daniyar").iin in text_of(one(doc, "signed-xml"))


async def test_cabinet_lists_the_application_and_the_result_downloads_signed(portal: Any, gw: GatewayUnderTest) -> None:
    aigerim = gw.pki.person("aigerim")
    response = await post_form(portal, READER, "aigerim")
    message_id = response.url.path.rsplit("/", 1)[-1]
    doc = await page(await portal.get(f"/cabinet/{aigerim.iin}?lang=kk"))
    row = one(doc, "application-row")
    assert row.get("data-message-id") == message_id
    assert text_of(one(doc, "application-link")) == SERVICES[READER]["kk"]  # the gateway's serviceTitle
    badge = row.xpath('.//*[@data-testid="status-badge"]')[0]
    assert badge.get("data-status") == "completed" and text_of(badge) == STATUSES["completed"]["kk"]
    assert one(doc, "cabinet-title").text == t("kk", "nav_cabinet")

    download = await portal.get(f"/cabinet/{aigerim.iin}/{message_id}/result.xml")
    assert download.status == 200 and download.content_type == "application/xml"
    root = etree.fromstring(await download.read())
    assert etree.QName(root).localname == "ReaderTicket"
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(gw.pki.trust_anchors,
                                                                             gw.pki.intermediates))
    assert verifier.verify(root).report.passed
    receipt = await portal.get(f"/cabinet/{aigerim.iin}/{message_id}/receipt.xml")
    assert receipt.status == 200 and b"Receipt" in await receipt.read()


async def test_fund_submission_goes_to_the_organisations_cabinet(portal: Any, gw: GatewayUnderTest) -> None:
    head = gw.pki.person("kitap-head")
    response = await post_form(portal, FUND, "kitap-head", lang="en")
    assert response.status == 200
    assert response.url.path.startswith(f"/cabinet/{head.bin}/")
    doc = await page(response)
    assert one(doc, "status-badge").get("data-status") in ("accepted", "routed", "in_progress", "completed")
    assert "FundSubmission" in text_of(one(doc, "signed-xml"))
    # The employee's GOST 34.10-2015 key signs an organisation's application, as NCA's employees' keys do.
    assert "gostr34102015-gostr34112015-512" in text_of(one(doc, "signed-xml"))


async def test_export_certificate_arrives_and_its_provider_signature_is_checked(
        portal: Any, gw: GatewayUnderTest) -> None:
    response = await post_form(portal, EXPORT, "daniyar", lang="en")
    path = response.url.path
    doc = await page(response)
    for _ in range(100):
        if one(doc, "status-badge").get("data-status") == "completed":
            break
        await asyncio.sleep(0.2)
        doc = await page(await portal.get(path))
    assert one(doc, "result-outcome").get("data-outcome") == "issued"
    assert text_of(one(doc, "result-certificate-number"))
    assert one(doc, "result-signature").get("data-indication") == "TOTAL_PASSED"
    steps = [text_of(step) for step in by_testid(doc, "timeline-step") if step.get("data-step")]
    assert STEPS["registration"]["en"] in steps and STEPS["head-signed"]["en"] in steps


async def test_events_are_relayed_from_the_gateway(portal: Any, gw: GatewayUnderTest) -> None:
    aigerim = gw.pki.person("aigerim")
    await post_form(portal, READER, "aigerim")  # the gateway streams an owner only to a sender with applications
    stream = await portal.get(f"/cabinet/{aigerim.iin}/events")
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    await post_form(portal, READER, "aigerim")
    seen: list[str] = []

    async def until_application() -> None:
        async for raw in stream.content:
            seen.append(raw.decode())
            if raw.startswith(b"event: application"):
                return

    await asyncio.wait_for(until_application(), timeout=10)
    stream.close()
    assert seen[0].startswith("retry:")


@pytest.mark.parametrize("path", ["/apply/no.such.service", "/cabinet/12345"])
async def test_unknown_things_are_404_pages(portal: Any, path: str) -> None:
    await portal_login(portal, "aigerim")
    response = await portal.get(path)
    assert response.status == 404 and "<html" in await response.text()
    nobody = await portal.post("/login", data={"as": "nobody"}, allow_redirects=False)
    assert nobody.status == 404 and "portal_session" not in nobody.cookies


async def test_every_page_but_the_login_needs_a_session(portal: Any, gw: GatewayUnderTest) -> None:
    aigerim = gw.pki.person("aigerim")
    for path in ("/", f"/apply/{READER}", f"/cabinet/{aigerim.iin}", f"/cabinet/{aigerim.iin}/some-id"):
        response = await portal.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")
    assert (await portal.get(f"/cabinet/{aigerim.iin}/events")).status == 401
    assert (await portal.post(f"/apply/{READER}", data={})).status == 401
    assert (await portal.get("/static/portal.css")).status == 200
    response = await portal.post("/login", data={"as": "aigerim", "next": f"/cabinet/{aigerim.iin}"},
                                 allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/cabinet/{aigerim.iin}")
    elsewhere = await portal.post("/login", data={"as": "aigerim", "next": "//evil.example/"}, allow_redirects=False)
    assert elsewhere.headers["Location"] == "/", "never on to another site"
    await portal.post("/logout", allow_redirects=False)
    assert (await portal.get("/", allow_redirects=False)).status == 303, "signed out"


async def test_a_session_cookie_cannot_be_edited_into_someone_else(portal: Any, gw: GatewayUnderTest) -> None:
    from mocks.portal.web.session import SESSION_COOKIE, holder, issue

    key = portal.server.app[STATE_KEY].session_key
    value = issue(key, "aigerim")
    assert holder(key, value) == "aigerim"
    _, expires, mac = value.rsplit(".", 2)
    for forged in (f"daniyar.{expires}.{mac}", f"aigerim.{int(expires) + 9999}.{mac}", "daniyar", "",
                   issue(b"another key", "daniyar"), issue(key, "aigerim", now=0)):
        assert holder(key, forged) is None, forged
    portal.session.cookie_jar.update_cookies({SESSION_COOKIE: f"daniyar.{expires}.{mac}"})
    assert (await portal.get("/", allow_redirects=False)).status == 303


async def test_a_person_sees_only_their_own_cabinet_and_their_organisations(portal: Any, gw: GatewayUnderTest) -> None:
    aigerim, head, daniyar = gw.pki.person("aigerim"), gw.pki.person("kitap-head"), gw.pki.person("daniyar")
    mine = await post_form(portal, READER, "aigerim")
    message_id = mine.url.path.rsplit("/", 1)[-1]
    await post_form(portal, FUND, "kitap-head")  # signed in as the head now
    assert (await portal.get(f"/cabinet/{head.bin}")).status == 200, "an employee sees the organisation's"
    assert (await portal.get(f"/cabinet/{head.iin}")).status == 200
    for path in (f"/cabinet/{aigerim.iin}", f"/cabinet/{aigerim.iin}/{message_id}",
                 f"/cabinet/{aigerim.iin}/{message_id}/result.xml", f"/cabinet/{aigerim.iin}/events"):
        response = await portal.get(path)
        assert response.status == 404, path
    await portal_login(portal, "daniyar")
    assert (await portal.get(f"/cabinet/{head.bin}")).status == 404, "not daniyar's organisation"
    doc = await page(await portal.get(f"/cabinet/{daniyar.iin}"))
    assert not by_testid(doc, "application-row")
