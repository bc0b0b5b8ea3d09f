"""The login step: choose who you are (the test PKI's people, grouped); the choice is kept in a signed session.

``GET /login?next=PATH`` the people; ``POST /login`` (``as``, ``next``) signs in and goes on to ``next``;
``POST /logout`` signs out. See :mod:`mocks.portal.web.session` for the cookie.
"""

from __future__ import annotations

from aiohttp import web

from mocks.pki import Person
from mocks.portal.web.i18n import has
from mocks.portal.web.layout import Html, View, day_text, error_page, join, page, tag
from mocks.portal.web.session import PERSON, safe_next, sign_in, sign_out
from mocks.portal.web.state import STATE, CastMember, full_name, view_for


def _roles(view: View, member: CastMember) -> str:
    shown = [role for role in member.person.roles if role not in ("organisation", "individual")]
    return ", ".join(view.t(f"role_{role}") for role in shown) or view.t("role_organisation")


def _test_note(view: View, person: Person) -> str | None:
    """What the person is for, from the catalogue; the PKI's own (English) description only on English pages."""
    key = f"note_{person.handle}"
    if has(key):
        return view.t(key)
    return person.description if view.lang == "en" else None


def _person_card(view: View, member: CastMember, chosen: bool, next_path: str) -> Html:
    person = member.person
    lines: list[Html] = []
    if member.special == "expired":
        lines.append(tag("span", view.t("special_expired", date=day_text(member.not_after)), class_="meta"))
    elif member.special == "future":
        lines.append(tag("span", view.t("special_future", date=day_text(member.not_before)), class_="meta"))
    elif member.special == "stranger":
        lines.append(tag("span", view.t("special_stranger"), class_="meta"))
    if person.kind == "employee":
        lines.append(tag("span", view.t("person_role", roles=_roles(view, member)), class_="meta"))
    else:
        lines.append(tag("span", view.t("person_citizen", birth=person.birth_date.strftime("%d.%m.%Y")),
                         class_="meta"))
    lines.append(tag("span", f"{view.t('iin')} {person.iin}", class_="meta"))
    note = _test_note(view, person)
    card = tag("button", tag("span", full_name(person), class_="name"), *lines,
               tag("span", f"{view.t('test_note')}: {note}", class_="note") if note else "",
               tag("span", tag("span", view.t("chosen"), class_="badge completed") if chosen else
                   tag("span", view.t("choose"), class_="badge"), class_="pick"),
               type="submit", name="as", value=person.handle, class_="card selected" if chosen else "card",
               data_testid=f"person-{person.handle}", data_group=member.group,
               aria_current="true" if chosen else None)
    return tag("form", tag("input", type="hidden", name="next", value=next_path), card,
               method="post", action="/login", class_="person")


def _people(view: View, cast: dict[str, CastMember], organisations: dict[str, dict], chosen: str | None,
            next_path: str) -> Html:
    def grid(members: list[CastMember]) -> Html:
        return tag("div", *[_person_card(view, m, m.person.handle == chosen, next_path) for m in members],
                   class_="grid")

    citizens = [m for m in cast.values() if m.group == "citizen"]
    special = [m for m in cast.values() if m.group == "special"]
    employees: list[Html] = []
    for handle, organisation in organisations.items():
        members = [m for m in cast.values() if m.group == "employee" and m.person.org == handle]
        if members:
            employees.append(join(tag("h4", organisation.get("name"), " ",
                                      tag("span", f"{view.t('bin')} {organisation.get('bin')}", class_="meta")),
                                  grid(members)))
    return join(
        tag("section", tag("h3", view.t("group_citizens")), grid(citizens), data_testid="group-citizens"),
        tag("section", tag("h3", view.t("group_employees")), *employees, data_testid="group-employees"),
        tag("section", tag("h3", view.t("group_special")), tag("p", view.t("group_special_hint"), class_="hint"),
            grid(special), data_testid="group-special"),
    )


async def login_page(request: web.Request) -> web.Response:
    """``GET /login``: the people grouped (citizens, employees by organisation, special cases)."""
    state, view = request.app[STATE], view_for(request)
    current = request.get(PERSON)
    next_path = safe_next(request.query.get("next"))
    return page(view, view.t("login_title"),
                tag("h1", view.t("home_title")), tag("p", view.t("login_intro"), class_="lead"),
                tag("h2", view.t("step_person")),
                _people(view, state.cast, state.pki.organisations, current.handle if current else None, next_path))


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: sign in as the chosen test person, then on to ``next``."""
    state = request.app[STATE]
    posted = await request.post()
    handle = str(posted.get("as") or "")
    if handle not in state.pki.people:
        view = view_for(request)
        return error_page(view, view.t("not_found_title"), view.t("unknown_person"), status=404)
    response = web.Response(status=303, headers={"Location": safe_next(str(posted.get("next") or "")),
                                                 "Cache-Control": "no-store"})
    sign_in(response, state.session_key, handle)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: forget the session."""
    response = web.Response(status=303, headers={"Location": "/login", "Cache-Control": "no-store"})
    sign_out(response)
    return response
