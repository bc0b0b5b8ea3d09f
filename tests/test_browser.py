"""A tester's journeys through the mock egov portal, in a real browser (headless Debian chromium, Playwright).

One journey per service, one refusal, an invalid form, the language switch. Every test fails on a console error
or an uncaught page error (the ``page`` fixture collects them). Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import TimeoutError as PlaywrightTimeout

from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.portal.web import run_portal
from mocks.portal.web.i18n import t
from tests.helpers import ARTIFACTS, DESK, DESK_PASSWORD, PORTAL, PORTAL_PASSWORD, GatewayUnderTest, free_port

TIMEOUT_MS = 30_000


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def portal(system: GatewayUnderTest) -> AsyncIterator[str]:
    """The portal on a real socket, and the library commission's desk at work for the fund journey (for this
    module only: elsewhere tests play the desk themselves)."""
    port = free_port()
    runner = await run_portal(pki=system.pki, gateway_url=system.url, sender=PORTAL, password=PORTAL_PASSWORD,
                              port=port)
    desk = CommissionDesk(WorkerSettings(gateway_url=system.url, library_url=system.library_url, sender=DESK,
                                         password=DESK_PASSWORD, worker_name="browser-desk", poll_wait=2))
    stop = asyncio.Event()
    async with desk:
        working = asyncio.create_task(desk.run_forever(stop))
        yield f"http://127.0.0.1:{port}"
        stop.set()
        await asyncio.wait({working}, timeout=10)
    await runner.cleanup()


@pytest_asyncio.fixture
async def page(browser):  # type: ignore[no-untyped-def]
    context = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    tab = await context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(f"console.{message.type}: {message.text}")
           if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield tab
    seen = list(problems)  # before closing: a stream cut by the close is not the page's fault
    await context.close()
    assert not seen, f"the page logged errors: {seen}"


async def login(page, portal: str, handle: str, *, language: str = "en", then: str = "/") -> None:  # type: ignore[no-untyped-def]
    """Open ``then``; the portal asks who you are first; choose the person and arrive at ``then``."""
    await page.goto(f"{portal}{then}{'&' if '?' in then else '?'}lang={language}")
    assert "/login" in page.url, "every page but the login page needs a session"
    await page.get_by_test_id(f"person-{handle}").click()
    await page.wait_for_url(lambda url: "/login" not in url)


async def apply(page, portal: str, handle: str, service: str, *, language: str = "en", bad_case: str | None = None):  # type: ignore[no-untyped-def]
    """Home → sign in as the person → choose the service → submit the prefilled form."""
    await login(page, portal, handle, language=language)
    await page.get_by_test_id(f"service-{service}").click()
    await page.get_by_test_id("application-form").wait_for()
    consent = page.get_by_test_id("field-consent")
    if await consent.count():  # a person must give it explicitly: it is never pre-ticked
        await consent.check()
    if bad_case:
        await page.get_by_test_id(f"bad-case-{bad_case}").check()
    await page.get_by_test_id("submit").click()


async def expect_completed(page, name: str) -> None:  # type: ignore[no-untyped-def]
    badge = page.locator('[data-testid="status-badge"][data-status="completed"]').first
    try:
        await badge.wait_for()
    except PlaywrightTimeout:  # tell a missed live update (completed after a reload) from a stuck application
        await page.reload()
        status = await page.locator('[data-testid="status-badge"]').first.get_attribute("data-status")
        raise AssertionError(f"not completed within {TIMEOUT_MS} ms; after a reload: {status!r}") from None
    await page.get_by_test_id("result-signature-indication").wait_for()
    assert "TOTAL_PASSED" in await page.get_by_test_id("result-signature-indication").inner_text()
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_reader_ticket_journey(page, portal: str) -> None:
    await apply(page, portal, "aigerim", "kazneb.reader-ticket")
    await expect_completed(page, "reader-ticket-cabinet")
    assert await page.get_by_test_id("result-ticket-number").inner_text()
    timeline = await page.get_by_test_id("timeline-item").count()
    assert timeline >= 3
    await page.get_by_test_id("nav-cabinet").click()
    await page.get_by_test_id("application-row").first.wait_for()
    await page.screenshot(path=str(ARTIFACTS / "cabinet.png"), full_page=True)


async def test_fund_submission_journey(page, portal: str) -> None:
    await apply(page, portal, "kitap-head", "kazneb.fund-submission", language="kk")
    await expect_completed(page, "fund-submission-cabinet")
    assert await page.get_by_test_id("result-decision").get_attribute("data-decision") == "include"
    votes = await page.get_by_test_id("result-votes").inner_text()
    assert re.fullmatch(r"\d+ — жақтап, \d+ — қарсы \(\d+ мүше\)", votes), votes
    assert t("kk", "r_votes_label") in await page.get_by_test_id("result-fields").inner_text()
    # A label must not squeeze the values to a letter per line: every value keeps a readable width.
    narrowest = await page.eval_on_selector_all(
        '[data-testid="result-fields"] dd', "els => Math.min(...els.map(e => e.getBoundingClientRect().width))")
    assert narrowest > 200, narrowest
    height = await page.evaluate("document.documentElement.scrollHeight")
    assert height < 4000, f"the decision page is {height} px tall"
    steps = await page.locator('[data-testid="timeline-step"]').all_inner_texts()
    assert any(steps), "the commission's steps are shown by name"


async def test_an_invalid_form_explains_itself_without_errors(page, portal: str) -> None:
    await login(page, portal, "aigerim", language="ru", then="/apply/kazneb.reader-ticket")
    await page.get_by_test_id("application-form").wait_for()
    await page.get_by_test_id("field-email").fill("aigerim-at-example")
    await page.get_by_test_id("field-phone").fill("8 701 123 45 67")  # the local form is accepted as typed
    await page.get_by_test_id("submit").click()  # consent is not given either
    assert await page.get_by_test_id("error-email").inner_text() == t("ru", "v_email")
    assert await page.get_by_test_id("error-consent").inner_text() == t("ru", "v_consent")
    assert await page.get_by_test_id("error-phone").inner_text() == ""
    assert await page.evaluate("document.activeElement.name") == "email"  # the first invalid field, focused
    assert "/apply/" in page.url, "an invalid form is not sent"
    await page.get_by_test_id("field-email").fill("aigerim@example.kz")
    assert await page.get_by_test_id("error-email").inner_text() == ""
    await page.get_by_test_id("field-consent").check()
    await page.get_by_test_id("submit").click()
    await page.locator('[data-testid="status-badge"]').first.wait_for()
    assert "+77011234567" in await page.get_by_test_id("signed-xml").inner_text()


async def test_cultural_export_journey(page, portal: str) -> None:
    await apply(page, portal, "daniyar", "elicense.cultural-export")
    await expect_completed(page, "cultural-export-cabinet")
    assert await page.get_by_test_id("result-certificate-number").inner_text()
    assert await page.locator('[data-testid="timeline-step"]').count() >= 7


async def test_refusal_is_explained_in_the_chosen_language(page, portal: str) -> None:
    await apply(page, portal, "aigerim", "kazneb.reader-ticket", language="ru", bad_case="auth")
    await page.get_by_test_id("refusal").wait_for()
    assert "SIG_NOT_SIGNING_KEY" in await page.get_by_test_id("refusal-code").inner_text()
    message = await page.get_by_test_id("refusal-message").inner_text()
    assert "ключом аутентификации" in message
    await page.screenshot(path=str(ARTIFACTS / "refusal-ru.png"), full_page=True)


async def test_a_person_sees_only_their_own_cabinet(page, portal: str, system: GatewayUnderTest) -> None:
    aigerim, daniyar = system.pki.person("aigerim"), system.pki.person("daniyar")
    await apply(page, portal, "aigerim", "kazneb.reader-ticket")
    await expect_completed(page, "reader-ticket-own")
    await page.get_by_test_id("log-out").click()
    await login(page, portal, "daniyar", then=f"/cabinet/{daniyar.iin}")
    await page.get_by_test_id("cabinet-title").wait_for()
    assert await page.get_by_test_id("nav-person").count() == 1
    # Another person's cabinet, as its address typed in: not found (asked aside, so no 404 in the console).
    other = await page.request.get(f"{portal}/cabinet/{aigerim.iin}")
    assert other.status == 404
    stream = await page.request.get(f"{portal}/cabinet/{aigerim.iin}/events")
    assert stream.status == 404


async def test_language_switch(page, portal: str) -> None:
    await page.goto(f"{portal}/")
    texts = {}
    for language in ("kk", "ru", "en"):
        await page.get_by_test_id(f"lang-{language}").click()
        await page.wait_for_load_state()
        texts[language] = await page.locator("h1").first.inner_text()
        assert await page.evaluate("document.documentElement.lang") == language
    assert len(set(texts.values())) == 3, texts
    await page.goto(f"{portal}/?lang=kk")
    await page.screenshot(path=str(ARTIFACTS / "portal-home-kk.png"), full_page=True)
