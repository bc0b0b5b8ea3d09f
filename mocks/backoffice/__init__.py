"""Back-office desk mock: the KazNEB standing commission takes queued fund submissions from the gateway,
registers them with the library, decides (automatically or by a person) and answers the signed decision."""

from mocks.backoffice.commission import CommissionVote, FundObjectInfo, auto_vote, manual_vote, read_objects
from mocks.backoffice.worker import (
    SERVICE_ID,
    CommissionDesk,
    DeskError,
    GatewayTrouble,
    Job,
    PendingDecision,
    WorkerSettings,
)

__all__ = [
    "SERVICE_ID",
    "CommissionDesk",
    "CommissionVote",
    "DeskError",
    "FundObjectInfo",
    "GatewayTrouble",
    "Job",
    "PendingDecision",
    "WorkerSettings",
    "auto_vote",
    "manual_vote",
    "read_objects",
]
