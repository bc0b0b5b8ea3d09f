"""The portal speaks one language at a time: every page rendered in Kazakh and Russian, scanned for Latin-script
words; one name per service on the card, the form and the cabinet; and the form rules a person meets before
signing (phone numbers as people write them, organisation services only for organisation certificates, the
"whose IIN/BIN" choices).

Allowed Latin text, and why: ``<code>`` and ``<pre>`` hold identifiers and XML (error codes, message ids,
digests, algorithm names, signed documents), e-mail addresses and the ``egov.kz`` domain are addresses, and
the language switch names each language in itself, and short upper-case
tokens are acronyms and codes a citizen meets as such (SIGN/AUTH key types, ETSI, SHA, XML, PDF).
Certificate subjects are shown as the certificate writes them, so the words of the test PKI's system and CA
names are allowed too.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lxml import html

from gateway.cabinet.catalogue import SERVICES
from gateway.shell.app import MaskingAccessLogger
from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.elicense.forms import sample_items
from mocks.portal.web import create_portal_app
from mocks.portal.web import forms as portal_forms
from mocks.portal.web.i18n import t
from mocks.portal.web.state import STATE
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    by_testid,
    portal_login,
    post_form,
    text_of,
    wait_for,
)

READER, FUND, EXPORT = "kazneb.reader-ticket", "kazneb.fund-submission", "elicense.cultural-export"
FINAL = ("completed", "refused", "failed", "stopped")
LATIN_WORD = re.compile(r"[A-Za-z]+")
ADDRESSES = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|https?://\S+|egov\.kz")
MAX_ACRONYM = 5


@pytest_asyncio.fixture
async def portal(gw: GatewayUnderTest, aiohttp_client: Any) -> Any:
    app = create_portal_app(pki=gw.pki, gateway_url=gw.url, sender=PORTAL, password=PORTAL_PASSWORD)
    return await aiohttp_client(app, server_kwargs={"access_log_class": MaskingAccessLogger})


@pytest_asyncio.fixture
async def desk(gw: GatewayUnderTest) -> AsyncIterator[None]:
    """The library commission's desk at work, so fund submissions get their decision."""
    worker = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                           password=DESK_PASSWORD, worker_name="language-desk", poll_wait=1))
    stop = asyncio.Event()
    async with worker:
        working = asyncio.create_task(worker.run_forever(stop))
        yield
        stop.set()
        await asyncio.wait({working}, timeout=10)


async def get_as(portal: Any, handle: str, path: str) -> Any:
    """``path`` as ``handle`` sees it (signed in first)."""
    await portal_login(portal, handle)
    return await portal.get(path)


async def doc_of(response: Any) -> Any:
    return html.fromstring(await response.text())


def allowed_subject_words(gw: GatewayUnderTest) -> set[str]:
    """The words of the test PKI's system (provider, gateway) and CA certificates' subjects."""
    certificates = [files.load_certificate() for files in gw.pki.systems.values()]
    certificates += [ca.load_certificate() for ca in gw.pki.authorities.values()]
    return {word for cert in certificates for word in LATIN_WORD.findall(cert.subject.rfc4514_string())}


def latin_words(doc: Any, allowed: set[str]) -> set[str]:
    """Latin-script words a reader sees on the page, outside identifiers, XML, addresses and acronyms."""
    visible = copy.deepcopy(doc)
    # The language switch names each language in itself; everything else must be in the page's language.
    for element in visible.xpath("//script | //style | //pre | //code | //head | //*[@class='langs']"):
        element.drop_tree()
    text = ADDRESSES.sub(" ", " ".join(visible.itertext()))
    return {word for word in LATIN_WORD.findall(text)
            if not (word.isupper() and len(word) <= MAX_ACRONYM) and word not in allowed}


async def settled(portal: Any, path: str, lang: str) -> Any:
    """The application page once the application is final (the gateway's history complete)."""
    async def final() -> Any:
        doc = await doc_of(await portal.get(f"{path}?lang={lang}"))
        badge = doc.xpath('//*[@data-testid="application-summary"]//*[@data-testid="status-badge"]')
        return [doc] if badge and badge[0].get("data-status") in FINAL else None

    return (await wait_for(final, seconds=30))[0]


@pytest.mark.parametrize("lang", ["kk", "ru"])
async def test_every_page_is_in_the_chosen_language(portal: Any, gw: GatewayUnderTest, desk: None,
                                                    lang: str) -> None:
    aigerim, head = gw.pki.person("aigerim"), gw.pki.person("kitap-head")
    pages: dict[str, Any] = {}
    pages["/login"] = await doc_of(await portal.get(f"/?lang={lang}"))  # not signed in: the login page
    for handle, path in (("aigerim", "/"), ("kitap-head", "/"), ("aigerim", f"/apply/{READER}"),
                         ("daniyar", f"/apply/{EXPORT}"), ("kitap-head", f"/apply/{FUND}"),
                         ("aigerim", f"/apply/{FUND}")):
        pages[f"{path} as {handle}"] = await doc_of(await get_as(portal, handle, f"{path}?lang={lang}"))
    pages["invalid form"] = await doc_of(await post_form(portal, READER, "aigerim", lang, email="x", consent=False,
                                                         phone="12"))
    pages["auth refusal"] = await doc_of(await post_form(portal, READER, "aigerim", lang, bad_case="auth"))
    pages["tamper refusal"] = await doc_of(await post_form(portal, EXPORT, "daniyar", lang, bad_case="tamper"))
    pages["expired refusal"] = await doc_of(await post_form(portal, READER, "expired", lang))
    treasure = [{key: str(item[key]) for key in portal_forms.ITEM_FIELDS} for item in sample_items("treasure")]
    for name, (service, handle, changes) in {
            "reader result": (READER, "aigerim", {}), "fund decision": (FUND, "kitap-head", {}),
            "export certificate": (EXPORT, "daniyar", {}),
            "export refusal": (EXPORT, "saule", {"items": treasure, "expert_opinion": True})}.items():
        response = await post_form(portal, service, handle, lang, **changes)
        assert response.status == 200, name
        pages[name] = await settled(portal, response.url.path, lang)
    votes = text_of(by_testid(pages["fund decision"], "result-votes")[0])
    assert "{" not in votes and re.search(r"\d", votes), votes
    assert by_testid(pages["export refusal"], "refusal-reason")
    for handle, owner in (("aigerim", aigerim.iin), ("kitap-head", head.bin), ("saule", gw.pki.person("saule").iin)):
        pages[f"cabinet {owner[:4]}…"] = await doc_of(await get_as(portal, handle, f"/cabinet/{owner}?lang={lang}"))
    allowed = allowed_subject_words(gw)
    leaks = {name: sorted(found) for name, doc in pages.items() if (found := latin_words(doc, allowed))}
    assert not leaks, f"Latin-script words on {lang} pages: {leaks}"


async def test_each_service_has_one_name_on_the_card_the_form_and_the_cabinet(portal: Any,
                                                                              gw: GatewayUnderTest) -> None:
    applicants = {READER: "aigerim", EXPORT: "aigerim", FUND: "kitap-head"}
    paths = {}
    for service, handle in applicants.items():
        response = await post_form(portal, service, handle, "en")
        assert response.status == 200, service
        paths[service] = response.url.path
    for lang in ("kk", "ru", "en"):
        for service, handle in applicants.items():
            expected = SERVICES[service][lang]
            home = await doc_of(await get_as(portal, handle, f"/?lang={lang}"))
            card = by_testid(home, f"service-{service}")[0]
            assert text_of(card.xpath(".//h3")[0]) == expected, (lang, service, "card")
            form = await doc_of(await portal.get(f"/apply/{service}?lang={lang}"))
            assert text_of(by_testid(form, "service-title")[0]) == expected, (lang, service, "form")
            _, _, owner, message_id = paths[service].split("/")
            listing = await doc_of(await portal.get(f"/cabinet/{owner}?lang={lang}"))
            row = listing.xpath(f'//*[@data-testid="application-row"][@data-message-id="{message_id}"]')
            assert text_of(row[0].xpath('.//*[@data-testid="application-link"]')[0]) == expected, (lang, service)
            item = await doc_of(await portal.get(f"{paths[service]}?lang={lang}"))
            assert text_of(by_testid(item, "application-title")[0]) == expected, (lang, service, "application")
    assert t("kk", "col_submitted") != t("kk", "r_issued_at")  # "submitted" is not the word for "issued"


@pytest.mark.parametrize(("typed", "expected"), [
    ("8 701 123 45 67", "+77011234567"), ("+7 (701) 123-45-67", "+77011234567"), ("87011234567", "+77011234567"),
    ("+77011234567", "+77011234567"), ("701 123 45 67", "+77011234567"), ("8 701 123 45", None),
    ("+1 701 123 45 67", None), ("phone", None)])
def test_phone_numbers_are_normalised_as_people_write_them(typed: str, expected: str | None) -> None:
    assert portal_forms.normalise_phone(typed) == expected
    browser_accepts = re.fullmatch(portal_forms.PHONE_PATTERN, typed) is not None
    assert browser_accepts or expected is None, "the input's pattern must let a good number through"


async def test_a_local_phone_number_is_signed_as_plus_seven(portal: Any, gw: GatewayUnderTest) -> None:
    response = await post_form(portal, READER, "aigerim", "kk", phone="8 701 123 45 67")
    assert response.status == 200
    signed = text_of(by_testid(await doc_of(response), "signed-xml")[0])
    assert "+77011234567" in signed and "8 701" not in signed
    refused = await post_form(portal, READER, "aigerim", "ru", phone="8 701 12")
    assert refused.status == 422
    assert text_of(by_testid(await doc_of(refused), "error-phone")[0]) == t("ru", "v_phone")


async def test_organisation_services_are_only_offered_to_organisation_certificates(
        portal: Any, gw: GatewayUnderTest) -> None:
    home = await doc_of(await get_as(portal, "daniyar", "/?lang=ru"))
    card = by_testid(home, f"service-{FUND}")[0]
    assert card.get("href") is None and t("ru", "org_only") in text_of(card)
    form = await portal.get(f"/apply/{FUND}?lang=ru")
    assert form.status == 403
    assert text_of(by_testid(await doc_of(form), "org-only")[0]) == t("ru", "org_only")
    posted = await post_form(portal, FUND, "daniyar", "ru")
    assert posted.status == 403  # refused before signing: nothing reaches the gateway
    assert not portal.server.app[STATE].submissions
    listing = await doc_of(await portal.get(f"/cabinet/{gw.pki.person('daniyar').iin}"))
    assert not by_testid(listing, "application-row")


async def test_whose_iin_or_bin_pairs_each_name_with_its_own_number(portal: Any, gw: GatewayUnderTest) -> None:
    head, museum = gw.pki.person("kitap-head"), gw.pki.person("murager-head")
    fund = await doc_of(await get_as(portal, "kitap-head", f"/apply/{FUND}?lang=kk"))
    labels = [text_of(o) for o in by_testid(fund, "field-other_person")[0].xpath(".//option") if o.get("value")]
    assert labels == [f"{museum.organisation} — {museum.bin}"]  # the other organisation, by its BIN
    reader = await doc_of(await portal.get(f"/apply/{READER}?lang=kk"))
    labels = [text_of(o) for o in by_testid(reader, "field-other_person")[0].xpath(".//option") if o.get("value")]
    daniyar = gw.pki.person("daniyar")
    assert f"{daniyar.surname} {daniyar.name} {daniyar.given_name} — {daniyar.iin}" in labels
    assert not any(head.bin in label for label in labels), "a person is listed with their IIN, not a BIN"
    wrong = await post_form(portal, FUND, "kitap-head", "kk", bad_case="other", other_person="daniyar")
    assert wrong.status == 422
    assert text_of(by_testid(await doc_of(wrong), "error-other_person")[0]) == t("kk", "v_other_person")
