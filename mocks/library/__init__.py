"""KazNEB (national e-library) back-end mock: REST reader registration issuing single reader tickets."""

from mocks.library.app import LIBRARY_STATE, create_library_app, main, run_library
from mocks.library.forms import (
    READER_REGISTRATION_NS,
    READER_TICKET_NS,
    build_reader_registration,
    parse_ticket,
)

__all__ = [
    "LIBRARY_STATE",
    "READER_REGISTRATION_NS",
    "READER_TICKET_NS",
    "build_reader_registration",
    "create_library_app",
    "main",
    "parse_ticket",
    "run_library",
]
