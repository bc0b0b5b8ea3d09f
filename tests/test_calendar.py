"""Kazakhstan working days: the holidays package's calendar, the day-swaps override file, Astana time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.cabinet.calendar import ASTANA, SHIPPED_SWAPS, WorkingCalendar, load_swaps
from gateway.config import ConfigError, settings_from_dict
from mocks.elicense.steps import WorkingCalendar as ProviderCalendar

SWAPS = """\
[[working_day]]   # a Saturday worked
date = 2026-06-13
source = "test decree"

[[day_off]]       # for the Monday after it
date = 2026-06-15
"""


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar.load()


@pytest.fixture
def swapped(tmp_path: Path) -> WorkingCalendar:
    path = tmp_path / "swaps.toml"
    path.write_text(SWAPS, encoding="utf-8")
    return WorkingCalendar.load(path)


def astana(*args: int) -> datetime:
    return datetime(*args, tzinfo=ASTANA)


def test_two_working_days_after_20_march_2025_are_due_on_27_march(calendar: WorkingCalendar) -> None:
    # Nauryz Fri 21 - Sun 23; the Saturday and Sunday move to Mon 24 and Tue 25.
    assert calendar.add(astana(2025, 3, 20, 11, 0), working_days=2) == astana(2025, 3, 27, 11, 0)
    assert [calendar.is_working_day(date(2025, 3, d)) for d in range(20, 27)] == [
        True, False, False, False, False, False, True]


def test_a_holiday_on_a_weekend_gives_its_observed_day_off(calendar: WorkingCalendar) -> None:
    assert not calendar.is_working_day(date(2025, 3, 10))  # Women's Day, Saturday 8 March 2025
    assert not calendar.is_working_day(date(2025, 7, 7))  # Capital Day, Sunday 6 July 2025
    assert calendar.add(astana(2025, 7, 4, 9, 0), working_days=1) == astana(2025, 7, 8, 9, 0)
    assert calendar.is_working_day(date(2025, 3, 11))


def test_kurban_ait_is_a_day_off_that_does_not_move(calendar: WorkingCalendar) -> None:
    assert not calendar.is_working_day(date(2025, 6, 6))  # Friday
    assert calendar.add(astana(2025, 6, 5, 10, 0), working_days=1) == astana(2025, 6, 9, 10, 0)
    assert calendar.is_working_day(date(2024, 6, 17))  # Kurban ait 2024 fell on Sunday 16 June: no day off after


def test_the_packages_own_swaps_count(calendar: WorkingCalendar) -> None:
    # 2024: Saturday 4 May worked for Wednesday 8 May off (Government decree, in the holidays package).
    assert calendar.is_working_day(date(2024, 5, 4)) and not calendar.is_working_day(date(2024, 5, 8))
    assert calendar.add(astana(2024, 5, 3, 10, 0), working_days=1) == astana(2024, 5, 4, 10, 0)


def test_a_swapped_saturday_is_worked_and_the_swapped_weekday_is_not(swapped: WorkingCalendar,
                                                                     calendar: WorkingCalendar) -> None:
    assert swapped.is_working_day(date(2026, 6, 13)) and not swapped.is_working_day(date(2026, 6, 15))
    assert not calendar.is_working_day(date(2026, 6, 13)) and calendar.is_working_day(date(2026, 6, 15))
    friday = astana(2026, 6, 12, 15, 0)
    assert swapped.add(friday, working_days=1) == astana(2026, 6, 13, 15, 0)
    assert swapped.add(friday, working_days=2) == astana(2026, 6, 16, 15, 0)
    assert calendar.add(friday, working_days=2) == astana(2026, 6, 16, 15, 0)  # Mon 15, Tue 16


def test_the_override_file_wins_over_the_package(tmp_path: Path) -> None:
    path = tmp_path / "kurban.toml"  # the official Kurban ait a day after the package's estimate
    path.write_text("[[working_day]]\ndate = 2026-05-27\n[[day_off]]\ndate = 2026-05-28\n", encoding="utf-8")
    corrected = WorkingCalendar.load(path)
    assert corrected.is_working_day(date(2026, 5, 27)) and not corrected.is_working_day(date(2026, 5, 28))
    assert not WorkingCalendar.load().is_working_day(date(2026, 5, 27))


def test_hours_are_elapsed_time_across_the_day_boundary(calendar: WorkingCalendar) -> None:
    late = astana(2025, 11, 13, 22, 30)  # Thursday
    assert calendar.add(late, hours=3) == astana(2025, 11, 14, 1, 30)
    assert calendar.add(late, working_days=1, hours=2 + 35 / 60) == astana(2025, 11, 15, 1, 5)
    assert calendar.add(late, working_days=1).tzinfo is UTC


def test_days_are_counted_in_astana_time(calendar: WorkingCalendar) -> None:
    # 23:30 UTC on Thursday 20 March 2025 is 04:30 on Friday 21 March (Nauryz) in Astana.
    applied = datetime(2025, 3, 20, 23, 30, tzinfo=UTC)
    assert calendar.add(applied, working_days=1) == datetime(2025, 3, 25, 23, 30, tzinfo=UTC)  # Wed 26, 04:30
    almaty_before_2024 = timezone(timedelta(hours=6))
    assert calendar.add(applied.astimezone(almaty_before_2024), working_days=1) == astana(2025, 3, 26, 4, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add(datetime(2025, 3, 20, 10, 0), working_days=1)
    with pytest.raises(ValueError, match="negative"):
        calendar.add(applied, working_days=-1)


def test_years_beyond_the_preloaded_ones(calendar: WorkingCalendar) -> None:
    assert not calendar.is_working_day(date(2031, 3, 21)) and not calendar.is_working_day(date(2019, 12, 16))


def test_the_shipped_file_is_valid_and_the_default() -> None:
    swaps = load_swaps()
    assert swaps.origin.endswith(SHIPPED_SWAPS) and swaps.working == swaps.days_off == frozenset()


@pytest.mark.parametrize(("text", "message"), [
    ("[[day_off]]\ndate = 2026-06-13\n", "day_off[0].date: 2026-06-13 is a Saturday, a day off already"),
    ('[[working_day]]\ndate = "2026-06-13"\n', "working_day[0].date: expected a TOML date"),
    ("[[working_day]]\ndate = 2026-06-13T09:00:00\n", "working_day[0].date: expected a TOML date"),
    ("[[working_day]]\nsource = 'decree'\n", "working_day[0].date: required"),
    ("[[working_day]]\ndate = 2026-06-13\nreason = 'x'\n", "working_day[0].reason: unknown key"),
    ("[[working_day]]\ndate = 2026-06-13\nsource = 7\n", "working_day[0].source: expected a string"),
    ("[[working_day]]\ndate = 2026-06-15\n[[day_off]]\ndate = 2026-06-16\n[[day_off]]\ndate = 2026-06-15\n",
     "day_off[1].date: 2026-06-15 is already listed as working_day[0]"),
    ("[[day_off]]\ndate = 2026-06-15\n[[day_off]]\ndate = 2026-06-15\n",
     "day_off[1].date: 2026-06-15 is already listed as day_off[0]"),
    ("working_day = [2026-06-13]\n", "working_day: expected an array of tables"),
    ("[holidays]\n", "holidays: unknown key"),
    ("[[day_off]\n", "not valid TOML"),
])
def test_a_bad_override_file_names_the_file_and_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad-swaps.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        WorkingCalendar.load(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_missing_override_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"calendar\.swaps_file: .*missing\.toml cannot be read"):
        WorkingCalendar.load(tmp_path / "missing.toml")


def test_the_calendar_section_of_the_configuration(tmp_path: Path) -> None:
    settings = settings_from_dict({"calendar": {"swaps_file": "swaps.toml"}}, base_dir=tmp_path)
    assert settings.calendar.swaps_file == tmp_path / "swaps.toml"
    assert settings_from_dict({}).calendar.swaps_file is None
    with pytest.raises(ConfigError, match=r"^calendar\.holidays_file: unknown setting$"):
        settings_from_dict({"calendar": {"holidays_file": "kz-holidays.json"}})


def test_the_provider_mock_counts_the_same_days(swapped: WorkingCalendar) -> None:
    provider = ProviderCalendar(swapped)
    for start in (astana(2025, 3, 20, 16, 0), astana(2025, 12, 12, 14, 10), astana(2026, 6, 12, 15, 0)):
        for days in (1, 2, 5):
            assert provider.add_working_days(start, days) == swapped.add(start, working_days=days)
