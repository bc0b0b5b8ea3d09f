"""The demo world: the gateway with embedded defaults and the whole simulated outside on loopback.

`egov-gateway demo` runs this. Nothing in the product imports it: the demo uses the product
(:mod:`gateway.shell.serve`, :func:`gateway.shell.app.create_app`) as any deployment would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from gateway.access.senders import hash_password
from gateway.config import (
    LimitSettings,
    ListenSettings,
    MessageLogSettings,
    MonitorSettings,
    SenderAuth,
    SenderSettings,
    ServiceSettings,
    Settings,
    SignerSettings,
    TrustSettings,
)
from gateway.messagelog.commands import REDIS_CLUSTER_FILE, REDIS_URL_FILE
from gateway.shell.app import create_app, load
from gateway.shell.redis_clients import describe
from gateway.shell.redis_cluster import LocalRedisCluster
from gateway.shell.serve import DEFAULT_STATE_DIR, redis_for, site_running, wait_for_stop
from mocks.demo_secrets import (
    DEMO_DESK,
    DEMO_OPERATOR,
    DEMO_PULL_SENDER,
    DEMO_SECRETS,
    DEMO_SENDER,
    DEMO_WSS_SENDER,
    DemoSecrets,
    demo_secrets,
)
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE
from mocks.world.deposit import DEMO_SOFTWARE_CODE, DEPOSIT_SERVICE
from signing.policy import RevocationMode
from signing.revocation import RevocationSettings

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
"Where `egov-gateway submit` and `dlq` look for the gateway unless given --gateway."


def demo_settings(state_dir: Path, pki_dir: Path, *, port: int, urls: dict[str, str],
                  seal_seconds: float = 10.0, callback_url: str | None = None) -> Settings:
    """Embedded defaults for `egov-gateway demo`: test PKI trust, the demo portal, desk and operator senders,
    and the three services of the seed documents on their mock back-ends (``urls`` by back-end name). With a
    ``tsa`` among ``urls`` the message log is on, sealed every 100 records or ``seal_seconds``. The portal's
    callbacks go to ``callback_url`` (a tester's own IAsyncChannelClient), else to the demo's callback mock."""
    from mocks.pki import ensure_pki

    pki = ensure_pki(pki_dir)
    gateway_keys = pki.systems["gateway"]
    revocation_url = urls["revocation"]
    passwords = demo_secrets(state_dir)
    return Settings(
        state_dir=state_dir,
        listen=ListenSettings(port=port),
        limits=LimitSettings(),
        trust=TrustSettings(anchors=pki.trust_anchors, intermediates=pki.intermediates),
        revocation=RevocationSettings(mode=RevocationMode.HARD_FAIL, ocsp_url=f"{revocation_url}/ocsp",
                                      crl_urls=tuple(f"{revocation_url}/crl/{name}.crl"
                                                     for name in ("nca", "root", "gost-nca", "gost-root"))),
        signer=SignerSettings(cert=gateway_keys.cert, key=gateway_keys.key),
        monitor=MonitorSettings(probe_interval_seconds=5.0),  # the demo's OCSP/CRL outages show within seconds
        # Sealed often, so `egov-gateway log verify` soon has segments to check.
        messagelog=MessageLogSettings(enabled=True, tsa_url=f"{urls['tsa']}/tsa", segment_records=100,
                                      segment_seconds=seal_seconds, max_seal_failure_seconds=120.0)
        if "tsa" in urls else MessageLogSettings(),
        senders={
            DEMO_SENDER: SenderSettings(password_hash=hash_password(passwords.portal), cabinet=True,
                                        callback_url=callback_url or portal_callback_url(urls)),
            # No callback_url: its AsyncChannel answers wait for getMessages (the portal's are pushed, then gone).
            DEMO_PULL_SENDER: SenderSettings(password_hash=hash_password(passwords.pull)),
            DEMO_DESK: SenderSettings(password_hash=hash_password(passwords.desk), services=(),
                                      jobs=(FUND_SUBMISSION_SERVICE,)),
            DEMO_OPERATOR: SenderSettings(password_hash=hash_password(passwords.operator), services=(),
                                          operator=True),
            # SOAP only, signed with WS-Security by the portal's system certificate (`submit --ws-security portal`).
            DEMO_WSS_SENDER: SenderSettings(auth=(SenderAuth.WS_SECURITY,), ws_security_bin=pki.system_bins["portal"]),
        },
        services={
            READER_TICKET_SERVICE: ServiceSettings(
                endpoint=f"{urls['library']}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                result_schema="kazneb/reader-ticket.xsd",
                title="KazNEB: single electronic reader ticket",
            ),
            FUND_SUBMISSION_SERVICE: fund_submission_service(pki.system_bins.get("library")),
            ELICENSE_SERVICE: elicense_service(urls["elicense"], poll_seconds=1.0,
                                               provider_bin=pki.system_bins.get("elicense"), ws_security=True),
            DEPOSIT_SERVICE: deposit_service(urls["deposit"], provider_bin=pki.system_bins.get("operator")),
        },
    )


def portal_callback_url(urls: dict[str, str]) -> str:
    """The demo's own IAsyncChannelClient (the portal's callback mock), where the portal's callbacks go by default."""
    return f"{urls['callback']}/shep/client"


def fund_submission_service(provider_bin: str | None = None) -> ServiceSettings:
    """KazNEB fund submission: an organisation applies (first head or can-sign); the library commission's
    back-office desk takes it from the queue and answers with the commission's signed decision."""
    return ServiceSettings(
        connector="queue",
        mode="async",
        document_schema="kazneb/fund-submission.xsd",
        result_schema="kazneb/fund-decision.xsd",
        applicant="organisation",
        required_roles=("first_head", "can_sign"),
        provider_signature="required",
        provider_bin=provider_bin,
        deadline_working_days=10,  # §10: included within 10 working days of the commission's positive decision
        title="KazNEB: submission of objects to the national e-library fund",
    )


def deposit_service(operator_url: str, *, provider_bin: str | None = None,
                    poll_seconds: float = 1.0) -> ServiceSettings:
    """Software deposit (rules No. 146/НҚ): a state body's first head or can-sign employee applies with the act's
    tables; the package, uploaded before, is streamed to the operator after the application; polled for the
    operator's steps until its signed act and agreement or reasoned refusal."""
    return ServiceSettings(
        connector="package",
        mode="async",
        endpoint=f"{operator_url}/api/v1/deposits",
        document_schema="deposit/deposit-application.xsd",
        result_schema="deposit/deposit-result.xsd",
        applicant="organisation",
        required_roles=("first_head", "can_sign"),
        provider_signature="required",
        provider_bin=provider_bin,
        package_element="packageInfo",
        poll_seconds=poll_seconds,
        timeout_seconds=30.0,
        retry_base_seconds=0.2,
        deadline_working_days=11,  # 3 (repository, §8) + 3 (taking the deposit, §9) + 5 (checking the act, §15)
        deadline_hours=10 / 60,  # signing the act and the agreement (§17)
        title="Software deposit with the e-government operator",
    )


def elicense_service(elicense_url: str, *, poll_seconds: float = 5.0,
                     provider_bin: str | None = None, ws_security: bool = False) -> ServiceSettings:
    """E-licensing: certificate for the temporary export of cultural values (SOAP, long-running, polled);
    ``ws_security`` signs the calls with the gateway's key (the demo's provider requires it)."""
    return ServiceSettings(
        connector="soap",
        mode="async",
        endpoint=f"{elicense_url}/soap?wsdl",
        document_schema="elicense/export-application.xsd",
        result_schema="elicense/export-result.xsd",
        provider_signature="required",
        provider_bin=provider_bin,
        poll_seconds=poll_seconds,
        deadline_working_days=7,  # 2 + 5 working days of the regulation, plus the steps counted in hours
        deadline_hours=2 + 35 / 60,
        retry_base_seconds=0.2,
        title="E-licensing: certificate for the temporary export of cultural values",
        ws_security=ws_security,
    )


DEMO_PORTS = {"gateway": 8080, "portal": 8700, "library": 8710, "elicense": 8720, "desk": 8730, "callback": 8740,
              "revocation": 8790, "tsa": 8750, "deposit": 8760}
"Default ports: ``portal`` is the egov portal's web site, ``callback`` the portal's SHEP callback endpoint."
DEFAULT_DESK_CONTROL = "http://127.0.0.1:8730"
"Where `python -m mocks.backoffice pending|approve|refuse` look for the manual desk unless given --control."


def world_dir(state_dir: Path) -> Path:
    """Where the mocks of the demo's world keep their state between runs."""
    return state_dir / "world"


def clear_world(state_dir: Path) -> None:
    """``demo --fresh``: forget the world's state, the gateway's Redis data and its message log (the archive and
    the Redis tail belong together); the test PKI stays."""
    for directory in (world_dir(state_dir), state_dir / "redis", state_dir / "redis-cluster", state_dir / "messagelog"):
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def demo_storage(settings: Settings, primaries: int) -> Iterator[tuple[Settings, str]]:
    """The settings pointed at the demo's Redis and its URL: the embedded server, or with ``primaries`` > 0 a
    local cluster (noted under ``<state_dir>/redis`` for ``egov-gateway log``, like the embedded server's URL)."""
    if not primaries:
        with redis_for(settings) as redis_url:
            yield settings, redis_url
        return
    with LocalRedisCluster(settings.state_dir / "redis-cluster", primaries=primaries, replicas=1,
                           appendfsync=settings.redis.appendfsync) as cluster:
        noted = settings.state_dir / REDIS_URL_FILE
        noted.parent.mkdir(parents=True, exist_ok=True)
        noted.write_text(cluster.url + "\n", encoding="utf-8")
        (settings.state_dir / REDIS_CLUSTER_FILE).write_text("\n".join(map(str, cluster.ports)) + "\n",
                                                             encoding="utf-8")
        try:
            yield replace(settings, redis=replace(settings.redis, url=cluster.url, cluster=True)), cluster.url
        finally:
            (settings.state_dir / REDIS_CLUSTER_FILE).unlink(missing_ok=True)


async def run_demo(state_dir: Path, *, ports: dict[str, int], elicense_pace: float = 50_000.0,
                   manual_desk: bool = False, fresh: bool = False, seal_seconds: float = 10.0,
                   redis_cluster: int = 0, callback_url: str | None = None) -> None:
    """The gateway and its whole outside world on loopback, until Ctrl-C: embedded Redis, the test PKI with its
    OCSP/CRL service, the KazNEB library, the E-licensing provider (working ``elicense_pace`` times faster than
    its regulated deadlines, in real time), the portal's callback endpoint, and the library commission's desk.

    Every mock keeps its state under ``<state_dir>/world`` and the gateway in Redis under ``<state_dir>/redis``,
    so a restart continues the same world; ``fresh`` clears both first (not the PKI). ``redis_cluster`` N > 0:
    the gateway's state on a local Redis Cluster of N primaries and N replicas under ``<state_dir>/redis-cluster``.
    ``callback_url``: where the portal sender's callbacks go instead of the demo's callback endpoint.
    On Ctrl-C the parts stop in reverse order: the desk, the portal, the gateway (its workers), the mocks, then
    Redis."""
    from mocks.backoffice.cli import control_app
    from mocks.backoffice.worker import CommissionDesk, WorkerSettings
    from mocks.deposit import create_deposit_app
    from mocks.elicense import create_elicense_app
    from mocks.elicense.clock import SimulatedClock
    from mocks.elicense.wss import gateway_calls_only
    from mocks.library import create_library_app
    from mocks.pki import ensure_pki
    from mocks.pki.revocation import create_revocation_app
    from mocks.pki.tsa import create_tsa_app
    from mocks.portal.callback_server import create_callback_app
    from mocks.portal.web import create_portal_app
    from mocks.statefile import StateFile
    from signing import gost
    from signing.signer import DocumentSigner, SigningKey, load_pem_signing_key

    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    if fresh:
        clear_world(state_dir)
    pki = ensure_pki(state_dir / "pki")
    world_state = world_dir(state_dir)

    def signer(name: str) -> DocumentSigner:
        return DocumentSigner(SigningKey.from_pem(pki.systems[name].cert, pki.systems[name].key))

    def gost_signer(name: str) -> DocumentSigner:
        """The system's GOST 34.10-2015 key, as NCA issues organisations; RSA where the GOST library is missing."""
        keys = pki.gost_systems.get(name)
        if keys is None or not gost.available():
            return signer(name)
        return DocumentSigner(load_pem_signing_key(keys.cert, keys.key))

    settings = demo_settings(state_dir, pki.root, port=ports["gateway"], urls=urls, seal_seconds=seal_seconds,
                             callback_url=callback_url)
    passwords = demo_secrets(state_dir)
    loaded = load(settings)
    world = [
        (create_revocation_app(pki, store=StateFile(world_state / "revocations.json")), ports["revocation"]),
        (create_library_app(signer=gost_signer("library"), store=StateFile(world_state / "library.json")),
         ports["library"]),
        (create_elicense_app(signer=signer("elicense"), clock=SimulatedClock(datetime.now(UTC), scale=1.0),
                             pace=elicense_pace, store=StateFile(world_state / "elicense.json"),
                             ws_security=gateway_calls_only(pki)), ports["elicense"]),
        (create_callback_app(), ports["callback"]),
        (create_tsa_app(pki), ports["tsa"]),
        (create_deposit_app(storage=world_state / "deposit", signer=signer("operator"), pace=elicense_pace,
                            software={DEMO_SOFTWARE_CODE: "egov-gateway"}), ports["deposit"]),
    ]
    desk_settings = WorkerSettings(gateway_url=urls["gateway"], library_url=urls["library"], sender=DEMO_DESK,
                                   password=passwords.desk, manual=manual_desk, poll_wait=5)
    desk_store = StateFile(world_state / "desk.json")
    with demo_storage(settings, redis_cluster) as (settings, redis_url):
        app = create_app(settings, redis_url=redis_url, loaded=loaded)
        async with contextlib.AsyncExitStack() as stack:
            for mock, port in world:
                await stack.enter_async_context(site_running(mock, "127.0.0.1", port))
            await stack.enter_async_context(site_running(app, settings.listen.host, settings.listen.port))
            portal = create_portal_app(pki=pki, gateway_url=urls["gateway"], sender=DEMO_SENDER,
                                       password=passwords.portal)
            await stack.enter_async_context(site_running(portal, "127.0.0.1", ports["portal"]))
            desk = await stack.enter_async_context(CommissionDesk(desk_settings, store=desk_store))
            if manual_desk:  # `python -m mocks.backoffice pending|approve|refuse` talk to this
                await stack.enter_async_context(site_running(control_app(desk), "127.0.0.1", ports["desk"]))
            stop = asyncio.Event()
            desk_task = asyncio.create_task(desk.run_forever(stop))
            _print_banner(settings, redis_url, urls, passwords, manual_desk=manual_desk,
                          elicense_pace=elicense_pace)
            await wait_for_stop()
            # The desk first (it calls the gateway), then the stack unwinds: portal, gateway, mocks; Redis last.
            stop.set()
            _, running = await asyncio.wait({desk_task}, timeout=10)
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _message_log_lines(settings: Settings, urls: dict[str, str], state: str) -> str:
    """The banner's lines on the TSA and the message log (none when the log is off)."""
    if not settings.messagelog.enabled:
        return ""
    return f"""  Time stamps (TSA)  {urls['tsa']}/tsa   (RFC 3161; the message log's seals)
  Message log        {settings.messagelog.archive(settings.state_dir)}   (sealed every \
{settings.messagelog.segment_seconds:g} s)
                     .venv/bin/egov-gateway log verify{state}
                     .venv/bin/egov-gateway log show --message-id <messageId>{state}
"""


def _sender_lines(settings: Settings, urls: dict[str, str]) -> str:
    """The banner's lines on the SOAP senders and where the portal's callbacks go."""
    pushed_to = settings.senders[DEMO_SENDER].callback_url
    if pushed_to == portal_callback_url(urls):
        callbacks = f"{urls['callback']}/received   (the portal's IAsyncChannelClient)"
    else:
        callbacks = f"pushed to {pushed_to}   (--callback-url; {urls['callback']} gets none)"
    return f"""  Portal callbacks   {callbacks}
  SOAP senders       {DEMO_SENDER} (password, callbacks as above), {DEMO_PULL_SENDER} (password, no callbacks:
                     answers by getMessages), {DEMO_WSS_SENDER} (WS-Security by the test PKI's portal system
                     certificate, no password)
"""


def _print_banner(settings: Settings, redis_url: str, urls: dict[str, str], passwords: DemoSecrets, *,
                  manual_desk: bool = False, elicense_pace: float = 50_000.0) -> None:
    base = settings.base_url
    # The tools' defaults reach the demo on its default ports and state dir; otherwise every hint says where.
    gateway = "" if base == DEFAULT_GATEWAY_URL else f" --gateway {base}"
    custom_state = settings.state_dir != DEFAULT_STATE_DIR.resolve()
    state = f" --state-dir {settings.state_dir}" if custom_state else ""
    people = f" --dir {settings.state_dir / 'pki'}" if custom_state else ""
    dlq = f"EGOV_OPERATOR_PASSWORD={passwords.operator} .venv/bin/egov-gateway dlq{gateway}"  # sender: operator
    submit = f".venv/bin/egov-gateway submit{gateway}{state}"
    control = "" if urls["desk"] == DEFAULT_DESK_CONTROL else f" --control {urls['desk']}"
    desk = (f"the commission waits for you: .venv/bin/python -m mocks.backoffice pending{control}, "
            f"then approve ENTRY{control} or refuse ENTRY --reason TEXT{control}" if manual_desk
            else "the commission desk takes its queue and decides by itself")
    print(f"""
egov-gateway demo is running (Ctrl-C stops everything; the world's state is kept in {settings.state_dir},
start with --fresh to begin a clean world)

  >>> Open the egov portal in a browser: {urls['portal']}/   (қаз / рус / eng)

  SOAP SyncChannel   {base}/shep/sync      WSDL: {base}/shep/sync?wsdl
  SOAP AsyncChannel  {base}/shep/async     WSDL: {base}/shep/async?wsdl
  REST intake        {base}/api/v1/requests
  Services           {base}/api/v1/services
  Cabinet API        {base}/api/v1/cabinet/<IIN or BIN>/applications   (HTTP Basic {DEMO_SENDER}:{passwords.portal})
  Operator           {base}/api/v1/admin/dead-letters   (HTTP Basic {DEMO_OPERATOR}:{passwords.operator})
  Health             {base}/health/live   {base}/health/ready   (details: HTTP Basic as the operator)
  Metrics            {base}/metrics   (Prometheus text format; HTTP Basic {DEMO_OPERATOR}:{passwords.operator})
  KazNEB library     {urls['library']}
  Commission desk    {desk}
  E-licensing (SOAP) {urls['elicense']}/soap?wsdl   (real dates; each step takes 1/{elicense_pace:,.0f} of the time
                     to its regulated deadline)
  Deposit operator   {urls['deposit']}   (software deposit; its register of software has {DEMO_SOFTWARE_CODE})
{_sender_lines(settings, urls)}  OCSP / CRL (PKI)   {urls['revocation']}/ocsp   {urls['revocation']}/crl/nca.crl
                     revoke a certificate: POST {urls['revocation']}/_control/revoke {{"person": "<handle>"}}
{_message_log_lines(settings, urls, state)}  Redis              {describe(redis_url, settings)}
  Test PKI           {settings.state_dir / 'pki'}  (people: .venv/bin/egov-gateway pki list{people})
  Passwords          {settings.state_dir / DEMO_SECRETS}  (made at the first start; one sender's:
                     .venv/bin/egov-gateway demo --print-password operator{state})

Try, in another terminal:
  {submit} --as aigerim --service {READER_TICKET_SERVICE}
  {submit} --as kitap-head --service {FUND_SUBMISSION_SERVICE} --wait
  {submit} --as daniyar --service {ELICENSE_SERVICE} --wait
  {submit} --as saule --service {READER_TICKET_SERVICE} --channel async --wait
  .venv/bin/egov-gateway deposit pack signing --name egov-signing --version 1.0 --out /tmp/signing.tar.gz
  {submit} --as kitap-head --service {DEPOSIT_SERVICE} --package /tmp/signing.tar.gz --wait

Dead letters and stopped applications, as the operator:
  {dlq} list
  {dlq} replay --session <sessionId>
""", flush=True)
