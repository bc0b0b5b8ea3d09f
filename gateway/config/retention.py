"""How long finished applications stay in Redis, and where they go afterwards (docs/storage.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DAY = 86_400.0


@dataclass(frozen=True)
class RetentionSettings:
    """Finished applications leave Redis ``finished_seconds`` after their final state, into the archive.

    Open applications, the delivery schedule (outbox), leases and queues never expire: only an application in a
    final state (completed, refused, failed, stopped) is archived, and only after it has been final this long.
    """

    enabled: bool = True
    "Run the sweeper in this process (every node may: a lease in Redis lets one sweep a batch at a time)."
    finished_seconds: float = 30 * DAY
    "How long an application stays in Redis after its final state (default 30 days); then it is archived."
    sweep_interval_seconds: float = 60.0
    "Pause between two sweeps (a sweep that found a full batch starts the next one at once)."
    batch: int = 500
    "Most applications archived by one sweep."
    lease_seconds: float = 60.0
    "Lifetime of the sweeper's lease in Redis; its holder renews it after each application."
    reconcile_interval_seconds: float = DAY
    """How often a full scan looks for final applications missing from the finished index (a process that
    died between an application's final save and its index entry); such an application leaves this much late."""
    directory: Path | None = None
    """The archive (one JSON file per application, plus its index files); unset: ``<state_dir>/archive``.
    Several nodes must share it (a network file system), as they share the message log's archive directory."""
    fsync: bool = True
    "Flush each archive file to disk (fsync) before its application's keys are deleted from Redis."

    def path_under(self, state_dir: Path) -> Path:
        """The archive directory in force: ``directory`` or ``<state_dir>/archive``."""
        return self.directory or state_dir / "archive"
