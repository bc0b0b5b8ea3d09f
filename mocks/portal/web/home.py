"""The home page of the signed-in person: the services they may apply for, and their cabinets.

Who they are was chosen on the login page (:mod:`mocks.portal.web.login`)."""

from __future__ import annotations

from aiohttp import web

from mocks.portal.web import deposit, forms
from mocks.portal.web.forms import SERVICES
from mocks.portal.web.layout import Html, View, page, tag
from mocks.portal.web.session import PERSON
from mocks.portal.web.state import STATE, CastMember, full_name, view_for


def _services(view: View, member: CastMember) -> Html:
    cards = []
    for spec in SERVICES:
        audience = view.t("for_organisations" if spec.organisation else "for_individuals")
        content = [tag("h3", view.t(f"svc_{spec.id}")), tag("p", view.t(f"svcd_{spec.id}")),
                   tag("p", audience, class_="meta")]
        if not forms.may_apply(spec, member.person):  # said before anything is signed, not refused after
            cards.append(tag("div", *content, tag("p", view.t("org_only"), class_="hint"),
                             class_="card muted", data_testid=f"service-{spec.id}", data_unavailable=True))
        else:
            cards.append(tag("a", *content, tag("span", view.t("apply"), " →", class_="button"),
                             href=f"/apply/{spec.id}", class_="card",
                             data_testid=f"service-{spec.id}"))
    if deposit.may_deposit(member.person):
        cards.append(deposit.card(view))
    links: list[Html] = [tag("a", view.t("open_cabinet"), href=f"/cabinet/{member.person.iin}",
                             class_="button secondary", data_testid="open-cabinet")]
    if member.person.bin:
        links.append(tag("a", view.t("open_org_cabinet"), href=f"/cabinet/{member.person.bin}",
                         class_="button secondary", data_testid="open-org-cabinet"))
    links.append(tag("a", view.t("change_person"), href="/login", class_="button secondary",
                     data_testid="change-person"))
    return tag("section", tag("h2", view.t("step_service")),
               tag("p", view.t("you_are", name=full_name(member.person)), class_="lead"),
               tag("div", *cards, class_="grid"), tag("p", *links, style="margin-top:16px; display:flex; gap:10px"),
               id="services")


async def home(request: web.Request) -> web.Response:
    """``/``: the services for the signed-in person (the login middleware sent anyone else to /login)."""
    state, view = request.app[STATE], view_for(request)
    member = state.cast[request[PERSON].handle]
    return page(view, view.t("home_title"),
                tag("h1", view.t("home_title")), tag("p", view.t("home_intro"), class_="lead"),
                _services(view, member))
