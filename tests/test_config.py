"""Configuration loading (gateway.config) and password hashes (sender authentication: tests/test_senders.py)."""

from __future__ import annotations

import os
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.access.senders import check_password, hash_password
from gateway.config import (
    ConfigError,
    ConnectorKind,
    DeliveryMode,
    LimitSettings,
    ProviderSignature,
    SenderSettings,
    ServiceSettings,
    Settings,
    load_settings,
    settings_from_dict,
)
from signing.applicant import ApplicantKind
from tests.helpers import ROOT as REPO

# One scrypt hash for the whole module: each costs tens of milliseconds.
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)

FULL = f"""
state_dir = "state"
log_level = "DEBUG"

[listen]
host = "0.0.0.0"
port = 9090
public_url = "https://gateway.example.kz"

[limits]
max_body_bytes = 524288
max_xml_depth = 32
max_xml_elements = 5000
message_max_age_seconds = 600
message_max_future_seconds = 120

[redis]
url = "redis://127.0.0.1:6390/2"
key_prefix = "test"

[trust]
anchors = ["ca/root.pem", "/etc/egov/gost-root.pem"]
intermediates = ["ca/nca.pem"]
clock_skew_seconds = 60

[signer]
cert = "keys/gateway.cert.pem"
key = "keys/gateway.key.pem"
password_env = "MY_PASSWORD"

[senders.portal]
password_hash = "{PASSWORD_HASH}"
services = ["*"]
cabinet = true

[senders.office]
password_hash = "{PASSWORD_HASH}"
services = ["kazneb.reader-ticket"]

[services."kazneb.reader-ticket"]
endpoint = "http://127.0.0.1:8710/api/v1/readers"
connector = "rest"
document_schema = "kazneb/reader-registration.xsd"
result_schema = "kazneb/reader-ticket.xsd"
applicant = "individual"
iin_element = "iin"
timeout_seconds = 5
title = "Reader ticket"

[services.minimal]
endpoint = "http://127.0.0.1:8711/"
"""

MINIMAL_SERVICE = '[services.x]\nendpoint = "http://127.0.0.1:1/"\n'


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    return str(caught.value)


# --------------------------------------------------------------------------------------------- loading

def test_full_example(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL))
    assert settings.state_dir == tmp_path / "state"
    assert settings.log_level == "DEBUG"
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 9090)
    assert settings.base_url == "https://gateway.example.kz"
    assert settings.limits == LimitSettings(524288, 32, 5000, 600, 120)
    assert settings.redis.url == "redis://127.0.0.1:6390/2" and settings.redis.key_prefix == "test"
    assert settings.trust.anchors == (tmp_path / "ca/root.pem", Path("/etc/egov/gost-root.pem"))
    assert settings.trust.intermediates == (tmp_path / "ca/nca.pem",)
    assert settings.trust.clock_skew_seconds == 60
    assert settings.signer.cert == tmp_path / "keys/gateway.cert.pem"
    assert settings.signer.key == tmp_path / "keys/gateway.key.pem"
    assert settings.signer.p12 is None and settings.signer.password_env == "MY_PASSWORD"
    assert settings.senders["portal"] == SenderSettings(PASSWORD_HASH, ("*",), True)
    assert settings.senders["office"] == SenderSettings(PASSWORD_HASH, ("kazneb.reader-ticket",), False)
    service = settings.services["kazneb.reader-ticket"]
    assert service.timeout_seconds == 5.0 and isinstance(service.timeout_seconds, float)
    assert service.document_schema == "kazneb/reader-registration.xsd" and service.title == "Reader ticket"
    assert settings.services["minimal"] == ServiceSettings(endpoint="http://127.0.0.1:8711/")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.listen.port == 8080 and settings.senders == {} and settings.services == {}
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.shep.local_time_zone == "Asia/Almaty"


def test_the_local_time_zone_is_kazakhstans_utc_plus_5(tmp_path: Path) -> None:
    """Asia/Almaty moved from UTC+6 to UTC+5 on 1 March 2024: the zone data in use must know it."""
    zone = load_settings(write(tmp_path, "")).shep.zone()
    assert datetime(2024, 3, 1, 12, tzinfo=zone).utcoffset() == timedelta(hours=5)
    assert datetime(2024, 2, 29, 12, tzinfo=zone).utcoffset() == timedelta(hours=6)
    chosen = load_settings(write(tmp_path, "[shep]\nlocal_time_zone = 'Asia/Aqtobe'\n")).shep.zone()
    assert chosen.key == "Asia/Aqtobe"


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc" / "egov"
    conf_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir, 'state_dir = "data"\n[trust]\nanchors = ["../pki/root.pem"]\n[signer]\np12 = "gw.p12"\n')
    settings = load_settings(path)
    assert settings.state_dir == conf_dir / "data"
    assert settings.trust.anchors == (conf_dir / "../pki/root.pem",)
    assert settings.signer.p12 == conf_dir / "gw.p12"
    # and through a relative path to the file itself
    monkeypatch.chdir(tmp_path)
    assert load_settings(Path("etc/egov/gateway.toml")).state_dir.resolve() == (conf_dir / "data").resolve()


def test_home_directory_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings(write(tmp_path, 'state_dir = "~/egov"\n'))
    assert settings.state_dir == tmp_path / "home" / "egov"


@pytest.mark.parametrize(("text", "key"), [
    (MINIMAL_SERVICE + "timout = 5\n", "services.x.timout"),
    ("stat_dir = 'x'\n", "stat_dir"),
    ("[listen]\nprot = 1\n", "listen.prot"),
    ("[senders.portal]\npassword_hash = 'scrypt$x'\ncabinet = true\nadmin = true\n", "senders.portal.admin"),
    ("[nonsense]\na = 1\n", "nonsense"),
])
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith(f"{key}:") and "unknown" in message


@pytest.mark.parametrize(("text", "key"), [
    ("[listen]\nport = '8080'\n", "listen.port"),
    ("[listen]\nport = 8080.0\n", "listen.port"),
    ("[listen]\nport = true\n", "listen.port"),
    ("[listen]\npublic_url = 5\n", "listen.public_url"),
    ("log_level = 10\n", "log_level"),
    ("state_dir = 1\n", "state_dir"),
    ("listen = 5\n", "listen"),
    ("[trust]\nanchors = 'root.pem'\n", "trust.anchors"),
    ("[trust]\nanchors = [1]\n", "trust.anchors[0]"),
    ("[senders.p]\npassword_hash = 'scrypt$x'\ncabinet = 'yes'\n", "senders.p.cabinet"),
    ("[senders.p]\npassword_hash = 'scrypt$x'\nservices = '*'\n", "senders.p.services"),
    ("services = 'x'\n", "services"),
    ("[services]\nx = 'http://a/'\n", "services.x"),
    (MINIMAL_SERVICE + "timeout_seconds = '10'\n", "services.x.timeout_seconds"),
    (MINIMAL_SERVICE + "timeout_seconds = true\n", "services.x.timeout_seconds"),
])
def test_wrong_type_is_named(tmp_path: Path, text: str, key: str) -> None:
    assert config_error(tmp_path, text).startswith(f"{key}:")


@pytest.mark.parametrize(("text", "key"), [
    ("[services.x]\ntitle = 'no endpoint'\n", "services.x.endpoint"),
    ("[senders.p]\ncabinet = true\n", "senders.p.password_hash"),
])
def test_missing_required_key(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith(f"{key}:") and "required" in message


@pytest.mark.parametrize(("text", "key"), [
    (MINIMAL_SERVICE + "timeout_seconds = 0\n", "services.x.timeout_seconds"),
    (MINIMAL_SERVICE + "timeout_seconds = -1.5\n", "services.x.timeout_seconds"),
    (MINIMAL_SERVICE + "timeout_seconds = nan\n", "services.x.timeout_seconds"),
    (MINIMAL_SERVICE + "timeout_seconds = inf\n", "services.x.timeout_seconds"),
    (MINIMAL_SERVICE + "connector = 'ftp'\n", "services.x.connector"),
    (MINIMAL_SERVICE + "applicant = 'anyone'\n", "services.x.applicant"),
    ("[limits]\nmax_body_bytes = 100\n", "limits.max_body_bytes"),
    ("[listen]\nevent_loop = 'trio'\n", "listen.event_loop"),
    ("[shep]\nlocal_time_zone = 'Asia/Nowhere'\n", "shep.local_time_zone"),
    ("[shep]\nlocal_time_zone = '../etc/passwd'\n", "shep.local_time_zone"),
])
def test_cross_field_rules(tmp_path: Path, text: str, key: str) -> None:
    assert config_error(tmp_path, text).startswith(f"{key}:")


@pytest.mark.parametrize("stored", ["plaintext-password", "bcrypt$2b$12$abc", "$scrypt$", ""])
def test_password_hash_must_be_scrypt(tmp_path: Path, stored: str) -> None:
    message = config_error(tmp_path, f"[senders.portal]\npassword_hash = '{stored}'\n")
    assert message.startswith("senders.portal.password_hash:") and "hash-password" in message
    if stored:
        assert stored not in message  # never echo what may be a plaintext password


def test_bad_toml(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[listen\nport = 1\n")
    assert "not valid TOML" in message and "gateway.toml" in message


def test_duplicate_key_is_bad_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in config_error(tmp_path, "log_level = 'INFO'\nlog_level = 'DEBUG'\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes('log_level = "Жарайды"\n'.encode("cp1251"))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(not_utf8)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path)  # a directory


def test_settings_from_dict_uses_base_dir(tmp_path: Path) -> None:
    settings = settings_from_dict({"trust": {"anchors": ["a.pem"]}}, base_dir=tmp_path)
    assert settings.trust.anchors == (tmp_path / "a.pem",)
    assert isinstance(settings, Settings)


def test_shipped_example_loads() -> None:
    settings = load_settings(REPO / "gateway.example.toml")
    assert settings.services, "the example should register at least one service"
    for service in settings.services.values():
        assert service.connector == "queue" or service.endpoint.startswith(("http://", "https://"))
    for sender in settings.senders.values():
        assert sender.password_hash.startswith("scrypt$")
    assert settings.trust.anchors and all(p.is_absolute() for p in settings.trust.anchors)


# --------------------------------------------------------------------------------------------- senders

def test_hash_and_check_password_roundtrip() -> None:
    assert PASSWORD_HASH.startswith("scrypt$16384$8$1$") and len(PASSWORD_HASH.split("$")) == 6
    assert check_password(PASSWORD, PASSWORD_HASH)
    assert not check_password(PASSWORD + " ", PASSWORD_HASH)
    assert not check_password("", PASSWORD_HASH)


def test_hash_is_salted() -> None:
    salt = os.urandom(16)
    assert hash_password("pw", salt=salt) == hash_password("pw", salt=salt)
    assert hash_password("pw", salt=salt) != hash_password("pw", salt=bytes(16))
    assert "pw" not in hash_password("pw", salt=salt).split("$")


@pytest.mark.parametrize("stored", [
    "", "plain", "scrypt$x", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!!$AAAA",
    "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # N not a power of two
    "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # absurd memory: refused, not attempted
])
def test_check_password_malformed_hash_is_false(stored: str) -> None:
    assert check_password(PASSWORD, stored) is False


# ----------------------------------------------------------------------------------------------- enums

def test_choices_are_enums(tmp_path: Path) -> None:
    text = MINIMAL_SERVICE.replace("[services.x]", "[services.x]\nconnector = 'soap'\nmode = 'async'\n"
                                   "provider_signature = 'required'\nprovider_bin = '100940041028'\n"
                                   "applicant = 'organisation'")
    service = load_settings(write(tmp_path, text)).services["x"]
    assert service.connector is ConnectorKind.SOAP and service.mode is DeliveryMode.ASYNC
    assert service.provider_signature is ProviderSignature.REQUIRED and service.applicant is ApplicantKind.ORGANISATION
    assert ServiceSettings(connector="queue", mode="async").connector is ConnectorKind.QUEUE  # built in code


@pytest.mark.parametrize(("key", "value", "choices"), [
    ("connector", "ftp", "['rest', 'soap', 'queue', 'package']"),
    ("mode", "later", "['sync', 'async']"),
    ("applicant", "anyone", "['individual', 'organisation']"),
    ("provider_signature", "sometimes", "['required', 'optional']"),
    ("mode", 1, "['sync', 'async']"),
])
def test_bad_choice_names_the_key_and_the_choices(tmp_path: Path, key: str, value: object, choices: str) -> None:
    rendered = f"'{value}'" if isinstance(value, str) else str(value)
    message = config_error(tmp_path, MINIMAL_SERVICE + f"{key} = {rendered}\n")
    assert message == f"services.x.{key}: expected one of {choices}, got {value!r}"


def test_long_running_connectors_must_be_async(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL_SERVICE + "connector = 'soap'\n")
    assert message.startswith("services.x.mode:") and "use 'async'" in message


def test_a_package_service_names_its_package_element(tmp_path: Path) -> None:
    """The package connector streams the upload the document names: without package_element it has none (and
    package_element without the package connector would check uploads nobody sends)."""
    message = config_error(tmp_path, MINIMAL_SERVICE + "connector = 'package'\nmode = 'async'\n")
    assert message == "services.x.package_element: required with the package connector, and only with it"
    message = config_error(tmp_path, MINIMAL_SERVICE + "package_element = 'packageInfo'\n")
    assert message == "services.x.package_element: required with the package connector, and only with it"
