"""Kazakhstan's individual (IIN) and business (BIN) identification numbers.

Both are 12 digits ending in a check digit computed the same way (weights 1..11 over the
first 11 digits, sum mod 11; if that gives 10, weights 3..11,1,2; a second 10 means the
number cannot exist). The leading digits carry meaning:

* IIN: ``YYMMDD`` birth date, one digit for century and sex, a 4-digit serial, the check digit.
* BIN: ``YYMM`` registration, one digit for the entity type, one for the unit kind,
  a 5-digit serial, the check digit.

An IIN is personal data: pass it through :func:`mask_id` before it goes to a log, and keep
it out of exception messages (the messages here never contain the number).

Note on strength: the weight of digit 11 in the first pass is 11, which is 0 mod 11, so a
change to digit 11 alone is only noticed when the second weighting happens to be used.
The check digit catches typos, it does not prove a number was issued.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BinInfo",
    "EntityType",
    "IdErrorCode",
    "IdNumberError",
    "IinInfo",
    "Sex",
    "Unit",
    "check_digit",
    "is_valid_bin",
    "is_valid_iin",
    "make_bin",
    "make_iin",
    "mask_id",
    "parse_bin",
    "parse_iin",
]

IdErrorCode = Literal[
    "IIN_FORMAT",
    "IIN_CHECKSUM",
    "IIN_DATE",
    "IIN_CENTURY",
    "BIN_FORMAT",
    "BIN_CHECKSUM",
    "BIN_DATE",
    "BIN_TYPE",
    "BIN_ATTRIBUTE",
]
Sex = Literal["male", "female"]
EntityType = Literal["resident", "non_resident", "entrepreneur"]
Unit = Literal["head", "branch", "representative", "peasant_farm"]

_DIGITS = frozenset("0123456789")
_FIRST_WEIGHTS: tuple[int, ...] = tuple(range(1, 12))
_SECOND_WEIGHTS: tuple[int, ...] = (*range(3, 12), 1, 2)

# IIN digit 7: century and sex in one digit.
_CENTURY_BASE = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}

_ENTITY_TYPES: dict[str, EntityType] = {"4": "resident", "5": "non_resident", "6": "entrepreneur"}
_UNITS: dict[str, Unit] = {"0": "head", "1": "branch", "2": "representative", "3": "peasant_farm"}
_TYPE_DIGITS: dict[str, str] = {name: digit for digit, name in _ENTITY_TYPES.items()}
_UNIT_DIGITS: dict[str, str] = {name: digit for digit, name in _UNITS.items()}

# A BIN holds only two year digits. Registrations predate the BIN itself (issued from 2007
# onward to organisations registered in the 1990s), so a fixed window 1990..2089 keeps
# parsing deterministic instead of depending on today's date.
_BIN_YEAR_PIVOT = 90
_BIN_YEARS = range(1990, 2090)


class IdNumberError(ValueError):
    """An IIN or BIN that is malformed or cannot exist.

    ``code`` is a stable machine-readable reason; ``str(error)`` is a readable English
    message that never contains the number itself.
    """

    code: IdErrorCode

    def __init__(self, code: IdErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __repr__(self) -> str:
        return f"IdNumberError({self.code!r}, {str(self)!r})"


@dataclass(frozen=True)
class IinInfo:
    """What an individual identification number says about its holder."""

    value: str = field(repr=False)  # kept out of repr() so logging the info leaks no IIN
    """The 12-digit IIN as given (personal data: mask it before logging)."""
    birth_date: datetime.date
    """Date of birth from digits 1-6 and the century in digit 7."""
    sex: Sex
    """From digit 7: odd is male, even is female."""


@dataclass(frozen=True)
class BinInfo:
    """What a business identification number says about the entity."""

    value: str
    """The 12-digit BIN as given."""
    registered: tuple[int, int]
    """Registration (year, month) from digits 1-4; years read in the window 1990..2089."""
    entity_type: EntityType
    """Digit 5: 4 resident legal entity, 5 non-resident, 6 individual entrepreneur."""
    unit: Unit
    """Digit 6: 0 head unit, 1 branch, 2 representative office, 3 peasant farm."""


def _is_digits(value: object, length: int) -> bool:
    # str.isdigit() accepts other scripts' digits (e.g. Arabic-Indic); only ASCII is valid here.
    return isinstance(value, str) and len(value) == length and set(value) <= _DIGITS


def check_digit(first11: str) -> int | None:
    """Return the check digit for the first 11 digits, or None when no valid number has them."""
    if not _is_digits(first11, 11):
        raise ValueError("check_digit() needs exactly 11 ASCII digits")
    digits = [int(c) for c in first11]
    for weights in (_FIRST_WEIGHTS, _SECOND_WEIGHTS):
        result = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        if result != 10:
            return result
    return None


def _checksum_ok(value: str) -> bool:
    return check_digit(value[:11]) == int(value[11])


def parse_iin(value: str) -> IinInfo:
    """Parse and validate an IIN; raise :class:`IdNumberError` when it cannot be real."""
    if not _is_digits(value, 12):
        raise IdNumberError("IIN_FORMAT", "IIN must be exactly 12 ASCII digits")
    marker = int(value[6])
    if marker not in _CENTURY_BASE:
        raise IdNumberError("IIN_CENTURY", "IIN digit 7 (century and sex) must be 1-6")
    year = _CENTURY_BASE[marker] + int(value[0:2])
    try:
        birth_date = datetime.date(year, int(value[2:4]), int(value[4:6]))
    except ValueError:
        raise IdNumberError("IIN_DATE", "IIN digits 1-6 are not a real birth date") from None
    if not _checksum_ok(value):
        raise IdNumberError("IIN_CHECKSUM", "IIN check digit does not match")
    return IinInfo(value=value, birth_date=birth_date, sex="male" if marker % 2 else "female")


def parse_bin(value: str) -> BinInfo:
    """Parse and validate a BIN; raise :class:`IdNumberError` when it cannot be real."""
    if not _is_digits(value, 12):
        raise IdNumberError("BIN_FORMAT", "BIN must be exactly 12 ASCII digits")
    yy, month = int(value[0:2]), int(value[2:4])
    if not 1 <= month <= 12:
        raise IdNumberError("BIN_DATE", "BIN digits 3-4 (registration month) must be 01-12")
    entity_type = _ENTITY_TYPES.get(value[4])
    if entity_type is None:
        raise IdNumberError("BIN_TYPE", "BIN digit 5 (entity type) must be 4, 5 or 6")
    unit = _UNITS.get(value[5])
    if unit is None:
        raise IdNumberError("BIN_ATTRIBUTE", "BIN digit 6 (unit kind) must be 0, 1, 2 or 3")
    if not _checksum_ok(value):
        raise IdNumberError("BIN_CHECKSUM", "BIN check digit does not match")
    year = (1900 if yy >= _BIN_YEAR_PIVOT else 2000) + yy
    return BinInfo(value=value, registered=(year, month), entity_type=entity_type, unit=unit)


def is_valid_iin(value: str) -> bool:
    """True when :func:`parse_iin` would accept ``value``."""
    try:
        parse_iin(value)
    except IdNumberError:
        return False
    return True


def is_valid_bin(value: str) -> bool:
    """True when :func:`parse_bin` would accept ``value``."""
    try:
        parse_bin(value)
    except IdNumberError:
        return False
    return True


def _complete(prefix: str, serial: int, width: int) -> str:
    """Append serial and check digit, moving to the next serial while the number is impossible.

    Some 11-digit prefixes have no check digit (10 under both weightings); the caller then
    gets the next serial that works (wrapping at the top), so the serial in the result may
    differ from the one asked for. The very next serial always works: without a carry only
    digit 11 changes (weight 11 = 0 mod 11 in the first pass, 2 in the second, so the second
    sum moves off 10); with a carry digit 10 changes too and the first sum moves off 10.
    """
    limit = 10**width
    for step in range(limit):
        first11 = f"{prefix}{(serial + step) % limit:0{width}d}"
        digit = check_digit(first11)
        if digit is not None:
            return f"{first11}{digit}"
    raise AssertionError("unreachable: some serial always has a check digit")


def make_iin(birth_date: datetime.date, sex: str, serial: int) -> str:
    """Build a valid IIN for a birth date (years 1800-2099), sex and 4-digit serial.

    When the serial gives an impossible number, the next serial is used (see module notes).
    """
    if sex not in ("male", "female"):
        raise ValueError("sex must be 'male' or 'female'")
    if not 1800 <= birth_date.year <= 2099:
        raise ValueError("an IIN can encode birth years 1800-2099 only")
    if not 0 <= serial <= 9999:
        raise ValueError("IIN serial must be 0-9999")
    century = (birth_date.year // 100 - 18) * 2 + 1  # 1800s -> 1, 1900s -> 3, 2000s -> 5
    marker = century if sex == "male" else century + 1
    return _complete(f"{birth_date:%y%m%d}{marker}", serial, 4)


def make_bin(year: int, month: int, entity_type: str, unit: str, serial: int) -> str:
    """Build a valid BIN registered in (year, month) with a 5-digit serial.

    When the serial gives an impossible number, the next serial is used (see module notes).
    """
    if year not in _BIN_YEARS:
        raise ValueError(f"BIN registration year must be {_BIN_YEARS.start}-{_BIN_YEARS.stop - 1}")
    if not 1 <= month <= 12:
        raise ValueError("BIN registration month must be 1-12")
    type_digit = _TYPE_DIGITS.get(entity_type)
    if type_digit is None:
        raise ValueError(f"entity_type must be one of {sorted(_ENTITY_TYPES.values())}")
    unit_digit = _UNIT_DIGITS.get(unit)
    if unit_digit is None:
        raise ValueError(f"unit must be one of {sorted(_UNITS.values())}")
    if not 0 <= serial <= 99999:
        raise ValueError("BIN serial must be 0-99999")
    return _complete(f"{year % 100:02d}{month:02d}{type_digit}{unit_digit}", serial, 5)


def mask_id(value: object) -> str:
    """Mask an IIN/BIN for logs: keep at most the last 4 digits (``********0125``); anything else is ``***``.

    The first six digits of an IIN are the birth date and the seventh the sex, so none of them is shown."""
    if not isinstance(value, str):
        return "***"
    if len(value) <= 8:
        return "*" * len(value)
    return f"{'*' * (len(value) - 4)}{value[-4:]}"


_TWELVE_DIGITS = re.compile(r"(?<!\d)\d{8}(\d{4})(?!\d)")


def mask_ids(text: str) -> str:
    """Mask every 12-digit run (IIN or BIN) inside free text, e.g. a library's error message.

    Percent-encoded text (a URL path) must be decoded first (:func:`mask_url`): ``%38%38...`` hides the run."""
    return _TWELVE_DIGITS.sub(r"********\1", text)


def mask_url(path: str) -> str:
    """A request path (with its query) fit for a log: percent-decoded, IINs/BINs masked, control and
    non-ASCII characters escaped again so a decoded newline cannot forge a log line."""
    decoded = path
    for _ in range(3):  # %2538 decodes to %38: decode again, so a double-encoded IIN is masked too
        decoded, before = urllib.parse.unquote(decoded, errors="replace"), decoded
        if decoded == before:
            break
    return urllib.parse.quote(mask_ids(decoded), safe="/?&=:;,+*@!$'()~#[]%")
