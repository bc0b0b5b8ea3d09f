"""Loading the configuration: one TOML file mapped onto the frozen dataclasses of :mod:`gateway.config.settings`.

A bad file stops start-up with :class:`ConfigError` naming the dotted key (``services.x.timeout``);
unknown keys are errors too, because a misspelt setting silently ignored is a security bug waiting.
Relative paths in the file are resolved against the file's own directory.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfoNotFoundError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from gateway.config.retention import RetentionSettings
from gateway.config.settings import (
    EVENT_LOOPS,
    UPLOAD_LOCK_SECONDS,
    CabinetSettings,
    ConnectorKind,
    DeliveryMode,
    MessageLogSettings,
    MonitorSettings,
    ProviderSignature,
    SenderAuth,
    ServiceSettings,
    Settings,
    UploadSettings,
)
from signing.nca import SignerRole


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending key."""


def load_settings(path: Path) -> Settings:
    """Read and check a TOML configuration file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not UTF-8
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from exc
    settings = settings_from_dict(raw, base_dir=path.resolve().parent)
    check_settings(settings)
    return settings


def settings_from_dict(raw: dict[str, Any], *, base_dir: Path | None = None) -> Settings:
    return _build(Settings, raw, "", base_dir or Path.cwd())


def check_settings(settings: Settings) -> None:
    """Cross-field rules that types alone cannot say."""
    if settings.redis.appendfsync not in ("everysec", "always"):
        raise ConfigError("redis.appendfsync: must be 'everysec' or 'always'")
    listen = settings.listen
    for key in ("header_timeout_seconds", "keepalive_timeout_seconds", "error_log_seconds"):
        if not (math.isfinite(getattr(listen, key)) and getattr(listen, key) > 0):
            raise ConfigError(f"listen.{key}: must be positive")
    if listen.max_connections is not None and listen.max_connections < 1:
        raise ConfigError("listen.max_connections: must be at least 1")
    if listen.event_loop not in EVENT_LOOPS:
        raise ConfigError(f"listen.event_loop: must be one of {', '.join(EVENT_LOOPS)}")
    for service_id, service in settings.services.items():
        where = f"services.{service_id}"
        if service.connector is not ConnectorKind.QUEUE and not service.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.endpoint: an http(s) URL is required for the {service.connector} connector")
        if service.connector is not ConnectorKind.REST and service.mode is not DeliveryMode.ASYNC:
            raise ConfigError(f"{where}.mode: the {service.connector} connector is long-running: use 'async'")
        if (service.package_element is None) != (service.connector is not ConnectorKind.PACKAGE):
            raise ConfigError(f"{where}.package_element: required with the package connector, and only with it")
        for key in ("retry_attempts", "breaker_failures"):
            if getattr(service, key) < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1")
        for key in ("retry_base_seconds", "retry_max_seconds", "breaker_reset_seconds", "poll_seconds"):
            if not (math.isfinite(getattr(service, key)) and getattr(service, key) > 0):
                raise ConfigError(f"{where}.{key}: must be positive")
        unknown_senders = sorted(set(service.senders) - set(settings.senders))
        if unknown_senders:
            raise ConfigError(f"{where}.senders: unknown sender(s) {unknown_senders}")
        unknown = sorted(set(service.required_roles) - {role.value for role in SignerRole})
        if unknown:
            raise ConfigError(f"services.{service_id}.required_roles: unknown role(s) {unknown}; "
                              f"known: {sorted(role.value for role in SignerRole)}")
        if service.max_document_bytes is not None and service.max_document_bytes < 1:
            raise ConfigError(f"{where}.max_document_bytes: must be at least 1")
        if not (service.timeout_seconds > 0 and math.isfinite(service.timeout_seconds)):  # TOML allows nan, inf
            raise ConfigError(f"services.{service_id}.timeout_seconds: must be positive and finite")
        _check_provider(where, service)
    _check_senders(settings)
    if not 0 < settings.listen.port < 65536:
        raise ConfigError("listen.port: must be 1..65535")
    if settings.limits.max_body_bytes < 1024:
        raise ConfigError("limits.max_body_bytes: must be at least 1024")
    if settings.delivery.concurrency < 1 or settings.delivery.delivery_attempts < 1:
        raise ConfigError("delivery.concurrency and delivery.delivery_attempts: must be at least 1")
    if not settings.delivery.lease_seconds > max((s.timeout_seconds for s in settings.services.values()), default=0):
        raise ConfigError("delivery.lease_seconds: must exceed every service's timeout_seconds")
    _check_redis_topology(settings)
    if settings.redis.max_connections is not None and settings.redis.max_connections < 1:
        raise ConfigError("redis.max_connections: must be at least 1")
    if not (math.isfinite(settings.redis.pool_timeout_seconds) and settings.redis.pool_timeout_seconds > 0):
        raise ConfigError("redis.pool_timeout_seconds: must be positive")
    for key in ("max_xml_depth", "max_xml_elements", "message_max_age_seconds", "message_max_future_seconds",
                "max_in_flight", "min_in_flight", "overload_retry_after_seconds"):
        if getattr(settings.limits, key) <= 0:
            raise ConfigError(f"limits.{key}: must be positive")
    for key in ("queue_delay_target_ms", "queue_delay_interval_ms"):
        if not (math.isfinite(getattr(settings.limits, key)) and getattr(settings.limits, key) > 0):
            raise ConfigError(f"limits.{key}: must be positive and finite")
    if not (math.isfinite(settings.revocation.timeout_seconds) and settings.revocation.timeout_seconds > 0):
        raise ConfigError("revocation.timeout_seconds: must be positive")
    for key in ("ocsp_freshness_seconds", "ocsp_max_age_seconds", "crl_max_age_seconds"):
        if getattr(settings.revocation, key) <= 0:
            raise ConfigError(f"revocation.{key}: must be positive")
    if settings.trust.clock_skew_seconds < 0:
        raise ConfigError("trust.clock_skew_seconds: must not be negative")
    _check_cabinet(settings.cabinet)
    _check_messagelog(settings.messagelog)
    _check_uploads(settings.uploads)
    _check_retention(settings.retention)
    try:
        settings.shep.zone()
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"shep.local_time_zone: {settings.shep.local_time_zone!r} is not a known IANA time zone") \
            from None
    _check_monitor(settings.monitor)


def _check_redis_topology(settings: Settings) -> None:
    redis = settings.redis
    if redis.sentinel_urls and redis.cluster:
        raise ConfigError("redis.sentinel_urls: Sentinel and cluster exclude each other (a cluster fails over itself)")
    if redis.sentinel_urls and not redis.sentinel_master:
        raise ConfigError("redis.sentinel_master: required with sentinel_urls (the primary's name at the Sentinels)")
    if redis.sentinel_master and not redis.sentinel_urls:
        raise ConfigError("redis.sentinel_urls: required with sentinel_master")
    for key in ("min_replica_acks", "replica_ack_timeout_ms"):
        if getattr(redis, key) < 0:
            raise ConfigError(f"redis.{key}: must not be negative")
    if redis.min_replica_acks > 0 and redis.replica_ack_timeout_ms == 0:  # WAIT's 0 would mean "wait for ever"
        raise ConfigError("redis.replica_ack_timeout_ms: must be positive when min_replica_acks is")
    for url in redis.sentinel_urls:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ConfigError(f"redis.sentinel_urls: not a redis://host:port address: {url!r}")


def _check_uploads(uploads: UploadSettings) -> None:
    for key in ("max_package_bytes", "max_concurrent_patches"):
        if getattr(uploads, key) < 1:
            raise ConfigError(f"uploads.{key}: must be at least 1")
    if uploads.incomplete_ttl_seconds < 60:
        raise ConfigError("uploads.incomplete_ttl_seconds: must be at least 60")
    if not 64 * 1024 <= uploads.write_buffer_bytes <= 64 * 1024 * 1024:
        raise ConfigError("uploads.write_buffer_bytes: must be 64 KiB to 64 MiB")
    if not (math.isfinite(uploads.sweep_interval_seconds) and uploads.sweep_interval_seconds > 0):
        raise ConfigError("uploads.sweep_interval_seconds: must be positive and finite")
    if not 0 < uploads.idle_timeout_seconds < UPLOAD_LOCK_SECONDS:
        raise ConfigError(f"uploads.idle_timeout_seconds: must be positive and below the write lock's "
                          f"{UPLOAD_LOCK_SECONDS} s")
    if not (math.isfinite(uploads.lock_wait_seconds) and uploads.lock_wait_seconds >= 0):
        raise ConfigError("uploads.lock_wait_seconds: must not be negative")


def _check_retention(retention: RetentionSettings) -> None:
    for key in ("finished_seconds", "sweep_interval_seconds", "lease_seconds", "reconcile_interval_seconds"):
        value = getattr(retention, key)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"retention.{key}: must be positive and finite")
    if not 1 <= retention.batch <= 100_000:
        raise ConfigError("retention.batch: must be 1..100000")


def _check_cabinet(cabinet: CabinetSettings) -> None:
    for key in ("max_streams", "max_streams_per_owner", "stream_buffer", "retry_after_seconds"):
        if getattr(cabinet, key) < 1:
            raise ConfigError(f"cabinet.{key}: must be at least 1")
    if not (math.isfinite(cabinet.keep_alive_seconds) and cabinet.keep_alive_seconds > 0):
        raise ConfigError("cabinet.keep_alive_seconds: must be positive and finite")
    if cabinet.access_records_max < 1000:
        raise ConfigError("cabinet.access_records_max: must be at least 1000")


def _check_monitor(monitor: MonitorSettings) -> None:
    if monitor.listen is not None:
        host, _, port = monitor.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("monitor.listen: expected host:port, for example 127.0.0.1:9464")
    if monitor.anchor_min_days < 0 or monitor.expiry_warning_days < 0:
        raise ConfigError("monitor.anchor_min_days and monitor.expiry_warning_days: must not be negative")
    for key in ("probe_interval_seconds", "probe_timeout_seconds", "gauge_cache_seconds"):
        value = getattr(monitor, key)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"monitor.{key}: must be positive and finite")


def _check_messagelog(messagelog: MessageLogSettings) -> None:
    if messagelog.enabled and not (messagelog.tsa_url or "").startswith(("http://", "https://")):
        raise ConfigError("messagelog.tsa_url: an http(s) URL of a time-stamping authority is required when enabled")
    if not 1 <= messagelog.segment_records <= 1_000_000:
        raise ConfigError("messagelog.segment_records: must be 1..1000000")
    for key in ("segment_seconds", "max_seal_failure_seconds", "tsa_timeout_seconds", "check_seconds"):
        if not (math.isfinite(getattr(messagelog, key)) and getattr(messagelog, key) > 0):
            raise ConfigError(f"messagelog.{key}: must be positive and finite")


def _check_senders(settings: Settings) -> None:
    for sender_id, sender in settings.senders.items():
        if not sender.auth:
            raise ConfigError(f"senders.{sender_id}.auth: name at least one of 'password', 'ws-security'")
        if SenderAuth.PASSWORD in sender.auth and not sender.password_hash.startswith("scrypt$"):
            raise ConfigError(f"senders.{sender_id}.password_hash: expected a hash from "
                              "`egov-gateway hash-password` (required with auth 'password', the default)")
        if SenderAuth.WS_SECURITY in sender.auth and not _is_bin(sender.ws_security_bin):
            raise ConfigError(f"senders.{sender_id}.ws_security_bin: the 12-digit BIN of the sender's system "
                              "certificate is required with auth 'ws-security'")
        if sender.cabinet_reads_all and not sender.cabinet:
            raise ConfigError(f"senders.{sender_id}.cabinet_reads_all: needs cabinet = true")
        for service_id, quota in sender.quotas.items():
            where = f"senders.{sender_id}.quotas.{service_id}"
            if service_id != "*" and service_id not in settings.services:
                raise ConfigError(f"{where}: unknown service (a serviceId of [services], or '*')")
            for key in ("per_second", "per_day"):
                limit = getattr(quota, key)
                if limit is not None and limit < 1:
                    raise ConfigError(f"{where}.{key}: must be at least 1")
    wss = settings.ws_security
    unknown = sorted(set(wss.endpoints) - {"sync", "async"})
    if unknown:
        raise ConfigError(f"ws_security.endpoints: unknown endpoint(s) {unknown}; known: ['async', 'sync']")
    if wss.max_lifetime_seconds < 1 or wss.max_concurrent_checks < 1:
        raise ConfigError("ws_security.max_lifetime_seconds and max_concurrent_checks: must be at least 1")
    if not (math.isfinite(wss.queue_seconds) and wss.queue_seconds >= 0):
        raise ConfigError("ws_security.queue_seconds: must not be negative")
    auth = settings.auth
    for key in ("max_concurrent_checks", "window_seconds", "address_failures", "sender_failures",
                "lockout_seconds", "trusted_address_seconds"):
        if getattr(auth, key) < 1:
            raise ConfigError(f"auth.{key}: must be at least 1")
    if not (math.isfinite(auth.queue_seconds) and auth.queue_seconds >= 0):
        raise ConfigError("auth.queue_seconds: must not be negative")


def _check_provider(where: str, service: ServiceSettings) -> None:
    """Who may sign a service's results and how they name their application."""
    if service.provider_signature is ProviderSignature.REQUIRED and not service.provider_bin:
        # Without it any trusted NCA SIGN certificate (a citizen's too) would pass as the provider's signature.
        raise ConfigError(f"{where}.provider_bin: required with provider_signature = 'required': "
                          "the BIN of the provider whose certificate signs the results")
    if service.ws_security and service.connector is not ConnectorKind.SOAP:
        raise ConfigError(f"{where}.ws_security: only the soap connector signs its calls with WS-Security")
    if service.provider_bin is not None and not _is_bin(service.provider_bin):
        raise ConfigError(f"{where}.provider_bin: a BIN is 12 digits")
    if service.bind_results:
        for key in ("result_iin_element", "result_bin_element", "result_reference_element"):
            if not re.fullmatch(r"[A-Za-z_][\w.-]*", getattr(service, key)):
                raise ConfigError(f"{where}.{key}: the local name of an XML element is expected")


def _is_bin(value: str | None) -> bool:
    return value is not None and len(value) == 12 and value.isascii() and value.isdigit()


_Table = TypeVar("_Table", bound="DataclassInstance")


def _build(cls: type[_Table], raw: object, where: str, base_dir: Path) -> _Table:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'configuration'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{_join(where, key)}: unknown setting")
    values: dict[str, Any] = {}
    for name, spec in known.items():
        key = _join(where, name)
        if name in raw:
            values[name] = _convert(hints[name], raw[name], key, base_dir)
        elif spec.default is MISSING and spec.default_factory is MISSING:
            raise ConfigError(f"{key}: required setting is missing")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, base_dir: Path) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, base_dir)
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, key, base_dir)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table")
        return {k: _convert(args[1], v, _join(key, k), base_dir) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        return tuple(_convert(args[0], v, f"{key}[{i}]", base_dir) for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Enum):
        choices = [member.value for member in hint]
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {choices}, got {value!r}")
        return hint(value)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base_dir / path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool):
        if type(value) is not hint:
            raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover - programming error


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
