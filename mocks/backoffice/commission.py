"""The KazNEB standing commission's rules as the back-office desk applies them (rules §4, §6, §9).

Pure functions, no I/O: read the objects of a fund submission, let the automatic commission vote,
or turn a person's decision into a vote the library accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from mocks.library.forms import FUND_SUBMISSION_NS, safe_xml_parser

COMMISSION_MEMBERS = 5
"The automatic commission: the smallest the rules allow (§6: odd, at least five)."
MAX_NOTE = 500
"The gateway keeps at most this many characters of a progress note or a failure reason."


@dataclass(frozen=True)
class FundObjectInfo:
    """What the commission looks at in one submitted object."""

    title: str
    category: str
    access_level: str


@dataclass(frozen=True)
class CommissionVote:
    """The commission's decision, as the library's decision route takes it."""

    decision: str
    "``include`` or ``not-include``."
    members: int
    votes_for: int
    votes_against: int
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        """The body of ``POST {library}/api/v1/fund/submissions/{number}/decision``."""
        body: dict[str, Any] = {"decision": self.decision, "members": self.members, "votesFor": self.votes_for,
                                "votesAgainst": self.votes_against}
        if self.reason:
            body["reason"] = self.reason
        return body

    def note(self, who: str = "the standing commission") -> str:
        """The progress note for the applicant's history."""
        verdict = "include in the KazNEB fund" if self.decision == "include" else "not include"
        text = f"{who} ({self.members} members) voted {self.votes_for} for, {self.votes_against} against: {verdict}"
        return (text + (f". {self.reason}" if self.reason else ""))[:MAX_NOTE]


def read_objects(document: str) -> tuple[FundObjectInfo, ...]:
    """The objects of a FundSubmission (text token-normalised); ValueError if it is not one."""
    try:
        root = etree.fromstring(document.encode("utf-8"), safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"the job's document is not well-formed XML: {exc}") from None
    ns = FUND_SUBMISSION_NS
    if root.tag != f"{{{ns}}}FundSubmission":
        raise ValueError(f"the job's document is not a FundSubmission: {etree.QName(root).localname}")

    def text(element: etree._Element, name: str) -> str:
        return " ".join((element.findtext(f"{{{ns}}}{name}") or "").split())

    return tuple(FundObjectInfo(text(e, "title"), text(e, "category"), text(e, "accessLevel"))
                 for e in root.iterfind(f"{{{ns}}}objects/{{{ns}}}object"))


def _quote(titles: list[str]) -> str:
    """«A», «B» and «C»; at most three titles of at most 80 characters, then "and N more"."""
    shown = [f"«{title if len(title) <= 80 else title[:79] + '…'}»" for title in titles[:3]]
    if len(titles) > 3:
        return ", ".join(shown) + f" and {len(titles) - 3} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def auto_vote(objects: tuple[FundObjectInfo, ...], members: int = COMMISSION_MEMBERS) -> CommissionVote:
    """The automatic commission: all for inclusion, unless a protected work would be open for full download.

    An electronic copy of a copyright-protected work (§4 8)) enters the fund only under an agreement
    that keeps the author's rights (§4); no such agreement lets every reader download the whole work,
    so then all members but one vote against.
    """
    protected = [o.title for o in objects
                 if o.category == "copyright-protected-copy" and o.access_level == "open-full-download"]
    if not protected:
        return CommissionVote("include", members, members, 0, None)
    plural = len(protected) > 1
    reason = (
        f"{_quote(protected)} {'are electronic copies' if plural else 'is an electronic copy'} of "
        f"{'works' if plural else 'a work'} protected by copyright (rules §4 8)), offered with the access "
        "level open-full-download. Fund objects enter KazNEB only under agreements that keep the author's "
        "rights intact (rules §4), and an author's agreement for a protected work cannot allow every reader "
        "to download the complete work without restriction. The commission will consider the application "
        "again if it is resubmitted with the access level open-read-only or first-24-pages."
    )
    return CommissionVote("not-include", members, 1, members - 1, reason)


def manual_vote(decision: str, reason: str | None, members: int = COMMISSION_MEMBERS,
                votes_for: int | None = None) -> CommissionVote:
    """A person's decision as a vote (unanimous unless ``votes_for`` says otherwise).

    ValueError when it breaks rules §6 (odd, at least five members) or §9 (the majority decides),
    or refuses without a reason.
    """
    reason = " ".join(reason.split()) if reason else None
    if decision not in ("include", "not-include"):
        raise ValueError("the decision is include or not-include")
    if members < COMMISSION_MEMBERS or members % 2 == 0:
        raise ValueError(f"the commission has an odd number of members, at least {COMMISSION_MEMBERS} (rules §6)")
    votes_for = (members if decision == "include" else 0) if votes_for is None else votes_for
    if not 0 <= votes_for <= members:
        raise ValueError(f"votes for must be 0..{members}")
    if (decision == "include") != (votes_for > members - votes_for):
        raise ValueError(f"{votes_for} of {members} votes for is not a majority to {decision}")
    if decision == "not-include" and not reason:
        raise ValueError("a decision not to include needs a reason")
    return CommissionVote(decision, members, votes_for, members - votes_for, reason)
