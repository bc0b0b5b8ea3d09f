"""KazNEB (national e-library) back-end mock: REST reader registration issuing single reader tickets,
participants' fund submissions, and the standing commission's decisions on them."""

from mocks.library.app import LIBRARY_STATE, create_library_app, main, run_library
from mocks.library.forms import (
    FUND_DECISION_NS,
    FUND_RECEIPT_NS,
    FUND_SUBMISSION_NS,
    READER_REGISTRATION_NS,
    READER_TICKET_NS,
    build_fund_submission,
    build_reader_registration,
    parse_fund_decision,
    parse_fund_receipt,
    parse_ticket,
    sample_fund_objects,
)

__all__ = [
    "FUND_DECISION_NS",
    "FUND_RECEIPT_NS",
    "FUND_SUBMISSION_NS",
    "LIBRARY_STATE",
    "READER_REGISTRATION_NS",
    "READER_TICKET_NS",
    "build_fund_submission",
    "build_reader_registration",
    "create_library_app",
    "main",
    "parse_fund_decision",
    "parse_fund_receipt",
    "parse_ticket",
    "run_library",
    "sample_fund_objects",
]
