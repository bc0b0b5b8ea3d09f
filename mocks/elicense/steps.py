"""The provider's seven steps for "Issuing a certificate for the right of temporary export of cultural
values" and the working calendar their deadlines follow.

Regulation (Akmola region), paragraph 5: (1) the office registers the documents in the E-licensing
system, 10 minutes; (2) the head reads them and assigns the responsible executor, 1 hour; (3) the
executor checks the documents and prepares them for the expert commission, or prepares a reasoned
refusal, 2 working days; (4) the expert commission gives its conclusion, 5 working days; (5) the
executor prepares the certificate in E-licensing, 15 minutes; (6) the head signs the certificate or
the reasoned refusal, 1 hour; (7) the office issues the certificate or the refusal, 10 minutes.

Each step starts when the previous one completes; its deadline (``due_at``) is the regulated one, counted
from that start in real dates. At ``pace`` 1 the provider completes every step exactly at its deadline; a
demo runs faster (``pace`` 50,000: a step completes after 1/50,000 of the time to its deadline, so two
working days take a few seconds), and every time stays a real one: a step completes when it really did,
on or before its deadline, and the result's issue date is the day the certificate was really issued.
A refusal prepared at
the documents check skips the commission and the certificate: the head signs the refusal (6) and the
office issues it (7). Minute and hour durations are elapsed time; working-day durations keep the time
of day and count only working days in Kazakhstan time (UTC+5) by the gateway's own calendar
(:mod:`gateway.cabinet.calendar`), so the provider and the cabinet agree on every deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from gateway.cabinet import calendar as kz_calendar

KZ_TIME = timezone(timedelta(hours=5), "KZT")
"Kazakhstan time: one zone, UTC+5, since 1 March 2024."

REGISTRATION = "registration"
EXECUTOR_ASSIGNED = "executor-assigned"
DOCUMENTS_CHECKED = "documents-checked"
EXPERT_CONCLUSION = "expert-conclusion"
CERTIFICATE_PREPARED = "certificate-prepared"
HEAD_SIGNED = "head-signed"
ISSUED = "issued"


@dataclass(frozen=True)
class StepDefinition:
    """One step of the provider's procedure (regulation, paragraph 5)."""

    number: int
    "Subparagraph of paragraph 5, 1..7."
    code: str
    "Stable code used on the wire."
    name_kk: str
    "Name in Kazakh (the regulation's wording, shortened)."
    name_ru: str
    "Name in Russian."
    name_en: str
    "Name in English."
    duration: timedelta | None = None
    "Elapsed-time duration, for minute and hour steps."
    working_days: int | None = None
    "Duration in working days, for the documents check and the expert commission."

    @property
    def regulated(self) -> str:
        """The duration as the regulation states it, e.g. ``2 working days`` or ``15 min``."""
        if self.working_days is not None:
            return f"{self.working_days} working days"
        assert self.duration is not None
        minutes = int(self.duration.total_seconds() // 60)
        return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


STEPS: tuple[StepDefinition, ...] = (
    StepDefinition(1, REGISTRATION, "Құжаттарды қабылдау және «Е-лицензиялау» жүйесінде тіркеу",
                   "Приём документов и регистрация в ИС «Е-лицензирование»",
                   "Documents received and registered in E-licensing", duration=timedelta(minutes=10)),
    StepDefinition(2, EXECUTOR_ASSIGNED, "Басшының жауапты орындаушыны анықтауы",
                   "Определение руководителем ответственного исполнителя",
                   "The head assigns the responsible executor", duration=timedelta(hours=1)),
    StepDefinition(3, DOCUMENTS_CHECKED, "Жауапты орындаушының құжаттарды тексеруі",
                   "Проверка документов ответственным исполнителем",
                   "The executor checks the documents", working_days=2),
    StepDefinition(4, EXPERT_CONCLUSION, "Сараптамалық комиссияның қорытындысы",
                   "Заключение экспертной комиссии",
                   "The expert commission gives its conclusion", working_days=5),
    StepDefinition(5, CERTIFICATE_PREPARED, "Куәлікті дайындау",
                   "Подготовка свидетельства",
                   "The certificate is prepared", duration=timedelta(minutes=15)),
    StepDefinition(6, HEAD_SIGNED, "Басшының куәлікке немесе бас тарту туралы дәлелді жауапқа қол қоюы",
                   "Подписание руководителем свидетельства или мотивированного отказа",
                   "The head signs the certificate or the reasoned refusal", duration=timedelta(hours=1)),
    StepDefinition(7, ISSUED, "Куәлікті немесе бас тарту туралы дәлелді жауапты беру",
                   "Выдача свидетельства или мотивированного отказа",
                   "The certificate or the reasoned refusal is issued", duration=timedelta(minutes=10)),
)
STEP_BY_CODE: dict[str, StepDefinition] = {step.code: step for step in STEPS}
REFUSAL_STEPS = frozenset({DOCUMENTS_CHECKED, HEAD_SIGNED})
"The two steps the regulation allows a reasoned refusal at."


class WorkingCalendar:
    """The provider's working days: the gateway's calendar (holidays package plus day swaps), in Kazakhstan time."""

    def __init__(self, days: kz_calendar.WorkingCalendar, *, tz: timezone = KZ_TIME) -> None:
        self.days = days
        self.tz = tz

    @classmethod
    def load(cls, swaps_file: Path | None = None) -> WorkingCalendar:
        """The gateway's calendar with the day-swaps file ``swaps_file`` (default: the shipped one)."""
        return cls(kz_calendar.WorkingCalendar.load(swaps_file))

    def is_working_day(self, day: date) -> bool:
        """True for a working day in Kazakhstan."""
        return self.days.is_working_day(day)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``start`` moved to the ``days``-th working day after its own Kazakhstan date, same local time of day.

        A check starting on Friday 15:00 with 2 working days is due on Tuesday 15:00.
        """
        return self.days.add(start, working_days=days).astimezone(self.tz)

    def due(self, step: StepDefinition, start: datetime) -> datetime:
        """When ``step`` started at ``start`` is due."""
        if step.working_days is not None:
            return self.add_working_days(start, step.working_days)
        assert step.duration is not None
        return start.astimezone(self.tz) + step.duration


@dataclass(frozen=True)
class StepTiming:
    """When one step of one application starts and is due (it completes when due)."""

    step: StepDefinition
    "The step."
    started_at: datetime
    "When the previous step completed (for the first step: the registration time)."
    due_at: datetime
    "Its regulated deadline."
    completes_at: datetime
    "When the provider completes it: ``due_at`` at pace 1, sooner at a faster pace (never later)."


@dataclass(frozen=True)
class StepStatus:
    """A step as seen at one moment: in progress (``completed_at`` None) or done."""

    step: StepDefinition
    "The step."
    started_at: datetime
    "When it started."
    due_at: datetime
    "Its deadline."
    completed_at: datetime | None
    "When it completed, or None while in progress."


def step_codes(refusal_step: str | None) -> tuple[str, ...]:
    """The steps an application goes through: all seven, or without 4 and 5 when refused at step 3."""
    if refusal_step == DOCUMENTS_CHECKED:
        return tuple(s.code for s in STEPS if s.code not in (EXPERT_CONCLUSION, CERTIFICATE_PREPARED))
    return tuple(s.code for s in STEPS)


def schedule(registered_at: datetime, refusal_step: str | None, calendar: WorkingCalendar, *,
             pace: float = 1.0) -> tuple[StepTiming, ...]:
    """The deterministic timeline of one application, registered at ``registered_at``.

    ``pace`` (at least 1) is how many times faster than its deadlines the provider works."""
    if pace < 1:
        raise ValueError("pace must be at least 1: the provider never works slower than regulated")
    timings: list[StepTiming] = []
    start = registered_at.astimezone(calendar.tz)
    for code in step_codes(refusal_step):
        step = STEP_BY_CODE[code]
        due = calendar.due(step, start)
        done = due if pace == 1 else start + (due - start) / pace
        timings.append(StepTiming(step, start, due, done))
        start = done
    return tuple(timings)


def progress(timings: tuple[StepTiming, ...], now: datetime) -> tuple[StepStatus, ...]:
    """The steps started by ``now``: every completed one and the one in progress, if any."""
    seen: list[StepStatus] = []
    for timing in timings:
        if now < timing.started_at:
            break
        completed = timing.completes_at if now >= timing.completes_at else None
        seen.append(StepStatus(timing.step, timing.started_at, timing.due_at, completed))
    return tuple(seen)
