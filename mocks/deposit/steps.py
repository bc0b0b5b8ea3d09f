"""The operator's regulated steps for one deposit (rules §8, §9, §15, §17) and when each completes.

(1) the application is registered in the register of applications (appendix 2), on receipt; (2) the repository
is formed within 3 working days (§8); (3) the deposit is taken within 3 working days after that (§9), not before
the medium has arrived; (4) the act is checked against the medium within 5 working days (§15); (5) the operator
signs the act and the agreement, or the reasoned refusal (§16, §17). Software not in the register is refused at
once after (1). As in :mod:`mocks.elicense.steps`, ``pace`` makes the operator work that many times faster than
its deadlines; the deadlines themselves are the regulated ones, in Kazakhstan working days by the gateway's
calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mocks.elicense.steps import WorkingCalendar

REGISTERED, REPOSITORY, TAKEN, CHECKED, SIGNED = ("application-registered", "repository-formed", "deposit-taken",
                                                  "act-checked", "signed")
NAMES = {
    REGISTERED: "Өтінім тіркелді / Заявка зарегистрирована / Application registered (§8, appendix 2)",
    REPOSITORY: "Репозиторий қалыптастырылды / Репозиторий сформирован / Repository formed (§8)",
    TAKEN: "Жеткізгіш қабылданды / Носитель принят / Deposit taken (§9)",
    CHECKED: "Акт тексерілді / Акт проверен / Act checked against the medium (§15)",
    SIGNED: "Акт пен келісімге немесе бас тартуға қол қойылды / Подписаны акт и соглашение или отказ / "
            "Act and agreement, or the refusal, signed (§16, §17)",
}
WORKING_DAYS = {REPOSITORY: 3, TAKEN: 3, CHECKED: 5}
SIGNING = timedelta(minutes=10)
AUTHORITY_NOTICE_DAYS = 5
"§9: the authorised body is notified within 5 working days of taking the deposit."


@dataclass(frozen=True)
class StepState:
    """One step as seen now."""

    code: str
    "Its code."
    started_at: datetime
    "When it started."
    due_at: datetime
    "Its regulated deadline."
    completed_at: datetime | None
    "When it completed (None: in progress)."


def timeline(registered_at: datetime, *, refused_at_once: bool, package_at: datetime | None,
             checked: bool, calendar: WorkingCalendar, pace: float, now: datetime) -> list[StepState]:
    """The steps started by ``now``. ``package_at``: when the medium arrived; ``checked``: its check finished."""
    steps = [StepState(REGISTERED, registered_at, registered_at, registered_at)]
    if refused_at_once:
        done = registered_at + SIGNING / pace
        steps.append(StepState(SIGNED, registered_at, registered_at + SIGNING, done if now >= done else None))
        return steps
    start = registered_at
    for code in (REPOSITORY, TAKEN, CHECKED):
        due = calendar.add_working_days(start, WORKING_DAYS[code])
        done: datetime | None = start + (due - start) / pace
        if code == TAKEN:
            done = None if package_at is None else max(done, package_at)  # type: ignore[type-var]
        if code == CHECKED and not checked:
            done = None
        if done is not None and now < done:
            done = None
        steps.append(StepState(code, start, due, done))
        if done is None:
            return steps
        start = done
    done = start + SIGNING / pace
    steps.append(StepState(SIGNED, start, start + SIGNING, done if now >= done else None))
    return steps
