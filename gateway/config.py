"""Configuration: one TOML file mapped onto frozen dataclasses, with every default written here.

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
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from connectors.queue import QueueSettings
from signing.applicant import ApplicantKind
from signing.nca import SignerRole
from signing.revocation import RevocationSettings


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    "Address the gateway binds to."
    port: int = 8080
    "TCP port."
    public_url: str | None = None
    "Base URL written into served WSDLs; defaults to http://host:port."


@dataclass(frozen=True)
class LimitSettings:
    max_body_bytes: int = 1_048_576
    "Largest request body accepted (before parsing); larger gets CLIENT_BODY_TOO_LARGE."
    max_xml_depth: int = 64
    "Deepest element nesting accepted in any XML the gateway parses."
    max_xml_elements: int = 20_000
    "Most elements accepted in one XML document."
    message_max_age_seconds: int = 900
    "messageDate older than this is refused as stale (replay window)."
    message_max_future_seconds: int = 300
    "messageDate further in the future than this is refused (clock skew allowance)."
    max_in_flight: int = 256
    "Requests processed at once per process; the next gets 503 GATEWAY_OVERLOADED with Retry-After."


_REDIS_SPARE_CONNECTIONS = 16
"Connections beyond requests and deliveries: background loops, cabinet reads, the job API."


@dataclass(frozen=True)
class RedisSettings:
    url: str | None = None
    "Redis URL; when unset the gateway starts an embedded redis-server under state_dir/redis."
    key_prefix: str = "egov"
    "Prefix of every key the gateway writes."
    max_connections: int | None = None
    """Connections in each of the process's two Redis pools (commands; desks' long polls and cabinet events).
    Unset: ``limits.max_in_flight + delivery.concurrency + 16``, so every admitted request, every delivery and
    the background loops, cabinet and job API calls each find one."""
    pool_timeout_seconds: float = 2.0
    "How long a command waits for a free pooled connection before it fails (GATEWAY_STORAGE_UNAVAILABLE)."

    def pool_size(self, limits: LimitSettings, delivery: DeliverySettings) -> int:
        """``max_connections``, or the size derived from the in-flight bound and delivery concurrency."""
        if self.max_connections is not None:
            return self.max_connections
        return limits.max_in_flight + delivery.concurrency + _REDIS_SPARE_CONNECTIONS


@dataclass(frozen=True)
class TrustSettings:
    anchors: tuple[Path, ...] = ()
    "PEM files of trusted root CAs (several allowed, e.g. an RSA and a GOST hierarchy)."
    intermediates: tuple[Path, ...] = ()
    "PEM files of intermediate CAs used to build paths when a signature carries only its own certificate."
    clock_skew_seconds: int = 300
    "Tolerance when comparing certificate validity with the clock."


@dataclass(frozen=True)
class DeliverySettings:
    """How background delivery behaves (per process)."""

    concurrency: int = 32
    "Applications delivered at once by this process."
    lease_seconds: float = 120.0
    "How long a taken application stays invisible to other processes (must exceed a call's timeout)."
    delivery_attempts: int = 50
    "Attempts for an async application before it is stopped (dead-lettered): about an hour of backoff."
    idle_poll_seconds: float = 0.2
    "How often an idle loop looks for due work (it also wakes at once on new work from this process)."


@dataclass(frozen=True)
class SignerSettings:
    """The gateway's own key, used to sign results. Either cert + key (PEM) or p12 + password."""

    cert: Path | None = None
    "PEM certificate of the gateway."
    key: Path | None = None
    "PEM private key (PKCS#8, unencrypted or with key_password)."
    p12: Path | None = None
    "PKCS#12 container with key and certificate."
    password_env: str = "EGOV_SIGNER_PASSWORD"
    "Environment variable holding the PKCS#12 / key password (passwords never live in the file)."
    xades: bool = False
    "Sign results and receipts as XAdES-BES (SigningTime, SigningCertificateV2) instead of plain XMLDSig."


@dataclass(frozen=True)
class CalendarSettings:
    """Kazakhstan working days for deadlines: the `holidays` package plus a file of the government's day swaps."""

    swaps_file: Path | None = None
    "Your own day-swaps file (TOML, the format of gateway/cabinet/data/kz-day-swaps.toml), replacing the shipped one."


@dataclass(frozen=True)
class CabinetSettings:
    """The cabinet's live event streams, per process: how many, and how soon a page that went away is noticed.

    All streams share one Redis pub/sub connection of their own, so these caps bound memory and sockets,
    never the connections intake, jobs and delivery use."""

    max_streams: int = 1000
    "Streams open at once in this process; the next is refused with 503 GATEWAY_STREAMS_FULL and Retry-After."
    max_streams_per_owner: int = 8
    "Streams open at once for one IIN/BIN (tabs, devices); the next gets 429 CLIENT_TOO_MANY_STREAMS."
    keep_alive_seconds: float = 5.0
    "An idle stream gets a comment this often; a page gone away is noticed within about this long."
    stream_buffer: int = 64
    "Events held for one page that reads slowly; when full, its stream is ended (the browser reconnects)."
    retry_after_seconds: int = 10
    "Retry-After of a refused stream, in seconds."
    access_records_max: int = 1_000_000
    """About how many cabinet access records (who read whose data, Law on Informatization art. 41-43) the Redis
    stream keeps (MAXLEN ~); older ones are trimmed first."""


@dataclass(frozen=True)
class AuthSettings:
    """How sender passwords are checked and failed attempts throttled.

    Failures are counted in Redis per client address and per sender id over a fixed window, so every worker
    sees the same counts. Past its limit an address or sender id is refused with 429
    CLIENT_TOO_MANY_ATTEMPTS (Retry-After: the rest of the window) without a password check; one that keeps
    trying until twice its limit is locked out (429 CLIENT_LOCKED_OUT) for ``lockout_seconds``. An address
    that authenticated as a sender in the last ``trusted_address_seconds`` is not held by that sender's
    count, so a flood against a sender id cannot lock the real sender out (its own address limit still holds).
    """

    max_concurrent_checks: int = 2
    "scrypt checks running at once per process (each in a worker thread, off the event loop)."
    queue_seconds: float = 1.0
    "How long a check waits for a free slot; then 503 GATEWAY_OVERLOADED (Retry-After)."
    window_seconds: int = 300
    "Failed attempts are counted over this fixed window."
    address_failures: int = 20
    "Failures from one client address within the window before it is throttled."
    sender_failures: int = 100
    "Failures for one sender id (from addresses it has not used before) within the window before it is throttled."
    lockout_seconds: int = 900
    "How long an address or sender id stays locked out after reaching twice its limit."
    trusted_address_seconds: int = 86_400
    "How long an address that authenticated as a sender stays exempt from that sender's failure count."


@dataclass(frozen=True)
class QuotaSettings:
    """Requests a sender may send to one service (SendMessage over any channel), counted across all workers."""

    per_second: int | None = None
    "Requests per second (unset: no limit); beyond: 429 CLIENT_QUOTA_EXCEEDED, Retry-After 1."
    per_day: int | None = None
    "Requests per day, Kazakhstan time (UTC+5) (unset: no limit); beyond: 429 until midnight."


@dataclass(frozen=True)
class SenderSettings:
    password_hash: str
    "scrypt hash made by `egov-gateway hash-password`."
    services: tuple[str, ...] = ("*",)
    "Services this sender may call; '*' for all."
    cabinet: bool = False
    "Whether this sender (a portal) may read cabinets: only the applications it submitted itself."
    callback_url: str | None = None
    "AsyncChannel: the sender's IAsyncChannelClient endpoint; results and status changes are pushed there."
    jobs: tuple[str, ...] = ()
    "Back-office: services whose queued jobs this sender may take and answer."
    operator: bool = False
    "May list and replay dead letters and stopped applications."
    quotas: dict[str, QuotaSettings] = field(default_factory=dict)
    "Request quotas by serviceId; '*' applies to each service without its own entry (counted per service)."
    # Cabinet reading beyond one's own submissions: an explicit grant, never a default.
    cabinet_reads_all: bool = False
    "With cabinet = true: may read every sender's applications of an owner (the national portal of record)."


class ConnectorKind(StrEnum):
    """How the gateway reaches a service's back-end."""

    REST = "rest"
    "POST the document, the answer comes back in the response."
    SOAP = "soap"
    "Submit/status profile (E-licensing): submit once, then poll the provider's steps."
    QUEUE = "queue"
    "A job on the back-office queue; desks post the answer through the job API."


class DeliveryMode(StrEnum):
    """When the sender gets the answer."""

    SYNC = "sync"
    "Within the request."
    ASYNC = "async"
    "Accepted at once; the result follows (cabinet, getMessages, the sender's callback)."


class ProviderSignature(StrEnum):
    """Whether a back-end's answer must carry the provider's own signature."""

    REQUIRED = "required"
    "An unsigned answer is refused (PROVIDER_SIGNATURE_INVALID)."
    OPTIONAL = "optional"
    "Checked when present; an unsigned answer is signed by the gateway."


@dataclass(frozen=True)
class ServiceSettings:
    endpoint: str = ""
    "Back-end URL (rest: the resource; soap: the WSDL URL); unused for queue."
    connector: ConnectorKind = ConnectorKind.REST
    "Transport to the back-end: rest, soap (submit/status profile, polled) or queue (back-office desks)."
    mode: DeliveryMode = DeliveryMode.SYNC
    "sync: the answer comes within the request; async: accepted at once, result later (cabinet, getMessages)."
    senders: tuple[str, ...] = ()
    "Access rights: senders allowed to call this service (empty: any sender whose own list allows it)."
    retry_attempts: int = 5
    "Attempts for transient failures (connection refused, timeout, 5xx) before giving up."
    retry_base_seconds: float = 0.5
    "First backoff; doubles per attempt, full jitter."
    retry_max_seconds: float = 60.0
    "Backoff cap."
    breaker_failures: int = 5
    "Consecutive transient failures that open this back-end's circuit breaker."
    breaker_reset_seconds: float = 30.0
    "How long the breaker stays open before a trial call."
    poll_seconds: float = 5.0
    "soap: how often a long-running application's status is asked for."
    provider_signature: ProviderSignature = ProviderSignature.OPTIONAL
    "required: the back-end's answer must carry its valid signature; optional: checked when present."
    deadline_working_days: int = 5
    "Regulated term, in Kazakhstan working days from acceptance (the law's default is 5); shown in the cabinet."
    deadline_hours: float = 0.0
    "Hours added to the working days (for steps regulated in minutes or hours)."
    provider_bin: str | None = None
    "A signed answer must come from a certificate with this BIN: the provider, not any trusted key (required with "
    "provider_signature = 'required')."
    bind_results: bool = True
    "The answer must name its application: the applicant's IIN/BIN and the application's id (sessionId) or "
    "messageId, in the elements below; else PROVIDER_RESULT_MISMATCH. Off only for answers that carry neither."
    result_iin_element: str = "iin"
    "Local name of the answer's element holding the applicant's IIN (individual services); it must occur once."
    result_bin_element: str = "bin"
    "Local name of the answer's element holding the applicant's BIN (organisation services); it must occur once."
    result_reference_element: str = "applicationId"
    "Local name of the answer's element naming the application (the gateway's sessionId or the messageId)."
    document_schema: str | None = None
    "Package-relative XSD of the business document, e.g. kazneb/reader-registration.xsd."
    result_schema: str | None = None
    "Package-relative XSD the back-end's answer must match."
    applicant: ApplicantKind = ApplicantKind.INDIVIDUAL
    "Who applies: 'individual' (document IIN = signer's IIN) or 'organisation' (document BIN = signer's BIN)."
    iin_element: str = "iin"
    "Local name of the element holding the applicant's IIN (individual services)."
    bin_element: str = "bin"
    "Local name of the element holding the applicant's BIN (organisation services)."
    required_roles: tuple[str, ...] = ()
    "Organisation services: the signer needs one of these roles (first_head, can_sign, ...); empty: any."
    timeout_seconds: float = 10.0
    "Deadline for one back-end call."
    title: str = ""
    "Human-readable service name."

    def __post_init__(self) -> None:
        # Settings built in code (tests, the demo world) may spell the choices as plain strings.
        for name, kind in (("connector", ConnectorKind), ("mode", DeliveryMode),
                           ("provider_signature", ProviderSignature), ("applicant", ApplicantKind)):
            object.__setattr__(self, name, kind(getattr(self, name)))


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(".egov")
    "Where the embedded Redis keeps its data and the demo its PKI (default: .egov in the working directory)."
    log_level: str = "INFO"
    "Python logging level."
    listen: ListenSettings = field(default_factory=ListenSettings)
    "HTTP listener."
    limits: LimitSettings = field(default_factory=LimitSettings)
    "Input limits."
    redis: RedisSettings = field(default_factory=RedisSettings)
    "Storage."
    trust: TrustSettings = field(default_factory=TrustSettings)
    "Trust anchors for applicants' signatures."
    signer: SignerSettings = field(default_factory=SignerSettings)
    "The gateway's signing key."
    calendar: CalendarSettings = field(default_factory=CalendarSettings)
    "Working days for deadlines: the government's day swaps on top of the holidays package."
    revocation: RevocationSettings = field(default_factory=RevocationSettings)
    "OCSP/CRL checking of applicants' certificates (hard_fail by default)."
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    "Background delivery of async applications: concurrency, leases, attempts before stopping."
    queue: QueueSettings = field(default_factory=QueueSettings)
    "Back-office job queue (Redis Streams): visibility timeout and attempts before dead-lettering."
    cabinet: CabinetSettings = field(default_factory=CabinetSettings)
    "The cabinet: its live event streams (caps per owner and in total, keep-alive) and its access records."
    auth: AuthSettings = field(default_factory=AuthSettings)
    "Sender authentication: bounded password checks, throttling and lock-out of failed attempts."
    senders: dict[str, SenderSettings] = field(default_factory=dict)
    "Systems allowed to send requests, by senderId."
    services: dict[str, ServiceSettings] = field(default_factory=dict)
    "Service registry, by serviceId."

    @property
    def base_url(self) -> str:
        return self.listen.public_url or f"http://{self.listen.host}:{self.listen.port}"


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
    for service_id, service in settings.services.items():
        where = f"services.{service_id}"
        if service.connector is not ConnectorKind.QUEUE and not service.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.endpoint: an http(s) URL is required for the {service.connector} connector")
        if service.connector is not ConnectorKind.REST and service.mode is not DeliveryMode.ASYNC:
            raise ConfigError(f"{where}.mode: the {service.connector} connector is long-running: use 'async'")
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
    if settings.redis.max_connections is not None and settings.redis.max_connections < 1:
        raise ConfigError("redis.max_connections: must be at least 1")
    if not (math.isfinite(settings.redis.pool_timeout_seconds) and settings.redis.pool_timeout_seconds > 0):
        raise ConfigError("redis.pool_timeout_seconds: must be positive")
    for key in ("max_xml_depth", "max_xml_elements", "message_max_age_seconds", "message_max_future_seconds",
                "max_in_flight"):
        if getattr(settings.limits, key) <= 0:
            raise ConfigError(f"limits.{key}: must be positive")
    if not (math.isfinite(settings.revocation.timeout_seconds) and settings.revocation.timeout_seconds > 0):
        raise ConfigError("revocation.timeout_seconds: must be positive")
    for key in ("ocsp_freshness_seconds", "ocsp_max_age_seconds", "crl_max_age_seconds"):
        if getattr(settings.revocation, key) <= 0:
            raise ConfigError(f"revocation.{key}: must be positive")
    if settings.trust.clock_skew_seconds < 0:
        raise ConfigError("trust.clock_skew_seconds: must not be negative")
    _check_cabinet(settings.cabinet)


def _check_cabinet(cabinet: CabinetSettings) -> None:
    for key in ("max_streams", "max_streams_per_owner", "stream_buffer", "retry_after_seconds"):
        if getattr(cabinet, key) < 1:
            raise ConfigError(f"cabinet.{key}: must be at least 1")
    if not (math.isfinite(cabinet.keep_alive_seconds) and cabinet.keep_alive_seconds > 0):
        raise ConfigError("cabinet.keep_alive_seconds: must be positive and finite")
    if cabinet.access_records_max < 1000:
        raise ConfigError("cabinet.access_records_max: must be at least 1000")


def _check_senders(settings: Settings) -> None:
    for sender_id, sender in settings.senders.items():
        if not sender.password_hash.startswith("scrypt$"):
            raise ConfigError(f"senders.{sender_id}.password_hash: expected a hash from "
                              "`egov-gateway hash-password`")
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
    if service.provider_bin is not None and not (len(service.provider_bin) == 12 and service.provider_bin.isascii()
                                                 and service.provider_bin.isdigit()):
        raise ConfigError(f"{where}.provider_bin: a BIN is 12 digits")
    if service.bind_results:
        for key in ("result_iin_element", "result_bin_element", "result_reference_element"):
            if not re.fullmatch(r"[A-Za-z_][\w.-]*", getattr(service, key)):
                raise ConfigError(f"{where}.{key}: the local name of an XML element is expected")


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
