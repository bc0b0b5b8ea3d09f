"""The operator's answer (``schemas/deposit/deposit-result.xsd``): the register entry, the repository, and the act
with the agreement or the reasoned refusal, with the regulated wording in kk/ru/en."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from lxml import etree

from mocks.deposit.forms import RESULT_NS, PackageInfo, add_package, add_tables
from mocks.deposit.medium import Mismatch
from mocks.deposit.pack import Tables

OPERATOR_NAME = "«Ұлттық ақпараттық технологиялар» АҚ (test)"
"The operator of the e-government ICT infrastructure (appendix 4 names it)."
REASONS = {
    "not-in-register": (
        "§16 1)",
        "Бағдарламалық қамтамасыз ету тізілімде жоқ",
        "Программное обеспечение отсутствует в реестре",
        "The software is not in the register",
    ),
    "act-mismatch": (
        "§16 2)",
        "Актіде көрсетілген мәліметтер электрондық ақпарат тасығыштағы мәліметтерге сәйкес келмейді",
        "Сведения, указанные в акте, не соответствуют сведениям на электронном носителе",
        "The act does not match what is on the medium",
    ),
    "medium-unreadable": (
        "§16 3)",
        "Электрондық ақпарат тасығыш оқылмайды",
        "Электронный носитель информации нечитаем",
        "The medium cannot be read",
    ),
}


@dataclass
class Deposit:
    """One application as the operator keeps it."""

    reference: str
    "Its number in the register of applications."
    register_number: int
    "Its row in the register (appendix 2, No.)."
    application_id: str
    "The gateway's application id (the idempotency key)."
    bin: str
    "The owner's BIN."
    owner_name: str
    "The state body."
    applicant: str
    "Who applied (the contact person of the application)."
    software_name: str
    "The software."
    architecture_code: str
    "Its code on the architectural portal."
    tables: Tables
    "The act's tables as the owner declared them."
    package: PackageInfo
    "The medium as declared."
    registered_at: datetime
    "When it was registered."
    in_register: bool
    "The software is in the register of software (§16 1))."
    package_at: datetime | None = None
    "When the medium arrived."
    ground: str | None = None
    "The refusal ground once decided."
    checked: bool = False
    "The medium was checked (§15)."
    mismatches: list[Mismatch] = field(default_factory=list)
    "The first differing rows."
    answer: bytes | None = None
    "The signed answer, made once."


def _add(parent: etree._Element, name: str, text: Any = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{RESULT_NS}}}{name}")
    if text is not None:
        child.text = str(text)
    return child


def render(deposit: Deposit, *, decided_at: datetime, notify_by: date | None) -> etree._Element:
    """The unsigned ``SoftwareDepositResult`` for a decided deposit."""
    root = etree.Element(f"{{{RESULT_NS}}}SoftwareDepositResult", nsmap={None: RESULT_NS})
    _add(root, "applicationId", deposit.application_id)
    _add(root, "bin", deposit.bin)
    _add(root, "operator", OPERATOR_NAME)
    entry = _add(root, "registerEntry")
    for name, value in (("number", deposit.register_number), ("applicationNumber", deposit.reference),
                        ("receivedAt", deposit.registered_at.isoformat()), ("stateBody", deposit.owner_name),
                        ("applicant", deposit.applicant), ("acceptedBy", OPERATOR_NAME)):
        _add(entry, name, value)
    if deposit.in_register:
        _add(root, "repositoryId", f"repo-{deposit.reference.lower()}")
    accepted = deposit.ground is None
    _add(root, "outcome", "accepted" if accepted else "refused")
    day = decided_at.date().isoformat()
    if accepted:
        act = _add(root, "act")
        for name, value in (("actNumber", f"ACT-{deposit.reference}"), ("date", day), ("place", "Астана"),
                            ("receivingOrganisation", OPERATOR_NAME), ("transferringOrganisation", deposit.owner_name),
                            ("softwareName", deposit.software_name), ("copies", 2)):
            _add(act, name, value)
        add_tables(_add(act, "tables"), RESULT_NS, deposit.tables)
        add_package(act, RESULT_NS, deposit.package)
        agreement = _add(root, "agreement")
        for name, value in (("agreementNumber", f"NDA-{deposit.reference}"), ("date", day),
                            ("owner", deposit.owner_name), ("operator", OPERATOR_NAME), ("copies", 2)):
            _add(agreement, name, value)
    else:
        assert deposit.ground is not None
        basis, kk, ru, en = REASONS[deposit.ground]
        refusal = _add(root, "refusal")
        for name, value in (("ground", deposit.ground), ("legalBasis", basis), ("reasonKk", kk), ("reasonRu", ru),
                            ("reasonEn", en)):
            _add(refusal, name, value)
        for mismatch in deposit.mismatches:
            row = _add(refusal, "mismatch")
            for name in ("table", "row", "path", "field", "declared", "actual"):
                _add(row, name, getattr(mismatch, name)[:1024] if name != "row" else mismatch.row)
    if notify_by is not None:
        _add(root, "authorityNotifyBy", notify_by.isoformat())
    _add(root, "decidedAt", decided_at.isoformat())
    return root
