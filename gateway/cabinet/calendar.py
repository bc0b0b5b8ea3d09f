"""Working days in Kazakhstan: deadlines of applications are counted in them (Law on Informatization, art. 37).

Saturdays, Sundays and the public holidays in ``gateway/cabinet/data/kz-holidays.json`` are days off; the file can
be updated without a release. Days are counted in Astana time (UTC+5).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

ASTANA = timezone(timedelta(hours=5))


class WorkingCalendar:
    def __init__(self, holidays: frozenset[date]) -> None:
        self.holidays = holidays

    @classmethod
    def load(cls, path: Path | None = None) -> WorkingCalendar:
        raw = path.read_text(encoding="utf-8") if path else (
            resources.files("gateway.cabinet") / "data" / "kz-holidays.json").read_text(encoding="utf-8")
        return cls(frozenset(date.fromisoformat(h["date"]) for h in json.loads(raw)["holidays"]))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: datetime, *, working_days: int = 0, hours: float = 0.0) -> datetime:
        """``start`` plus whole working days (same time of day), then plus ``hours`` of elapsed time."""
        moment = start.astimezone(ASTANA)
        remaining = working_days
        while remaining > 0:
            moment += timedelta(days=1)
            if self.is_working_day(moment.date()):
                remaining -= 1
        return (moment + timedelta(hours=hours)).astimezone(UTC)
