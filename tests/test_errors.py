"""The error catalogue (gateway.errors): complete, trilingual, and covering every code the source uses."""

from __future__ import annotations

import re

import pytest

from gateway.errors import CATALOGUE, DEFAULT_LANGUAGE, LANGUAGES, GatewayError, Party, pick_language
from signing.report import SubIndication
from signing.verifier import ERROR_CODES
from tests.helpers import ROOT

SOURCE_DIRS = ("gateway", "signing", "connectors")
CODE_PATTERN = re.compile(r"""["'](?:CLIENT|SIG|ID|PROVIDER|GATEWAY|UPLOAD|DEPOSIT)_[A-Z_]*["']""")
KAZAKH_LETTERS = re.compile("[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
CYRILLIC = re.compile("[а-яА-ЯёЁ]")


def _codes_in_source() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for match in CODE_PATTERN.findall(path.read_text(encoding="utf-8")):
                found.setdefault(match[1:-1], []).append(str(path.relative_to(ROOT)))
    return found


def test_catalogue_is_not_empty() -> None:
    assert len(CATALOGUE) >= 30
    assert set(LANGUAGES) == {"kk", "ru", "en"} and DEFAULT_LANGUAGE == "en"


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_entry_is_complete(code: str) -> None:
    spec = CATALOGUE[code]
    assert spec.code == code
    assert re.fullmatch(r"(CLIENT|SIG|ID|PROVIDER|GATEWAY|UPLOAD|DEPOSIT)_[A-Z_]+", code)
    assert set(spec.messages) == set(LANGUAGES)
    texts = [spec.messages[language] for language in LANGUAGES]
    assert all(text and text.strip() == text for text in texts), texts
    assert len(set(texts)) == len(texts), f"{code}: a message is not translated"
    assert KAZAKH_LETTERS.search(spec.messages["kk"]), f"{code}: kk text has no Kazakh letter"
    assert CYRILLIC.search(spec.messages["ru"]) and not KAZAKH_LETTERS.search(spec.messages["ru"])
    assert spec.messages["en"].isascii()
    assert 400 <= spec.http_status <= 599
    for language in LANGUAGES:
        assert spec.message(language) == spec.messages[language]
    assert spec.message("de") == spec.messages["en"]


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_party_matches_prefix_and_status(code: str) -> None:
    spec = CATALOGUE[code]
    if spec.party is Party.CLIENT:
        assert 400 <= spec.http_status < 500
        assert code.startswith(("CLIENT_", "SIG_", "ID_", "UPLOAD_", "DEPOSIT_"))
    elif spec.party is Party.PROVIDER:
        assert code.startswith("PROVIDER_")
    else:
        assert spec.http_status >= 500
    if code.startswith(("CLIENT_", "ID_", "UPLOAD_", "DEPOSIT_")):
        assert spec.party is Party.CLIENT
    if code.startswith("GATEWAY_"):
        assert spec.party is Party.GATEWAY


def test_every_code_used_in_the_source_is_catalogued() -> None:
    used = _codes_in_source()
    assert len(used) >= 20, "the scan found almost nothing: is the pattern broken?"
    missing = {code: where for code, where in used.items() if code not in CATALOGUE}
    assert not missing, f"codes used but not in CATALOGUE: {missing}"


def test_every_sub_indication_maps_to_a_catalogued_code() -> None:
    assert set(ERROR_CODES) == set(SubIndication)
    for sub, code in ERROR_CODES.items():
        assert code in CATALOGUE, (sub, code)
        assert code.startswith("SIG_")


def test_try_later_is_retryable_and_others_are_the_clients() -> None:
    assert CATALOGUE[ERROR_CODES[SubIndication.TRY_LATER]].http_status == 503
    for sub in set(SubIndication) - {SubIndication.TRY_LATER}:
        assert CATALOGUE[ERROR_CODES[sub]].party is Party.CLIENT


def test_gateway_error() -> None:
    error = GatewayError("CLIENT_ACCESS_DENIED", "service x", sub_indication=None)
    assert error.code == "CLIENT_ACCESS_DENIED" and error.spec is CATALOGUE["CLIENT_ACCESS_DENIED"]
    assert str(error) == "CLIENT_ACCESS_DENIED: service x"
    assert error.message("ru") == CATALOGUE["CLIENT_ACCESS_DENIED"].messages["ru"]
    assert str(GatewayError("GATEWAY_INTERNAL")) == f"GATEWAY_INTERNAL: {CATALOGUE['GATEWAY_INTERNAL'].messages['en']}"
    with pytest.raises(ValueError, match="unknown error code"):
        GatewayError("CLIENT_NO_SUCH_THING")


# -------------------------------------------------------------------------------------------- languages

@pytest.mark.parametrize(("header", "explicit", "expected"), [
    (None, None, "en"),
    ("", None, "en"),
    ("ru", None, "ru"),
    ("kk-KZ", None, "kk"),
    ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", None, "ru"),
    ("en;q=0.5, kk;q=0.9, ru;q=0.7", None, "kk"),
    ("en;q=0.5,kk", None, "kk"),  # no q means 1
    ("ru, kk", None, "ru"),  # equal quality: header order
    ("KK", None, "kk"),
    (" ru ; q=0.4 , kk ; q=0.3 ", None, "ru"),
    ("de, fr;q=0.9", None, "en"),  # nothing we speak: the default
    ("de, fr;q=0.9, ru;q=0.1", None, "ru"),  # anything we speak beats the default
    ("*", None, "en"),
    ("ru;q=abc, kk;q=0.5", None, "kk"),  # a broken q-value ranks last
    ("kk", "ru", "ru"),  # an explicit lang parameter wins
    ("ru", "KK", "kk"),
    ("ru", "en-GB", "en"),
    ("kk", "de", "kk"),  # an explicit language we do not speak is ignored
    ("kk", "", "kk"),
    (None, "ru", "ru"),
])
def test_pick_language(header: str | None, explicit: str | None, expected: str) -> None:
    assert pick_language(header, explicit) == expected


def test_pick_language_q_zero_is_not_acceptable() -> None:
    assert pick_language("ru;q=0, de") == "en"


def test_pick_language_three_letter_tags_are_not_prefixes() -> None:
    assert pick_language("rue") == "en"
