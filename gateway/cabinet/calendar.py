"""Working days in Kazakhstan: deadlines of applications are counted in them (Law on Informatization, art. 37).

A working day is Monday to Friday unless it is a day off; a Saturday or Sunday is a day off unless the
government made it a working day. The days come from two sources:

- the ``holidays`` package (``holidays.KZ``): the public holidays of the Law "On holidays", the days off
  they move to when they fall on a Saturday or Sunday (Kurban ait and Orthodox Christmas do not move),
  Kurban ait (marked "estimated" for years after the package's confirmed ones) and the government's
  past day swaps (Labour Code art. 85(3)) with their decrees;
- an override file of day swaps, ``gateway/cabinet/data/kz-day-swaps.toml`` or the operator's own
  (``[calendar] swaps_file``), for what the package does not know yet: a new year's decree, or the official
  Kurban ait date when it differs from the estimate. The file wins over the package.

Days are counted in Astana time (UTC+5, one zone for all Kazakhstan since 1 March 2024).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import holidays

from gateway.config import ConfigError

ASTANA = timezone(timedelta(hours=5))
"Astana time, in which deadlines are counted."

SHIPPED_SWAPS = "kz-day-swaps.toml"
"The override file shipped in ``gateway/cabinet/data``."

log = logging.getLogger("egov.cabinet")
_ENTRY_KEYS = frozenset({"date", "source"})
_KINDS = ("working_day", "day_off")


@dataclass(frozen=True)
class DaySwaps:
    """The government's day swaps read from an override file; they win over the ``holidays`` package."""

    working: frozenset[date] = frozenset()
    "Days made working days (usually a Saturday worked in exchange for a weekday off)."
    days_off: frozenset[date] = frozenset()
    "Monday-to-Friday days made days off."
    origin: str = "(none)"
    "Where they were read from, for logs."


def parse_swaps(text: str, origin: str) -> DaySwaps:
    """Read an override file's text; a bad entry raises :class:`ConfigError` naming ``origin`` and the entry.

    Format: arrays of tables ``[[working_day]]`` and ``[[day_off]]``, each with ``date`` (a TOML date,
    e.g. ``2026-01-03``) and an optional ``source`` (the decree). A day off must be Monday to Friday, and a
    date may appear only once.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    for key in raw:
        if key not in _KINDS:
            raise ConfigError(f"{origin}: {key}: unknown key; expected [[working_day]] or [[day_off]]")
    seen: dict[date, str] = {}
    for kind in _KINDS:
        entries = raw.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{origin}: {kind}: expected an array of tables ([[{kind}]])")
        for index, entry in enumerate(entries):
            where = f"{kind}[{index}]"
            day = _entry_date(entry, f"{origin}: {where}", day_off=kind == "day_off")
            if day in seen:
                raise ConfigError(f"{origin}: {where}.date: {day} is already listed as {seen[day]}")
            seen[day] = where
    working = frozenset(day for day, where in seen.items() if where.startswith("working_day["))
    return DaySwaps(working=working, days_off=frozenset(seen) - working, origin=origin)


def _entry_date(entry: dict[str, Any], where: str, *, day_off: bool) -> date:
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key; expected date and source")
    if "source" in entry and not isinstance(entry["source"], str):
        raise ConfigError(f"{where}.source: expected a string")
    day = entry.get("date")
    if day is None:
        raise ConfigError(f"{where}.date: required")
    if type(day) is not date:  # a datetime is a date too, and a string is an easy mistake
        raise ConfigError(f"{where}.date: expected a TOML date such as 2026-01-03, got {day!r}")
    if day_off and day.weekday() >= 5:
        raise ConfigError(f"{where}.date: {day} is a {day:%A}, a day off already; a day_off is Monday to Friday")
    return day


def load_swaps(path: Path | None = None) -> DaySwaps:
    """The override file at ``path``, or the shipped one; unreadable or bad raises :class:`ConfigError`."""
    if path is None:
        text = (resources.files(__package__) / "data" / SHIPPED_SWAPS).read_text(encoding="utf-8")
        return parse_swaps(text, f"gateway/cabinet/data/{SHIPPED_SWAPS}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # missing, a directory, no permission, not UTF-8
        raise ConfigError(f"calendar.swaps_file: {path} cannot be read: {exc}") from exc
    return parse_swaps(text, str(path))


class WorkingCalendar:
    """Kazakhstan working days: the ``holidays`` package's calendar corrected by the day swaps.

    Built once at start-up. Years outside those preloaded are computed on first use (the package expands
    its calendar in place), so one instance is meant for one event loop, not shared between threads.
    """

    def __init__(self, public: holidays.HolidayBase, swaps: DaySwaps = DaySwaps()) -> None:
        self.public = public
        self.swaps = swaps

    @classmethod
    def load(cls, swaps_file: Path | None = None, *, today: date | None = None) -> WorkingCalendar:
        """The calendar with the override file ``swaps_file`` (default: the shipped one)."""
        swaps = load_swaps(swaps_file)
        year = (today or datetime.now(ASTANA).date()).year
        public = holidays.country_holidays("KZ", years=range(year - 1, year + 3), language="en_US")
        log.info("working calendar: holidays %s, %d working day(s) and %d day(s) off from %s",
                 metadata.version("holidays"), len(swaps.working), len(swaps.days_off), swaps.origin)
        return cls(public, swaps)

    def is_working_day(self, day: date) -> bool:
        """True for a working day in Kazakhstan (``day`` is an Astana date)."""
        if day in self.swaps.working:
            return True
        if day in self.swaps.days_off:
            return False
        return bool(self.public.is_working_day(day))

    def days_off(self, first: date, last: date) -> frozenset[date]:
        """The Monday-to-Friday days off from ``first`` to ``last`` inclusive (for callers that want a set)."""
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        return frozenset(day for day in days if day.weekday() < 5 and not self.is_working_day(day))

    def add(self, start: datetime, *, working_days: int = 0, hours: float = 0.0) -> datetime:
        """``start`` moved to the ``working_days``-th working day after its Astana date, at the same Astana time
        of day, then plus ``hours`` of elapsed time; returned in UTC.

        Submitted on Friday 15:00, two working days are due on Tuesday 15:00. ``start`` must be aware: a naive
        time would be read in the server's zone.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if working_days < 0:
            raise ValueError("working_days must not be negative")
        local = start.astimezone(ASTANA)
        day, remaining = local.date(), working_days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return (datetime.combine(day, local.timetz()) + timedelta(hours=hours)).astimezone(UTC)
