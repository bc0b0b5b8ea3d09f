"""E-licensing back-end mock (SOAP): certificates for the right of temporary export of cultural values,
through the provider's seven regulated steps on a simulated clock and a Kazakhstan working calendar."""

from mocks.elicense.app import ELICENSE_STATE, create_elicense_app, run_elicense
from mocks.elicense.clock import SimulatedClock
from mocks.elicense.forms import (
    APPLICATION_NS,
    RESULT_NS,
    SERVICE_NS,
    build_export_application,
    default_attachments,
    review,
    sample_items,
)
from mocks.elicense.steps import KZ_TIME, STEPS, StepDefinition, WorkingCalendar

__all__ = [
    "APPLICATION_NS",
    "ELICENSE_STATE",
    "KZ_TIME",
    "RESULT_NS",
    "SERVICE_NS",
    "STEPS",
    "SimulatedClock",
    "StepDefinition",
    "WorkingCalendar",
    "build_export_application",
    "create_elicense_app",
    "default_attachments",
    "review",
    "run_elicense",
    "sample_items",
]
