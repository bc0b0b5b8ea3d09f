"""The settings: frozen dataclasses, one per table of the TOML file, with every default written here.

Each field's docstring is the setting's documentation; :mod:`gateway.config.loading` maps a file onto them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.queue import QueueSettings
from gateway.config.retention import RetentionSettings
from signing.applicant import ApplicantKind
from signing.revocation import RevocationSettings

EVENT_LOOPS = ("uvloop", "asyncio")
"The event loops `serve` can run on (``listen.event_loop``)."


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    "Address the gateway binds to."
    port: int = 8080
    "TCP port."
    public_url: str | None = None
    "Base URL written into served WSDLs; defaults to http://host:port."
    header_timeout_seconds: float = 10.0
    """A connection that has not sent a complete request head this long after it opened (or after its last
    answer, for a kept-alive one) is closed: slowloris connections do not pile up."""
    keepalive_timeout_seconds: float = 15.0
    "An idle kept-alive connection is closed after this long."
    max_connections: int | None = None
    """Open client connections per process; the next one is answered with a minimal 503 (Retry-After) and
    closed. Unset: the open-files limit (RLIMIT_NOFILE) less a reserve for Redis, back-ends and files, so the
    process never runs out of descriptors (and asyncio's accept loop never fails)."""
    error_log_seconds: float = 60.0
    "The listener's repeated errors (accept() out of descriptors, refused connections) are logged once this often."
    event_loop: str = "asyncio"
    """The event loop `serve` runs on: "asyncio" (the standard library's) or "uvloop" (libuv, about 6–9% less CPU
    per request in `make bench`). Caveat: with the open-files limit exhausted, uvloop resets connections over the
    cap instead of letting asyncio's accept loop answer them the minimal 503 (docs/recovery.md)."""


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
    "Requests processed at once per process (the hard cap); the next gets 503 GATEWAY_OVERLOADED with Retry-After."
    queue_delay_target_ms: float = 5.0
    """Acceptable queueing delay: how late the event loop may run (a probe timer's lateness, sampled ten times per
    ``queue_delay_interval_ms``) before the gateway counts itself overloaded (gateway/access/admission.py)."""
    queue_delay_interval_ms: float = 25.0
    """How long the delay must stay above the target before requests beyond ``min_in_flight`` are refused (503
    GATEWAY_OVERLOADED, Retry-After), and below it before they are admitted again."""
    min_in_flight: int = 16
    "The floor: while fewer requests are in flight, a new one is admitted however late the loop is."
    overload_retry_after_seconds: int = 1
    "Retry-After of a request refused with GATEWAY_OVERLOADED by the in-flight cap or the queueing delay."
    refuse_at_door: bool = True
    """While requests are shed, refuse a REST submission from its request line, before aiohttp parses it (about 0.1
    ms of CPU against 0.26 at the gate; the connection is kept when the request was whole): gateway/shell/door.py."""


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
    appendfsync: str = "everysec"
    """The embedded Redis's fsync policy: ``everysec`` (a power loss may cost the last second of acknowledged
    writes) or ``always`` (fsync before every answer: nothing acknowledged is lost, at a cost; docs/recovery.md)."""
    require_aof: bool = True
    """Refuse acknowledgements (503 GATEWAY_STORAGE_NOT_DURABLE) when the Redis server's append-only file is off.
    A failed append-only write (full disk, I/O error) is refused whatever this says."""
    cluster: bool = False
    """``url`` names one node of a Redis Cluster (the client learns the rest and follows failovers); also the
    environment switch ``REDIS_CLUSTER=1`` beside ``REDIS_URL``. Every key scheme keeps atomic work in one slot
    (docs/storage.md)."""
    sentinel_urls: tuple[str, ...] = ()
    """Sentinels (``redis://host:port``) watching a single primary with replicas: the gateway asks them for the
    current primary, also after a failover. Excludes ``cluster``; needs ``sentinel_master``; ``url`` is unused."""
    sentinel_master: str | None = None
    "The name the Sentinels know the primary by (``sentinel monitor <name> ...``)."
    min_replica_acks: int = 0
    """Replicas that must have an application before it is acknowledged (Redis ``WAIT``, on every primary the
    create wrote to): with 1, a primary that dies right after an acknowledgement loses nothing. 0: no wait
    (replication stays asynchronous). Fewer within ``replica_ack_timeout_ms``: 503
    GATEWAY_STORAGE_NOT_REPLICATED with Retry-After; the repeated messageId is answered once replicas have it."""
    replica_ack_timeout_ms: int = 500
    "How long an acknowledgement waits for ``min_replica_acks`` replicas (milliseconds; positive when they are)."

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
    receipt_batches: bool = False
    "Sign receipts in batches under one Merkle root (group commit); each receipt carries its inclusion path."


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
class MessageLogSettings:
    """The tamper-evident message log (docs/messagelog.md): every request, answer, receipt, provider answer,
    result, result delivered and cabinet read appended to a hash chain, sealed (signed by the gateway, timestamped
    by a TSA) every ``segment_records`` records or ``segment_seconds`` seconds and archived as one file per segment."""

    enabled: bool = False
    "Keep the message log; needs ``tsa_url``. When on, intake refuses (503) once sealing has failed too long."
    tsa_url: str | None = None
    "RFC 3161 time-stamping authority (HTTP POST of application/timestamp-query), e.g. NCA's tsp.pki.gov.kz."
    segment_records: int = 10_000
    "Most records sealed under one signature and timestamp (X-Road: up to 10,000 per timestamp)."
    segment_seconds: float = 60.0
    "A record waits at most about this long before its segment is sealed (X-Road: every 60 s)."
    archive_dir: Path | None = None
    "Where sealed segments are written, one file each (default: ``<state_dir>/messagelog``)."
    store_bodies: bool = False
    "Also keep each part's bytes, encrypted with AES-256-GCM under the key in ``body_key_env`` (else hashes only)."
    body_key_env: str = "EGOV_MESSAGELOG_KEY"
    "Environment variable holding the body key: 32 bytes, base64 (keys never live in the file)."
    max_seal_failure_seconds: float = 600.0
    """How long records may stay unsealed past ``segment_seconds`` (the TSA down, no sealer running) before
    intake refuses new requests with 503 GATEWAY_MESSAGELOG_UNSEALED rather than accept what it cannot prove."""
    tsa_timeout_seconds: float = 10.0
    "Deadline of one time-stamping request."
    check_seconds: float = 1.0
    "How often the sealer looks for work and each process refreshes its cached seal status."

    def archive(self, state_dir: Path) -> Path:
        """The archive directory in force."""
        return self.archive_dir if self.archive_dir is not None else state_dir / "messagelog"


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


class SenderAuth(StrEnum):
    """A way a sender proves who it is on SOAP (the REST channel and the job API take the password only)."""

    PASSWORD = "password"
    "senderId + password in the request (scrypt hash in ``password_hash``)."
    WS_SECURITY = "ws-security"
    "A WS-Security signature over the Body and a Timestamp by the system certificate with ``ws_security_bin``."


@dataclass(frozen=True)
class WsSecuritySettings:
    """WS-Security on the SOAP intakes (docs/ws-security.md). The certificate path, revocation and algorithms
    follow ``[trust]``, ``[revocation]`` and the documents' policy."""

    endpoints: tuple[str, ...] = ("sync", "async")
    """SOAP endpoints (sync = /shep/sync, async = /shep/async) that process wsse:Security; elsewhere a
    mustUnderstand one is refused with the SOAP MustUnderstand fault."""
    max_lifetime_seconds: int = 300
    """Longest Timestamp lifetime (Expires − Created) accepted; a Created older than this plus the clock skew is
    expired. Seen signatures are remembered (Redis) this long plus the skew, to refuse replays."""
    max_concurrent_checks: int = 2
    "Signature checks running at once per process (worker threads, off the event loop)."
    queue_seconds: float = 1.0
    "How long a check waits for a free slot; then 503 GATEWAY_OVERLOADED (Retry-After)."
    actor: str | None = None
    "SOAP 1.1 actor URI of this gateway: a Security header for another actor is not ours (unset: no actor)."


@dataclass(frozen=True)
class SenderSettings:
    password_hash: str = ""
    "scrypt hash made by `egov-gateway hash-password` (required when ``auth`` has 'password')."
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
    auth: tuple[SenderAuth, ...] = (SenderAuth.PASSWORD,)
    "How the sender authenticates on SOAP: ['password'], ['ws-security'] or both (each one listed is required)."
    ws_security_bin: str | None = None
    "With 'ws-security': the BIN (OU=BIN…) of the system certificate that must sign the sender's requests."

    def __post_init__(self) -> None:
        object.__setattr__(self, "auth", tuple(SenderAuth(a) for a in self.auth))


class ConnectorKind(StrEnum):
    """How the gateway reaches a service's back-end."""

    REST = "rest"
    "POST the document, the answer comes back in the response."
    SOAP = "soap"
    "Submit/status profile (E-licensing): submit once, then poll the provider's steps."
    QUEUE = "queue"
    "A job on the back-office queue; desks post the answer through the job API."
    PACKAGE = "package"
    "REST with a package: POST the document, stream the uploaded package after it (PUT), then poll the steps."


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
    max_document_bytes: int | None = None
    """The largest business document the back-end accepts (bytes of the verified document as it is stored and sent,
    without the applicant's ds:Signature); larger is refused with CLIENT_DOCUMENT_TOO_LARGE (413) after the
    signature is verified and before anything is stored or acknowledged. None: only ``limits.max_body_bytes``."""
    ws_security: bool = False
    "soap: sign every call to the provider with WS-Security (the gateway's key; docs/ws-security.md)."
    title: str = ""
    "Human-readable service name."
    package_element: str | None = None
    """Local name of the document's element describing a package uploaded to ``/api/v1/uploads`` (its ``sha256``
    child names the upload). Set: at intake the package must be a complete upload of the same sender
    (else DEPOSIT_PACKAGE_MISSING), and the package connector streams it to the back-end after the document."""

    def __post_init__(self) -> None:
        # Settings built in code (tests, the demo world) may spell the choices as plain strings.
        for name, kind in (("connector", ConnectorKind), ("mode", DeliveryMode),
                           ("provider_signature", ProviderSignature), ("applicant", ApplicantKind)):
            object.__setattr__(self, name, kind(getattr(self, name)))


@dataclass(frozen=True)
class ShepSettings:
    """How SHEP's SOAP intakes read what real clients send."""

    local_time_zone: str = "Asia/Almaty"
    """IANA zone of a ``messageDate`` (or REST ``messageDate``) sent without an offset: Kazakh clients send local
    time. Asia/Almaty is UTC+5, the one zone of Kazakhstan since 1 March 2024 (tzdata 2024a or later)."""

    def zone(self) -> ZoneInfo:
        """The zone (``zoneinfo``; the ``tzdata`` package stands in where the system has none)."""
        return ZoneInfo(self.local_time_zone)


UPLOAD_LOCK_SECONDS = 30
"Lifetime of an upload's write lock in Redis; its writer renews it while bytes arrive (docs/uploads.md)."


@dataclass(frozen=True)
class UploadSettings:
    """Packages uploaded over tus (``/api/v1/uploads``, see docs/uploads.md): where they are kept, how big, how long."""

    directory: Path | None = None
    "Where package files are written; unset: ``<state_dir>/packages``."
    max_package_bytes: int = 8 * 1024**3
    "Largest ``Upload-Length`` accepted (Tus-Max-Size); larger gets 413 UPLOAD_TOO_LARGE."
    incomplete_ttl_seconds: int = 86_400
    """An upload not completed this long after its last PATCH (or its creation) expires: its record vanishes
    from Redis and the sweep deletes its file."""
    sweep_interval_seconds: float = 600.0
    "How often each process deletes the files of expired or discarded uploads under ``directory``."
    write_buffer_bytes: int = 4 * 1024**2
    """Bytes gathered from the socket before one write (and hash update) in a worker thread; two such buffers
    per running PATCH are the upload's memory."""
    max_concurrent_patches: int = 16
    "PATCH requests streaming at once per process; the next gets 503 GATEWAY_OVERLOADED with Retry-After."
    idle_timeout_seconds: float = 20.0
    """A PATCH whose body sends nothing for this long is ended, keeping what arrived (shorter than the write
    lock's 30 s, UPLOAD_LOCK_SECONDS, so a stalled request never outlives its lock)."""
    fsync: bool = True
    "Flush a package to disk (fsync) before its upload is reported complete."
    lock_wait_seconds: float = 5.0
    """A HEAD, PATCH or DELETE that finds another PATCH of the same upload still running (say, a cut connection
    not yet noticed) waits this long for it to end before PATCH and DELETE get 423 UPLOAD_LOCKED."""

    def path_under(self, state_dir: Path) -> Path:
        """The package directory: ``directory`` or ``<state_dir>/packages``."""
        return self.directory or state_dir / "packages"


@dataclass(frozen=True)
class MonitorSettings:
    """Metrics and health checks (docs/monitoring.md)."""

    listen: str | None = None
    """A separate ``host:port`` serving ``/metrics`` and ``/health/*`` without credentials (bind it to a private
    address); None: they are served on the main listener only, ``/metrics`` and check details to operators."""
    anchor_min_days: int = 30
    "``/health/ready`` fails while a trust anchor or the gateway's own certificate expires within this many days."
    expiry_warning_days: int = 60
    "A trust anchor, intermediate CA, the gateway's certificate or a CRL expiring within this many days is warned of."
    probe_interval_seconds: float = 30.0
    "A probe of the revocation sources (OCSP responder, CRLs) is reused this long: never one per readiness check."
    probe_timeout_seconds: float = 2.0
    "Limit for one probe of one source, and for the Redis readings of a scrape."
    gauge_cache_seconds: float = 2.0
    "Scrape-time gauges read from Redis (outbox, queues, dead letters) are reused this long."


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
    messagelog: MessageLogSettings = field(default_factory=MessageLogSettings)
    "The tamper-evident message log: hash chain, seals (signature + RFC 3161 timestamp), archive files."
    ws_security: WsSecuritySettings = field(default_factory=WsSecuritySettings)
    "WS-Security on the SOAP intakes: endpoints, Timestamp lifetime, bounded checks."
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    "Metrics (``/metrics``) and health checks (``/health/live``, ``/health/ready``)."
    senders: dict[str, SenderSettings] = field(default_factory=dict)
    "Systems allowed to send requests, by senderId."
    services: dict[str, ServiceSettings] = field(default_factory=dict)
    "Service registry, by serviceId."
    shep: ShepSettings = field(default_factory=ShepSettings)
    "SHEP intake tolerance: the time zone of dates sent without an offset."
    uploads: UploadSettings = field(default_factory=UploadSettings)
    "Packages uploaded over tus: directory, size limit, expiry of incomplete uploads."
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    "How long finished applications stay in Redis before the archive takes them (docs/storage.md)."

    @property
    def base_url(self) -> str:
        return self.listen.public_url or f"http://{self.listen.host}:{self.listen.port}"
