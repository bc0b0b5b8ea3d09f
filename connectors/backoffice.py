"""Queue connector: an application becomes a job on its service's back-office queue (:class:`JobQueue`).

``submit`` enqueues the job and returns its entry id; the desks that take it post their progress and answer
through the gateway's job API, so there is nothing to poll. Kept apart from :mod:`connectors.queue`, which is
the queue itself and knows nothing of applications.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import Answer, ConnectorError, Submission
from connectors.queue import JobQueue, QueueError, QueueFull


class QueueConnector:
    """Jobs for back-office desks; one per process, over the process's :class:`JobQueue`."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    async def submit(self, submission: Submission) -> Answer:
        """Enqueue the job (fields: session_id, service_id, document, enqueued_at and the submission's metadata).

        A full queue is transient (PROVIDER_UNAVAILABLE); a job the queue cannot hold is not (PROVIDER_REJECTED).
        """
        fields = {**submission.metadata, "session_id": submission.application_id,
                  "service_id": submission.service_id, "document": submission.document.decode(),
                  "enqueued_at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        try:
            entry = await self.jobs.enqueue(submission.service_id, fields)
        except QueueFull as exc:
            raise ConnectorError("PROVIDER_UNAVAILABLE", str(exc), transient=True) from None
        except QueueError as exc:
            raise ConnectorError("PROVIDER_REJECTED", str(exc), transient=False) from None
        return Answer(reference=entry, polled=False, note="queued for the back-office desk")

    async def poll(self, endpoint: str, reference: str, *, timeout: float) -> Answer:
        """Desks push their answers; a queued job has nothing to report here."""
        return Answer(reference=reference, polled=False)
