"""Small HTML helpers and the page shell (header with emblem and language switch, banner, footer).

Everything that reaches the page goes through :func:`esc` or :func:`tag`, which escape text and
attribute values; :class:`Html` marks strings that are already markup so they are not escaped twice.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web
from lxml import etree

from mocks.portal.web.assets import EMBLEM_SVG
from mocks.portal.web.i18n import LANGUAGE_LABELS, LANGUAGES, t

ASTANA = timezone(timedelta(hours=5), "Astana")
"Kazakhstan has one time zone, UTC+5, since 2024."
BRAND = "egov.kz"
"The brand (a domain name, the same in every language; the tagline says it is a test bench)."


class Html(str):
    """A string that is already safe markup."""

    __slots__ = ()


def esc(value: object) -> Html:
    """Escape text (or pass markup through); None is empty."""
    if value is None:
        return Html("")
    if isinstance(value, Html):
        return value
    if isinstance(value, list | tuple):
        return Html("".join(esc(item) for item in value))
    return Html(html.escape(str(value), quote=True))


def attrs(**values: object) -> str:
    """HTML attributes: ``class_`` is ``class``, ``data_testid`` is ``data-testid``; None/False omitted."""
    parts = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")
        parts.append(f" {key}" if value is True else f' {key}="{html.escape(str(value), quote=True)}"')
    return "".join(parts)


_VOID = frozenset({"input", "br", "meta", "link", "img", "hr"})


def tag(name: str, /, *content: object, **attributes: object) -> Html:
    """``<name attributes>content</name>``, content escaped unless it is :class:`Html`."""
    opening = f"<{name}{attrs(**attributes)}>"
    if name in _VOID:
        return Html(opening)
    return Html(f"{opening}{''.join(esc(part) for part in content)}</{name}>")


def join(*parts: object) -> Html:
    """Concatenate markup and text (text escaped)."""
    return Html("".join(esc(part) for part in parts))


def when(value: str | datetime | None, *, date_only: bool = False) -> Html:
    """A ``<time>`` in Astana time (``14.03.2026 10:15``); empty for None, the raw text if unparsable."""
    if not value:
        return Html("—")
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return esc(value)
    if moment.tzinfo is None:
        shown = moment.strftime("%d.%m.%Y") if date_only else moment.strftime("%d.%m.%Y %H:%M")
    else:
        local = moment.astimezone(ASTANA)
        shown = local.strftime("%d.%m.%Y") if date_only else local.strftime("%d.%m.%Y %H:%M")
    return tag("time", shown, datetime=moment.isoformat())


def day_text(value: datetime) -> str:
    """A day as text (``14.03.2026``), in Astana time for aware datetimes."""
    return (value.astimezone(ASTANA) if value.tzinfo else value).strftime("%d.%m.%Y")


def badge(status: str, text: object, *, testid: str = "status-badge") -> Html:
    """A coloured status badge (colour by the status code, text localized)."""
    return tag("span", text, class_=f"badge {status}", data_testid=testid, data_status=status)


def facts(rows: list[tuple[str, object]], **attributes: object) -> Html:
    """A definition list of label/value pairs; rows whose value is None or empty are left out."""
    items = [join(tag("dt", label), tag("dd", value)) for label, value in rows if value not in (None, "", [])]
    return tag("dl", Html("".join(items)), class_="facts", **attributes)


def pretty_xml(text: str | bytes | etree._Element) -> str:
    """The XML indented for reading (a display copy: never the bytes that were signed or sent)."""
    try:
        if isinstance(text, etree._Element):
            text = etree.tostring(text)
        raw = text.encode() if isinstance(text, str) else text
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
        root = etree.fromstring(raw, parser)
        return etree.tostring(root, pretty_print=True, encoding="unicode")
    except (etree.XMLSyntaxError, ValueError):
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def xml_block(text: str | bytes | etree._Element, *, testid: str, open_: bool = False, summary: str = "") -> Html:
    """Pretty-printed XML in a collapsible block."""
    body = tag("pre", pretty_xml(text), class_="xml", data_testid=testid)
    return tag("details", tag("summary", summary), body, open=open_) if summary else body


@dataclass(frozen=True)
class View:
    """What every page needs to know about the request: language and the current address."""

    lang: str
    url: web.URL
    person_name: str | None = None
    cabinet: str | None = None

    def t(self, key: str, **values: object) -> str:
        """Shortcut for :func:`mocks.portal.web.i18n.t` in this view's language."""
        return t(self.lang, key, **values)

    def lang_url(self, lang: str) -> str:
        """The current address in another language."""
        return str(self.url.update_query(lang=lang))


def _header(view: View) -> Html:
    switch = tag("div", *[
        tag("a", LANGUAGE_LABELS[code], href=view.lang_url(code), hreflang=code, lang=code,
            class_="on" if code == view.lang else None, data_testid=f"lang-{code}",
            aria_current="true" if code == view.lang else None)
        for code in LANGUAGES
    ], class_="langs", role="group", aria_label=view.t("language"))
    links = [tag("a", view.t("nav_home"), href="/", data_testid="nav-home")]
    if view.cabinet:
        links.append(tag("a", view.t("nav_cabinet"), href=f"/cabinet/{view.cabinet}", data_testid="nav-cabinet"))
    if view.person_name:
        links.append(tag("span", view.t("you_are", name=view.person_name), class_="meta", data_testid="nav-person",
                         style="color:#dbe8f7"))
        links.append(tag("form", tag("button", view.t("log_out"), type="submit", class_="link",
                                     data_testid="log-out"), method="post", action="/logout", class_="inline"))
    brand = tag("a", Html(EMBLEM_SVG), tag("span", tag("strong", BRAND), tag("small", view.t("site_tagline"))),
                href="/", class_="brand", data_testid="brand")
    return tag("header", tag("div", brand, tag("nav", *links, switch, class_="main"), class_="bar"), class_="site")


def page(view: View, title: str, *body: object, status: int = 200) -> web.Response:
    """A whole page in the portal's frame."""
    document = join(
        Html("<!doctype html>"),
        tag("html", join(
            tag("head", join(
                tag("meta", charset="utf-8"),
                tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
                tag("title", f"{title} — {BRAND}"),
                tag("link", rel="stylesheet", href="/static/portal.css"),
                tag("link", rel="icon", href="/static/emblem.svg", type="image/svg+xml"),
            )),
            tag("body", join(
                _header(view),
                tag("div", tag("div", view.t("test_banner")), class_="banner"),
                tag("main", *body),
                tag("footer", view.t("footer"), " ", datetime.now(UTC).strftime("%Y"), class_="site"),
                tag("script", src="/static/portal.js", defer=True),
            )),
        ), lang=view.lang),
    )
    return web.Response(text=document, content_type="text/html", charset="utf-8", status=status,
                        headers={"Content-Language": view.lang, "Cache-Control": "no-store"})


def error_page(view: View, title: str, message: str, *, status: int, testid: str = "error") -> web.Response:
    """A page that explains one problem."""
    return page(view, title, tag("h1", title), tag("div", message, class_="alert error", data_testid=testid),
                tag("p", tag("a", view.t("nav_home"), href="/", class_="button secondary")), status=status)
