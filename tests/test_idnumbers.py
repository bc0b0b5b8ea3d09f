"""IIN/BIN rules: hand-checked examples, every error code, and property tests."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signing.idnumbers import (
    BinInfo,
    IdNumberError,
    IinInfo,
    check_digit,
    is_valid_bin,
    is_valid_iin,
    make_bin,
    make_iin,
    mask_id,
    mask_ids,
    mask_url,
    parse_bin,
    parse_iin,
)


def with_check(first11: str) -> str:
    digit = check_digit(first11)
    assert digit is not None, "pick a prefix that has a check digit"
    return f"{first11}{digit}"


def primary_sum(first11: str) -> int:
    return sum((i + 1) * int(c) for i, c in enumerate(first11)) % 11


# --- hand-computed examples ------------------------------------------------------------------


def test_check_digit_first_weights() -> None:
    # 8,8,0,3,1,4,4,0,5,1,2 · 1..11 = 8+16+0+12+5+24+28+0+45+10+22 = 170 = 15·11 + 5
    assert check_digit("88031440512") == 5
    info = parse_iin("880314405125")
    assert info == IinInfo(value="880314405125", birth_date=datetime.date(1988, 3, 14), sex="female")


def test_check_digit_second_weights() -> None:
    # first pass: 8+16+0+12+5+24+28+0+0+60+0 = 153 ≡ 10; second (3..11,1,2): 24+32+0+18+7+32+36+0+0+6+0
    # = 155 ≡ 1
    assert check_digit("88031440060") == 1
    assert is_valid_iin("880314400601")


def test_check_digit_impossible() -> None:
    # first pass 142 ≡ 10, second pass 164 ≡ 10: no 12th digit makes this a number
    assert check_digit("88031440140") is None
    for last in "0123456789":
        with pytest.raises(IdNumberError) as err:
            parse_iin(f"88031440140{last}")
        assert err.value.code == "IIN_CHECKSUM"


def test_check_digit_input() -> None:
    for bad in ("1234567890", "123456789012", "1234567890a", "１２３４５６７８９０１"):
        with pytest.raises(ValueError):
            check_digit(bad)


def test_bin_example() -> None:
    # 0,3,0,5,4,0,0,1,1,8,7 · 1..11 = 0+6+0+20+20+0+0+8+9+80+77 = 220 ≡ 0
    assert parse_bin("030540011870") == BinInfo(
        value="030540011870", registered=(2003, 5), entity_type="resident", unit="head"
    )
    assert parse_bin(with_check("98116102204")).registered == (1998, 11)  # 1990..2089 window
    info = parse_bin(with_check("89126300001"))
    assert (info.registered, info.entity_type, info.unit) == ((2089, 12), "entrepreneur", "peasant_farm")
    info = parse_bin(with_check("10015200001"))
    assert (info.entity_type, info.unit) == ("non_resident", "representative")
    assert parse_bin(with_check("10014100001")).unit == "branch"


@pytest.mark.parametrize(
    ("marker", "year", "sex"),
    [("1", 1888, "male"), ("2", 1888, "female"), ("3", 1988, "male"), ("4", 1988, "female"),
     ("5", 2088, "male"), ("6", 2088, "female")],
)
def test_century_and_sex(marker: str, year: int, sex: str) -> None:
    info = parse_iin(with_check(f"880314{marker}0512"))
    assert info.birth_date == datetime.date(year, 3, 14)
    assert info.sex == sex


def test_leap_day_depends_on_century() -> None:
    assert parse_iin(with_check("00022950001")).birth_date == datetime.date(2000, 2, 29)
    with pytest.raises(IdNumberError) as err:
        parse_iin(with_check("00022930001"))  # 1900 was not a leap year
    assert err.value.code == "IIN_DATE"


# --- every error code ------------------------------------------------------------------------

IIN_ERRORS = [
    ("12345", "IIN_FORMAT"),
    ("8803144051250", "IIN_FORMAT"),
    ("88031440512a", "IIN_FORMAT"),
    (" 88031440512", "IIN_FORMAT"),
    ("٨٨٠٣١٤٤٠٥١٢٥", "IIN_FORMAT"),  # Arabic-Indic digits pass str.isdigit()
    ("８８０３１４４０５１２５", "IIN_FORMAT"),  # full-width digits
    (with_check("88031400512"), "IIN_CENTURY"),
    (with_check("88031470512"), "IIN_CENTURY"),
    (with_check("88031490512"), "IIN_CENTURY"),
    (with_check("88023040512"), "IIN_DATE"),
    (with_check("88130140512"), "IIN_DATE"),
    (with_check("88000140512"), "IIN_DATE"),
    (with_check("88010040512"), "IIN_DATE"),
    ("880314405126", "IIN_CHECKSUM"),
]

BIN_ERRORS = [
    ("0305400118", "BIN_FORMAT"),
    ("03054001187O", "BIN_FORMAT"),
    (with_check("03004001187"), "BIN_DATE"),
    (with_check("03134001187"), "BIN_DATE"),
    (with_check("03053001187"), "BIN_TYPE"),
    (with_check("03057001187"), "BIN_TYPE"),
    (with_check("03054401187"), "BIN_ATTRIBUTE"),
    (with_check("03054901187"), "BIN_ATTRIBUTE"),
    ("030540011871", "BIN_CHECKSUM"),
]


@pytest.mark.parametrize(("value", "code"), IIN_ERRORS)
def test_iin_errors(value: str, code: str) -> None:
    with pytest.raises(IdNumberError) as err:
        parse_iin(value)
    assert err.value.code == code
    assert isinstance(err.value, ValueError)
    assert value not in str(err.value)  # messages never echo the number
    assert not is_valid_iin(value)


@pytest.mark.parametrize(("value", "code"), BIN_ERRORS)
def test_bin_errors(value: str, code: str) -> None:
    with pytest.raises(IdNumberError) as err:
        parse_bin(value)
    assert err.value.code == code
    assert value not in str(err.value)
    assert not is_valid_bin(value)


def test_non_string_is_format_error() -> None:
    with pytest.raises(IdNumberError) as err:
        parse_iin(880314405125)  # type: ignore[arg-type]
    assert err.value.code == "IIN_FORMAT"
    assert not is_valid_bin(None)  # type: ignore[arg-type]


# --- builders and masking --------------------------------------------------------------------


def test_make_iin_skips_impossible_serial() -> None:
    # serial 0140 on this date has no check digit (see test_check_digit_impossible): 0141 is used
    assert make_iin(datetime.date(1988, 3, 14), "female", 140) == "880314401411"
    assert make_iin(datetime.date(1988, 3, 14), "female", 512) == "880314405125"


def test_make_iin_wraps_at_top_serial() -> None:
    # 90032239999 has no check digit (406 ≡ 10, then 318 ≡ 10): the serial wraps to 0000 (64 ≡ 9)
    assert check_digit("90032239999") is None
    assert make_iin(datetime.date(1990, 3, 22), "male", 9999) == "900322300009"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((datetime.date(1799, 12, 31), "male", 1), "1800-2099"),
        ((datetime.date(2100, 1, 1), "male", 1), "1800-2099"),
        ((datetime.date(1990, 1, 1), "other", 1), "sex"),
        ((datetime.date(1990, 1, 1), "male", 10000), "serial"),
        ((datetime.date(1990, 1, 1), "male", -1), "serial"),
    ],
)
def test_make_iin_rejects(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_iin(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1989, 1, "resident", "head", 1), "year"),
        ((2090, 1, "resident", "head", 1), "year"),
        ((2000, 0, "resident", "head", 1), "month"),
        ((2000, 13, "resident", "head", 1), "month"),
        ((2000, 1, "foreign", "head", 1), "entity_type"),
        ((2000, 1, "resident", "office", 1), "unit"),
        ((2000, 1, "resident", "head", 100000), "serial"),
    ],
)
def test_make_bin_rejects(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_bin(*args)


def test_mask_id_shows_at_most_the_last_four_digits() -> None:
    assert mask_id("880314405125") == "********5125", "no birth date, no sex digit"
    assert mask_id("030540011870") == "********1870"
    assert mask_id("12345") == "*****"
    assert mask_id(None) == "***"
    assert mask_ids("signer 880314405125, BIN 030540011870.") == "signer ********5125, BIN ********1870."


@pytest.mark.parametrize("path", [
    "/api/v1/cabinet/%38%38%30%33%31%34%34%30%35%31%32%35/applications",  # every digit encoded
    "/api/v1/cabinet/%3880314405125/applications",  # one digit encoded: no 12-digit run before decoding
    "/api/v1/cabinet/%253880314405125/applications",  # encoded twice
    "/api/v1/cabinet/880314405125/applications",
])
def test_mask_url_decodes_before_masking(path: str) -> None:
    assert mask_url(path) == "/api/v1/cabinet/********5125/applications"


def test_mask_url_keeps_a_decoded_newline_out_of_the_log_line() -> None:
    assert mask_url("/x?q=%0A127.0.0.1%20%22GET%20/admin%22%20200") == "/x?q=%0A127.0.0.1%20%22GET%20/admin%22%20200"
    assert mask_url("/x/%D0%B0?iin=880314405125") == "/x/%D0%B0?iin=********5125"


def test_repr_hides_iin() -> None:
    assert "880314405125" not in repr(parse_iin("880314405125"))


# --- properties ------------------------------------------------------------------------------

iin_args = st.tuples(
    st.dates(datetime.date(1800, 1, 1), datetime.date(2099, 12, 31)),
    st.sampled_from(["male", "female"]),
    st.integers(0, 9999),
)
bin_args = st.tuples(
    st.integers(1990, 2089),
    st.integers(1, 12),
    st.sampled_from(["resident", "non_resident", "entrepreneur"]),
    st.sampled_from(["head", "branch", "representative", "peasant_farm"]),
    st.integers(0, 99999),
)


@given(iin_args)
def test_make_iin_always_parses(args: tuple[datetime.date, str, int]) -> None:
    birth, sex, _serial = args
    info = parse_iin(make_iin(*args))
    assert (info.birth_date, info.sex) == (birth, sex)


@given(bin_args)
def test_make_bin_always_parses(args: tuple[int, int, str, str, int]) -> None:
    year, month, entity_type, unit, _serial = args
    info = parse_bin(make_bin(*args))
    assert (info.registered, info.entity_type, info.unit) == ((year, month), entity_type, unit)


@given(iin_args, st.integers(1, 9))
def test_iin_wrong_check_digit_rejected(args: tuple[datetime.date, str, int], shift: int) -> None:
    value = make_iin(*args)
    wrong = f"{value[:11]}{(int(value[11]) + shift) % 10}"
    with pytest.raises(IdNumberError) as err:
        parse_iin(wrong)
    assert err.value.code == "IIN_CHECKSUM"


@given(bin_args, st.integers(1, 9))
def test_bin_wrong_check_digit_rejected(args: tuple[int, int, str, str, int], shift: int) -> None:
    value = make_bin(*args)
    wrong = f"{value[:11]}{(int(value[11]) + shift) % 10}"
    with pytest.raises(IdNumberError) as err:
        parse_bin(wrong)
    assert err.value.code == "BIN_CHECKSUM"


@given(iin_args, bin_args, st.integers(0, 10), st.integers(1, 9), st.booleans())
def test_single_digit_change(
    iin: tuple[datetime.date, str, int],
    bin_: tuple[int, int, str, str, int],
    position: int,
    shift: int,
    use_bin: bool,
) -> None:
    """A changed digit is caught, except where mod-11 weights cannot see it.

    Digit 11 has weight 11 ≡ 0 in the first pass, and a number checked by the second pass
    (or becoming so) can collide; anywhere else a one-digit change is always rejected.
    """
    value = make_bin(*bin_) if use_bin else make_iin(*iin)
    parse = parse_bin if use_bin else parse_iin
    changed = value[:position] + str((int(value[position]) + shift) % 10) + value[position + 1 :]
    try:
        parse(changed)
    except IdNumberError:
        return
    assert position == 10 or 10 in (primary_sum(value[:11]), primary_sum(changed[:11]))
