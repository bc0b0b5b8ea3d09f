"""The KazNEB standing commission's back-office desk: takes queued fund submissions from the gateway.

Per job of ``kazneb.fund-submission``: (1) claim it (long poll; every later call on the job presents the
claim's lease token); (2) register the submission with the library under the application's session id (the
library's decision names it, so the gateway can match the decision to its application) and post the progress
step ``registered``; (3) the commission decides, step ``commission``;
(4) the library records the decision and answers a signed ``FundDecision``; (5) post the result:
``completed`` for include, ``refused`` with the reason for not-include. The commission decides
automatically (five members, all for inclusion unless an object is a copyright-protected copy offered
for open full download: then four of five against), or in manual mode a person decides with
:meth:`CommissionDesk.decide` while the loop goes on taking jobs.

Any failure on the way is reported with ``fail`` and a reason, including the library refusing the
submission (e.g. ``LIB_DUPLICATE_OBJECT``: without a signed decision there is nothing to refuse
with), so it ends among the dead letters for an operator. The loop never stops on an error. Steps
done are remembered per session id (``mocks.backoffice.memory``, on disk too when given a store): a job
that comes back to this desk, even after a restart, is not registered twice.
Logs carry masked IIN/BIN only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from lxml import etree

from gateway.supervise import STORAGE_ERRORS, FailureBurst, SupervisorSettings, sleep_unless, supervise
from mocks.backoffice.commission import (
    COMMISSION_MEMBERS,
    MAX_NOTE,
    CommissionVote,
    FundObjectInfo,
    auto_vote,
    manual_vote,
    read_objects,
)
from mocks.backoffice.memory import DeskMemory, Memory, Progress
from mocks.library.forms import parse_fund_decision, parse_fund_receipt
from mocks.statefile import StateFile
from signing.idnumbers import mask_id, mask_ids

log = logging.getLogger("egov.backoffice")

SERVICE_ID = "kazneb.fund-submission"
LEASE_HEADER = "X-Lease-Token"
"How a job's lease token goes back to the gateway (the desk never imports the gateway's job API)."
_XML = {"Content-Type": "application/xml; charset=utf-8"}


@dataclass(frozen=True)
class WorkerSettings:
    """Where the desk works and how it polls."""

    gateway_url: str
    library_url: str
    "Base URLs of the gateway and the KazNEB library, e.g. http://127.0.0.1:8700, http://127.0.0.1:8710."
    sender: str
    "The desk's senderId at the gateway (a sender configured with jobs for the service)."
    password: str = field(repr=False)
    service_id: str = SERVICE_ID
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    "Consumer name at the gateway's queue, unique per running desk (default ``host:pid``)."
    manual: bool = False
    "True: jobs wait for decide(); False: the commission decides automatically."
    poll_wait: int = 10
    "Long-poll seconds per claim, 0..25."
    idle_pause: float = 1.0
    "Pause after an empty poll; errors back off from this up to max_pause."
    max_pause: float = 30.0
    timeout: float = 30.0
    "Seconds for one HTTP call (the long poll gets poll_wait on top)."

    def __post_init__(self) -> None:
        if not 0 <= self.poll_wait <= 25:
            raise ValueError("poll_wait must be 0..25 seconds")
        for name in ("gateway_url", "library_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http(s) URL, got {url!r}")
            object.__setattr__(self, name, url.rstrip("/"))


@dataclass(frozen=True)
class Job:
    """One delivery of a queued application, as the gateway's claim answers it (applicant_*: never logged)."""

    entry_id: str
    session_id: str
    message_id: str
    service_id: str
    attempt: int
    document: str
    "The verified business document (FundSubmission XML, without the applicant's signature)."
    applicant_iin: str = field(repr=False)
    applicant_bin: str | None = field(repr=False)
    applicant_name: str | None = field(repr=False)
    organisation: str | None
    enqueued_at: str | None
    lease: str = field(default="", repr=False)
    "The claim's lease token: sent with every later call on this job (the gateway refuses the job without it)."

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        applicant = data.get("applicant") or {}
        if not isinstance(data.get("document"), str) or not isinstance(applicant, dict):
            raise GatewayTrouble("the gateway's claim answer has no document or applicant")
        try:
            return cls(
                entry_id=str(data["entryId"]), session_id=str(data["sessionId"]), message_id=str(data["messageId"]),
                service_id=str(data["serviceId"]), attempt=int(data.get("attempt") or 1), document=data["document"],
                applicant_iin=str(applicant.get("iin") or ""), applicant_bin=applicant.get("bin"),
                applicant_name=applicant.get("name"), organisation=applicant.get("organisation"),
                enqueued_at=data.get("enqueuedAt"), lease=str(data.get("leaseToken") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayTrouble(f"the gateway's claim answer is not a job: {str(exc) or type(exc).__name__}") from None

    def describe(self) -> str:
        """One line for logs: masked identifiers, the organisation, never a person's name."""
        who = f"BIN {mask_id(self.applicant_bin)}" if self.applicant_bin else "no BIN"
        org = f" ({self.organisation})" if self.organisation else ""
        return f"{self.entry_id} attempt {self.attempt}: {who}{org}, signed by IIN {mask_id(self.applicant_iin)}"


HEARTBEAT_SECONDS = 10.0
"Manual mode: how often parked jobs are kept (well within the gateway's visibility timeout)."


@dataclass(frozen=True)
class PendingDecision:
    """A registered submission waiting for a person's decision (manual mode)."""

    job: Job
    submission_number: str
    objects: tuple[FundObjectInfo, ...]
    suggestion: CommissionVote
    "What the automatic commission would decide."
    since: datetime


class DeskError(Exception):
    """A step failed; the message is the reason reported to the gateway (no personal data)."""


class GatewayTrouble(DeskError):
    """The gateway could not be asked (unreachable, refused the desk, answered nonsense)."""


class JobGone(Exception):
    """The gateway no longer holds this job for the desk (unknown or already finished): nothing to report."""


async def _problem(response: aiohttp.ClientResponse) -> str:
    """``CODE: detail`` of a problem answer (or the status and a bit of the body), IDs masked."""
    try:
        body = await response.json(content_type=None)
        text = f"{body.get('code') or response.status}: {body.get('detail') or body.get('title') or ''}"
    except (ValueError, AttributeError, aiohttp.ClientError):
        text = f"HTTP {response.status}"
    return mask_ids(text.strip().rstrip(":"))


class CommissionDesk:
    """The desk: one shared aiohttp session for the gateway and the library."""

    def __init__(self, settings: WorkerSettings, *, session: aiohttp.ClientSession | None = None,
                 store: StateFile | None = None, progress: Progress | None = None) -> None:
        """``progress`` keeps what the desk did per application (Redis: shared by every desk); without it,
        this process remembers, and ``store`` keeps that between runs (read here)."""
        self.settings = settings
        self._session = session
        self._own_session = session is None
        self._auth = {"Authorization": aiohttp.encode_basic_auth(settings.sender, settings.password)}
        self._worker = {"worker": settings.worker_name}
        self._pending: dict[str, PendingDecision] = {}
        self._memory: Progress = progress if progress is not None else DeskMemory(store)

    async def __aenter__(self) -> CommissionDesk:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self._session

    async def _remember(self, session_id: str) -> Memory:
        return await self._memory.recall(session_id)

    async def run_once(self) -> bool:
        """Claim one job and handle it; False when there was none. Raises GatewayTrouble if claiming fails."""
        job = await self._claim()
        if job is None:
            return False
        await self._handle(job)
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set (within one long poll); errors back off from ``idle_pause`` up to
        ``max_pause`` (under the gateway's :func:`supervise`), never end the loop."""
        kept = time.monotonic()

        async def step() -> None:
            nonlocal kept
            if self.settings.manual and time.monotonic() - kept > HEARTBEAT_SECONDS:
                await self.keep_pending()
                kept = time.monotonic()
            if not await self.run_once():
                await sleep_unless(stop, self.settings.idle_pause)

        settings = SupervisorSettings(backoff_base_seconds=self.settings.idle_pause,
                                      backoff_cap_seconds=self.settings.max_pause)
        burst = FailureBurst("commission desk: taking jobs", settings, logger=log,
                             expected=(*STORAGE_ERRORS, DeskError))  # the job itself was already failed
        await supervise("commission desk", step, stop, settings=settings, burst=burst)

    async def _claim(self) -> Job | None:
        s = self.settings
        url = f"{s.gateway_url}/api/v1/jobs/{s.service_id}/claim"
        params = {"worker": s.worker_name, "wait": str(s.poll_wait)}
        timeout = aiohttp.ClientTimeout(total=s.poll_wait + s.timeout)
        try:
            async with self._http().post(url, params=params, headers=self._auth, timeout=timeout) as response:
                if response.status == 204:
                    return None
                if response.status != 200:
                    raise GatewayTrouble(f"the gateway refused the claim: {await _problem(response)}")
                job = Job.from_json(await response.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayTrouble(f"gateway unreachable: {str(exc) or type(exc).__name__}") from None
        log.info("claimed %s", job.describe())
        return job

    async def _handle(self, job: Job) -> None:
        try:
            memory = await self._remember(job.session_id)
            number = await self._register(job, memory)
            if self.settings.manual:
                self._park(job, number, memory)
                return
            vote = auto_vote(memory.objects)
            await self._progress(job, "commission", vote.note())
            await self._finish(job, memory, vote)
        except JobGone as gone:
            log.info("%s: the gateway no longer holds this job (%s)", job.entry_id, gone)
        except DeskError as error:
            await self._fail(job, str(error))
        except Exception as exc:  # a bug here must not lose the job: fail it so another attempt or an operator sees it
            log.exception("%s: unexpected error", job.entry_id)
            await self._fail(job, f"internal error in the commission desk: {type(exc).__name__}")

    def _park(self, job: Job, number: str, memory: Memory) -> None:
        earlier = self._pending.get(job.entry_id)
        since = earlier.since if earlier else datetime.now(UTC)
        self._pending[job.entry_id] = PendingDecision(job, number, memory.objects, auto_vote(memory.objects), since)
        log.info("%s: %s waits for a person's decision (approve or refuse %s)", job.entry_id, number, job.entry_id)

    async def keep_pending(self) -> None:
        """Manual mode: the jobs waiting for a person are still ours (the gateway restarts their timeout)."""
        for decision in list(self._pending.values()):
            try:
                status, _ = await self._post_job(decision.job, "keep", {})
            except Exception:  # a missed heartbeat is retried on the next one
                continue
            if status in (404, 409):  # it timed out and went to another desk meanwhile (CLIENT_JOB_NOT_HELD)
                self._pending.pop(decision.job.entry_id, None)

    def pending(self) -> list[PendingDecision]:
        """Jobs waiting for a person's decision, oldest first."""
        return sorted(self._pending.values(), key=lambda item: item.since)

    async def decide(self, entry_id: str, decision: str, reason: str | None = None, *,
                     members: int = COMMISSION_MEMBERS, votes_for: int | None = None) -> str:
        """Record a person's decision on a pending job and answer the gateway; returns the gateway's status.

        KeyError for an unknown entry, ValueError for a decision against rules §6/§9 (the job stays
        pending); DeskError when a step failed (the job was failed at the gateway, no longer pending).
        """
        item = self._pending.get(entry_id)
        if item is None:
            raise KeyError(f"no job {entry_id} waits for a decision")
        vote = manual_vote(decision, reason, members, votes_for)
        del self._pending[entry_id]  # before any await: a second decide() on it is a KeyError
        job, memory = item.job, await self._remember(item.job.session_id)
        try:
            await self._progress(job, "commission", vote.note("the standing commission, recorded at the desk,"))
            return await self._finish(job, memory, vote)
        except JobGone as gone:
            raise DeskError(f"the gateway no longer holds job {entry_id} ({gone})") from None
        except DeskError as error:
            await self._fail(job, str(error))
            raise

    async def _register(self, job: Job, memory: Memory) -> str:
        if memory.number is not None:
            return memory.number
        try:
            objects = read_objects(job.document)
        except ValueError as exc:
            raise DeskError(str(exc)) from None
        url = f"{self.settings.library_url}/api/v1/fund/submissions"
        # The library's decision names the application by X-Request-Id; the key makes a repeat (a reclaimed job,
        # another desk) get the first receipt instead of LIB_DUPLICATE_OBJECT.
        headers = {**_XML, "X-Request-Id": job.session_id, "Idempotency-Key": f"{job.session_id}:register"}
        try:
            async with self._http().post(url, data=job.document.encode("utf-8"), headers=headers) as response:
                if response.status != 200:
                    raise DeskError(f"the KazNEB library did not register the submission: {await _problem(response)}")
                receipt = parse_fund_receipt(await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeskError(f"the KazNEB library is unreachable: {str(exc) or type(exc).__name__}") from None
        except (ValueError, etree.XMLSyntaxError) as exc:
            raise DeskError(f"the KazNEB library answered an unreadable receipt: {exc}") from None
        memory.number, memory.objects = receipt["submission_number"], objects
        await self._memory.keep(job.session_id, memory)
        log.info("%s: registered with KazNEB as %s", job.entry_id, memory.number)
        await self._progress(job, "registered", f"registered with KazNEB as {memory.number}")
        return memory.number

    async def _library_decision(self, number: str, vote: CommissionVote) -> bytes:
        """The signed FundDecision; one already recorded (LIB_ALREADY_DECIDED) is fetched, not made again."""
        url = f"{self.settings.library_url}/api/v1/fund/submissions/{number}/decision"
        try:
            key = {"Idempotency-Key": f"{number}:decision"}
            async with self._http().post(url, json=vote.as_json(), headers=key) as response:
                if response.status == 200:
                    return await response.read()
                problem = await _problem(response)
            if not problem.startswith("LIB_ALREADY_DECIDED"):
                raise DeskError(f"the KazNEB library did not record the decision: {problem}")
            async with self._http().get(url) as response:
                if response.status != 200:
                    raise DeskError(f"the KazNEB library lost the decision: {await _problem(response)}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeskError(f"the KazNEB library is unreachable: {str(exc) or type(exc).__name__}") from None

    async def _finish(self, job: Job, memory: Memory, vote: CommissionVote) -> str:
        """Steps 4 and 5: the library's signed decision, then the result to the gateway."""
        if memory.decision is None:
            memory.decision = await self._library_decision(memory.number or "", vote)
            await self._memory.keep(job.session_id, memory)
        try:  # the library's record decides the outcome, even if it was made before this vote
            recorded = parse_fund_decision(memory.decision)
        except (ValueError, etree.XMLSyntaxError) as exc:
            memory.decision = None
            raise DeskError(f"the KazNEB library answered an unreadable decision: {exc}") from None
        log.info("%s: %s decided %s (%d for, %d against)", job.entry_id, recorded["submission_number"],
                 recorded["decision"], recorded["votes_for"], recorded["votes_against"])
        refused = recorded["decision"] != "include"
        body: dict[str, Any] = {"outcome": "refused" if refused else "completed",
                                "document": memory.decision.decode("utf-8")}
        if refused:
            body["reason"] = recorded["reason"] or "not included in the KazNEB fund"
        status, answer = await self._post_job(job, "result", body, attempts=3)
        if status in (200, 404, 409):  # done, or done with by the gateway: nothing left to resume
            await self._memory.drop(job.session_id)
        if status in (404, 409):
            raise JobGone(answer)
        if status != 200:
            raise DeskError(f"the gateway did not accept the decision: {answer}")
        log.info("%s: result posted, the application is %s", job.entry_id, answer)
        return answer

    async def _progress(self, job: Job, step: str, note: str) -> None:
        status, answer = await self._post_job(job, "progress", {"step": step, "note": note})
        if status in (404, 409):
            raise JobGone(answer)
        if status != 200:  # the history step is worth less than the job: go on
            log.warning("%s: progress %s not recorded: %s", job.entry_id, step, answer)

    async def _fail(self, job: Job, reason: str) -> None:
        reason = mask_ids(reason)[:MAX_NOTE]
        log.warning("%s: failed: %s", job.entry_id, reason)
        status, answer = await self._post_job(job, "fail", {"reason": reason})
        if status != 200:
            log.warning("%s: the failure was not recorded by the gateway: %s", job.entry_id, answer)

    async def _post_job(self, job: Job, action: str, body: dict[str, Any], *, attempts: int = 1) -> tuple[int, str]:
        """POST to a job route: (HTTP status or 0 if unreachable, the application's status or the problem);
        unreachable or 5xx is tried up to ``attempts`` times."""
        url = f"{self.settings.gateway_url}/api/v1/jobs/{job.service_id}/{job.entry_id}/{action}"
        status, answer = 0, ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
            try:
                async with self._http().post(url, json=body, params=self._worker,
                                             headers={**self._auth, LEASE_HEADER: job.lease}) as response:
                    status = response.status
                    if status == 200:
                        data = await response.json(content_type=None)
                        return status, str(data.get("status", "")) if isinstance(data, dict) else ""
                    answer = await _problem(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer = 0, f"gateway unreachable: {str(exc) or type(exc).__name__}"
            if status and status < 500:
                break
        return status, answer

