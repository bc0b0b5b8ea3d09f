"""The home page: choose who you are (the test PKI's people, grouped) and then a service."""

from __future__ import annotations

from aiohttp import web

from mocks.pki import Person
from mocks.portal.web import forms
from mocks.portal.web.forms import SERVICES
from mocks.portal.web.i18n import has
from mocks.portal.web.layout import Html, View, day_text, join, page, tag
from mocks.portal.web.state import PERSON_COOKIE, STATE, CastMember, full_name, view_for


def _roles(view: View, member: CastMember) -> str:
    shown = [role for role in member.person.roles if role not in ("organisation", "individual")]
    return ", ".join(view.t(f"role_{role}") for role in shown) or view.t("role_organisation")


def _test_note(view: View, person: Person) -> str | None:
    """What the person is for, from the catalogue; the PKI's own (English) description only on English pages."""
    key = f"note_{person.handle}"
    if has(key):
        return view.t(key)
    return person.description if view.lang == "en" else None


def _person_card(view: View, member: CastMember, chosen: bool) -> Html:
    person = member.person
    lines: list[Html] = []
    if member.special == "expired":
        lines.append(tag("div", view.t("special_expired", date=day_text(member.not_after)), class_="meta"))
    elif member.special == "future":
        lines.append(tag("div", view.t("special_future", date=day_text(member.not_before)),
                         class_="meta"))
    elif member.special == "stranger":
        lines.append(tag("div", view.t("special_stranger"), class_="meta"))
    if person.kind == "employee":
        lines.append(tag("div", view.t("person_role", roles=_roles(view, member)), class_="meta"))
    else:
        lines.append(tag("div", view.t("person_citizen", birth=person.birth_date.strftime("%d.%m.%Y")),
                         class_="meta"))
    lines.append(tag("div", f"{view.t('iin')} {person.iin}", class_="meta"))
    note = _test_note(view, person)
    return tag("a", tag("h3", full_name(person)), *lines,
               tag("div", f"{view.t('test_note')}: {note}", class_="note") if note else "",
               tag("div", tag("span", view.t("chosen"), class_="badge completed") if chosen else
                   tag("span", view.t("choose"), class_="badge"), style="margin-top:8px"),
               href=f"/?as={person.handle}#services", class_="card selected" if chosen else "card",
               data_testid=f"person-{person.handle}", data_group=member.group,
               aria_current="true" if chosen else None)


def _people(view: View, cast: dict[str, CastMember], organisations: dict[str, dict], chosen: str | None) -> Html:
    def grid(members: list[CastMember]) -> Html:
        return tag("div", *[_person_card(view, m, m.person.handle == chosen) for m in members], class_="grid")

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


def _services(view: View, member: CastMember | None) -> Html:
    cards = []
    for spec in SERVICES:
        audience = view.t("for_organisations" if spec.organisation else "for_individuals")
        content = [tag("h3", view.t(f"svc_{spec.id}")), tag("p", view.t(f"svcd_{spec.id}")),
                   tag("p", audience, class_="meta")]
        if member is None:
            cards.append(tag("div", *content, tag("p", view.t("choose_person_first"), class_="hint"),
                             class_="card muted", data_testid=f"service-{spec.id}"))
        elif not forms.may_apply(spec, member.person):  # said before anything is signed, not refused after
            cards.append(tag("div", *content, tag("p", view.t("org_only"), class_="hint"),
                             class_="card muted", data_testid=f"service-{spec.id}", data_unavailable=True))
        else:
            cards.append(tag("a", *content, tag("span", view.t("apply"), " →", class_="button"),
                             href=f"/apply/{spec.id}?as={member.person.handle}", class_="card",
                             data_testid=f"service-{spec.id}"))
    links: list[Html] = []
    if member is not None:
        links.append(tag("a", view.t("open_cabinet"), href=f"/cabinet/{member.person.iin}",
                         class_="button secondary", data_testid="open-cabinet"))
        if member.person.bin:
            links.append(tag("a", view.t("open_org_cabinet"), href=f"/cabinet/{member.person.bin}",
                             class_="button secondary", data_testid="open-org-cabinet"))
    return tag("section", tag("h2", view.t("step_service")),
               tag("p", view.t("you_are", name=full_name(member.person)), class_="lead") if member else "",
               tag("div", *cards, class_="grid"), tag("p", *links, style="margin-top:16px; display:flex; gap:10px"),
               id="services")


async def home(request: web.Request) -> web.Response:
    """``/``: people grouped (citizens, employees by organisation, special cases) and the services."""
    state = request.app[STATE]
    view = view_for(request)
    handle = request.query.get("as") or request.cookies.get(PERSON_COOKIE)
    member = state.cast.get(handle or "")
    response = page(view, view.t("home_title"),
                    tag("h1", view.t("home_title")), tag("p", view.t("home_intro"), class_="lead"),
                    tag("h2", view.t("step_person")),
                    _people(view, state.cast, state.pki.organisations, member.person.handle if member else None),
                    _services(view, member))
    if member is not None and request.query.get("as"):
        response.set_cookie(PERSON_COOKIE, member.person.handle, httponly=True, samesite="Lax")
    return response
