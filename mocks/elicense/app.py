"""E-licensing back-end mock (SOAP 1.1): certificates for the temporary export of cultural values.

Routes
------
``POST /soap``
    SOAP 1.1, document/literal; the operation is the Body's element (``soapAction`` is ignored):
    ``SubmitApplication`` (``applicationId``, ``document``: the verified ``CulturalExportApplication``)
    answers ``registrationNumber`` and ``registeredAt``; ``GetApplicationStatus`` (``registrationNumber``)
    answers ``state``, ``currentStep``, ``steps`` and, once final, ``result``: the ``CulturalExportResult``
    signed once with the provider's key. Faults are SOAP 1.1 faults (HTTP 500) whose detail is an
    ``ElicenseFault`` (``code``, ``message``); the codes are listed in ``ElicenseService_types.xsd``.
``GET /soap?wsdl``
    The WSDL with the types inlined and ``soap:address`` set to this server's ``/soap`` URL.
``GET /health``
    ``{"status": "ok"}``; never affected by fault injection.

Progress is computed from the simulated clock (see ``steps.py`` and ``clock.py``): nothing runs in the
background, and the refusal rules (``forms.review``) are decided at submission but only shown when their
step completes. The provider works ``pace`` times faster than its regulated deadlines (1 outside demos), with
real times throughout (see ``steps.py``). Applications are kept in memory and, given a
:class:`~mocks.statefile.StateFile`, on disk (the demo's ``<state>/world/elicense.json``).

Control (tests and demos): ``/_control/fail``, ``/_control/reset`` and ``/_control/clock``, see
``mocks.elicense.control``; faults apply to ``POST /soap`` only. An injected 500 is a SOAP fault
``EL_INJECTED_FAULT``; other statuses carry the same fault body (``Retry-After: 1`` for 429/503).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from lxml import etree

from mocks.elicense.clock import SimulatedClock
from mocks.elicense.control import Controls, add_control_routes, fault_middleware
from mocks.elicense.forms import (
    APPLICATION_NS,
    SERVICE_NS,
    XMLDSIG_NS,
    ExportApplication,
    RefusalGround,
    read_application,
    render_result,
    review,
)
from mocks.elicense.persist import canonical, read_results, registration_fields, registration_json, results_json
from mocks.elicense.steps import KZ_TIME, StepTiming, WorkingCalendar, progress, schedule
from mocks.elicense.wss import RequiredWsSecurity
from mocks.faults import read_limited
from mocks.statefile import StateFile, StateFileError
from schemas import load_xml_schema, read_schema_bytes
from signing.signer import DocumentSigner
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH = "/soap"
MAX_BODY_BYTES = 512 * 1024
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"


class SoapFault(Exception):
    """A fault to answer: ``code`` from the ElicenseFault list, ``client`` False for our own failures."""

    def __init__(self, code: str, message: str, *, client: bool = True) -> None:
        super().__init__(message)
        self.code, self.message, self.client = code, message, client


@dataclass(frozen=True)
class Registration:
    """One registered application and its fixed timeline."""

    number: str
    "Registration number, e.g. EL-CV-2025-00000001."
    certificate_number: str
    "Number the certificate gets if issued."
    digest: str
    "SHA-256 of the document's exclusive C14N: a retry must send the same document."
    document: bytes
    "That C14N: what is stored between runs."
    application: ExportApplication
    "What the rules looked at."
    registered_at: datetime
    "Time of submission by the service's clock (Kazakhstan time, whole seconds)."
    grounds: tuple[RefusalGround, ...]
    "Refusal grounds of the refusing step; empty when the certificate is issued."
    timings: tuple[StepTiming, ...]
    "Start and due time of every step the application goes through."


@dataclass
class ElicenseState:
    """Everything the mock knows, stored on the application under ``ELICENSE_STATE``."""

    application_schema: etree.XMLSchema
    result_schema: etree.XMLSchema
    service_schema: etree.XMLSchema
    wsdl_template: etree._ElementTree
    signer: DocumentSigner | None
    clock: SimulatedClock
    calendar: WorkingCalendar
    registrations: dict[str, Registration] = field(default_factory=dict)
    by_application_id: dict[str, str] = field(default_factory=dict)
    results: dict[str, bytes] = field(default_factory=dict)
    "Serialized (signed) result documents, built once per registration when it reaches its final state."
    sequences: dict[int, int] = field(default_factory=dict)
    signatures_made: int = 0
    "How many results were signed (tests check: once per application)."
    pace: float = 1.0
    "How many times faster than its regulated deadlines the provider works (fixed per registration)."
    store: StateFile | None = None
    "Where registrations, results and counters are kept between runs; None keeps them in memory only."
    ws_security: RequiredWsSecurity | None = None
    "When set, every call must be WS-Security-signed by the gateway (checked before the operation)."

    def save(self) -> None:
        """Write everything to :attr:`store` (after every change; nothing without a store)."""
        if self.store is not None:
            self.store.save({"registrations": [registration_json(r) for r in self.registrations.values()],
                             "by_application_id": self.by_application_id, "results": results_json(self.results),
                             "sequences": {str(year): n for year, n in self.sequences.items()}})

    def restore(self) -> None:
        """Read what :meth:`save` wrote, if anything (:class:`StateFileError` for a damaged file)."""
        data = self.store.load() if self.store is not None else None
        if data is None or self.store is None:
            return
        try:
            for record in data["registrations"]:
                registration = Registration(**registration_fields(record))
                self.registrations[registration.number] = registration
            self.by_application_id = {str(k): str(v) for k, v in data["by_application_id"].items()}
            self.results = read_results(data["results"])
            self.sequences = {int(year): int(n) for year, n in data["sequences"].items()}
        except (KeyError, TypeError, ValueError, UnsafeXmlError) as exc:
            raise StateFileError(f"{self.store.path} is damaged ({exc!r}); start with --fresh") from None


ELICENSE_STATE = web.AppKey("elicense_state", ElicenseState)


def _wsdl_template() -> etree._ElementTree:
    """The WSDL with its importing wsdl:types replaced by the types schema itself."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    wsdl = etree.fromstring(read_schema_bytes("elicense/ElicenseService.wsdl"), parser).getroottree()
    types_schema = etree.fromstring(read_schema_bytes("elicense/ElicenseService_types.xsd"), parser)
    types = wsdl.getroot().find(f"{{{_WSDL_NS}}}types")
    assert types is not None, "ElicenseService.wsdl has no wsdl:types"
    for child in list(types):
        types.remove(child)
    # A fresh element with the schema's full nsmap: moving it would let lxml drop xmlns:tns, which the
    # QName references in attribute values (type="tns:...") still need.
    inlined = etree.SubElement(types, types_schema.tag, attrib=dict(types_schema.attrib), nsmap=types_schema.nsmap)
    for child in list(types_schema):
        inlined.append(child)
    return wsdl


def _element(parent: etree._Element, name: str, text: object | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{SERVICE_NS}}}{name}")
    if text is not None:
        child.text = str(text)
    return child


def _envelope(payload: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"soap": SOAP_ENV_NS, "el": SERVICE_NS})
    etree.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body").append(payload)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def fault_response(code: str, message: str, *, client: bool = True, status: int = 500,
                   headers: dict[str, str] | None = None) -> web.Response:
    """A SOAP 1.1 fault with an ElicenseFault detail."""
    fault = etree.Element(f"{{{SOAP_ENV_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
    etree.SubElement(fault, "faultstring").text = message
    detail = etree.SubElement(etree.SubElement(fault, "detail"), f"{{{SERVICE_NS}}}ElicenseFault")
    _element(detail, "code", code)
    _element(detail, "message", message)
    return web.Response(status=status, body=_envelope(fault), content_type="text/xml", charset="utf-8",
                        headers=headers)


def _xml_time(value: datetime) -> str:
    return value.astimezone(KZ_TIME).replace(microsecond=0).isoformat()


def _submit(state: ElicenseState, operation: etree._Element) -> etree._Element:
    application_id = " ".join((operation.findtext(f"{{{SERVICE_NS}}}applicationId") or "").split())
    holder = operation.find(f"{{{SERVICE_NS}}}document")
    children = [] if holder is None else [c for c in holder if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SoapFault("EL_INVALID_DOCUMENT", "document must hold exactly one CulturalExportApplication element")
    document = copy.deepcopy(children[0])  # its own tree: no envelope namespaces, line numbers kept
    if document.tag != f"{{{APPLICATION_NS}}}CulturalExportApplication":
        raise SoapFault("EL_INVALID_DOCUMENT", f"expected CulturalExportApplication, got {etree.QName(document).text}")
    if not state.application_schema.validate(document):
        error = state.application_schema.error_log[0]
        raise SoapFault("EL_INVALID_DOCUMENT", f"the application fails its schema: line {error.line}: {error.message}")
    if document.find(f"{{{XMLDSIG_NS}}}Signature") is not None:
        raise SoapFault("EL_INVALID_DOCUMENT",
                        "the document still carries a ds:Signature; send only the verified business document")
    application = read_application(document)
    if application.application_id not in (None, application_id):
        raise SoapFault("EL_INVALID_DOCUMENT", "applicationId in the document differs from the request's")
    c14n = canonical(document)
    digest = hashlib.sha256(c14n).hexdigest()
    known = state.by_application_id.get(application_id)
    if known is not None:
        registration = state.registrations[known]
        if registration.digest != digest:
            raise SoapFault("EL_DUPLICATE_APPLICATION",
                            f"applicationId {application_id} was already submitted with another document")
    else:
        now = state.clock.now().astimezone(KZ_TIME).replace(microsecond=0)
        sequence = state.sequences.get(now.year, 0) + 1
        state.sequences[now.year] = sequence
        grounds = review(application)
        registration = Registration(
            number=f"EL-CV-{now.year:04d}-{sequence:08d}", certificate_number=f"CV-{now.year:04d}-{sequence:08d}",
            digest=digest, document=c14n, application=application, registered_at=now, grounds=grounds,
            timings=schedule(now, grounds[0].step if grounds else None, state.calendar, pace=state.pace),
        )
        state.registrations[registration.number] = registration
        state.by_application_id[application_id] = registration.number
        state.save()
    answer = etree.Element(f"{{{SERVICE_NS}}}SubmitApplicationResponse")
    _element(answer, "registrationNumber", registration.number)
    _element(answer, "registeredAt", _xml_time(registration.registered_at))
    return answer


def _result_bytes(state: ElicenseState, registration: Registration) -> bytes:
    """The final result document, built, validated and signed on first use only."""
    cached = state.results.get(registration.number)
    if cached is not None:
        return cached
    steps = progress(registration.timings, registration.timings[-1].completes_at)
    # The result names the applicationId the application was submitted under, so the gateway can match it.
    submitted_as = next((aid for aid, number in state.by_application_id.items() if number == registration.number),
                        None)
    document = render_result(registration_number=registration.number,
                             certificate_number=registration.certificate_number,
                             application=registration.application, steps=steps, grounds=registration.grounds,
                             application_id=submitted_as or None)
    if not state.result_schema.validate(document):
        # A bug in the mock, not in the caller: never send a bad document.
        raise RuntimeError(f"mock produced an invalid result: {state.result_schema.error_log[0]}")
    if state.signer is not None:
        document = state.signer.sign(document)
        state.signatures_made += 1
    data = etree.tostring(document, encoding="UTF-8")
    state.results[registration.number] = data
    state.save()
    return data


def _status(state: ElicenseState, operation: etree._Element) -> etree._Element:
    number = " ".join((operation.findtext(f"{{{SERVICE_NS}}}registrationNumber") or "").split())
    registration = state.registrations.get(number)
    if registration is None:
        raise SoapFault("EL_UNKNOWN_REGISTRATION", f"no application with registration number {number}")
    seen = progress(registration.timings, state.clock.now())
    final = len(seen) == len(registration.timings) and seen[-1].completed_at is not None
    answer = etree.Element(f"{{{SERVICE_NS}}}GetApplicationStatusResponse")
    if not final:
        _element(answer, "state", "in_progress")
        if seen:
            _element(answer, "currentStep", seen[-1].step.code)
    else:
        _element(answer, "state", "refused" if registration.grounds else "issued")
    for status in seen:
        step = _element(answer, "steps")
        for name, value in (("code", status.step.code), ("name", status.step.name_kk),
                            ("nameRu", status.step.name_ru), ("nameEn", status.step.name_en),
                            ("startedAt", _xml_time(status.started_at)), ("dueAt", _xml_time(status.due_at))):
            _element(step, name, value)
        if status.completed_at is not None:
            _element(step, "completedAt", _xml_time(status.completed_at))
    if final:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        _element(answer, "result").append(etree.fromstring(_result_bytes(state, registration), parser))
    return answer


_OPERATIONS: dict[str, Callable[[ElicenseState, etree._Element], etree._Element]] = {
    f"{{{SERVICE_NS}}}SubmitApplication": _submit,
    f"{{{SERVICE_NS}}}GetApplicationStatus": _status,
}


async def soap_endpoint(request: web.Request) -> web.Response:
    """POST /soap: dispatch on the Body's element."""
    state = request.app[ELICENSE_STATE]
    body = await read_limited(request, MAX_BODY_BYTES)
    if body is None:
        return fault_response("EL_INVALID_REQUEST", f"the request exceeds {MAX_BODY_BYTES} bytes")
    try:
        envelope = parse_untrusted(body, XmlLimits(max_bytes=MAX_BODY_BYTES))
    except UnsafeXmlError as exc:
        return fault_response("EL_INVALID_REQUEST", f"request refused ({exc.reason}): {exc.detail}")
    body_element = envelope.find(f"{{{SOAP_ENV_NS}}}Body")
    if envelope.tag != f"{{{SOAP_ENV_NS}}}Envelope" or body_element is None:
        return fault_response("EL_INVALID_REQUEST", "expected a SOAP 1.1 Envelope with a Body")
    refusal = state.ws_security.refusal(envelope) if state.ws_security is not None else None
    if refusal is not None:
        return fault_response("EL_WS_SECURITY", refusal)
    operation = next((c for c in body_element if isinstance(c.tag, str)), None)
    handler = None if operation is None else _OPERATIONS.get(operation.tag)
    if operation is None or handler is None:
        name = "nothing" if operation is None else etree.QName(operation).text
        return fault_response("EL_INVALID_REQUEST", f"unknown operation: {name}")
    operation = copy.deepcopy(operation)
    if not state.service_schema.validate(operation):
        error = state.service_schema.error_log[0]
        return fault_response("EL_INVALID_REQUEST", f"the request fails the service schema: {error.message}")
    try:
        answer = handler(state, operation)
    except SoapFault as fault:
        return fault_response(fault.code, fault.message, client=fault.client)
    return web.Response(body=_envelope(answer), content_type="text/xml", charset="utf-8")


async def wsdl_endpoint(request: web.Request) -> web.Response:
    """GET /soap?wsdl: the self-contained WSDL pointing at this server."""
    if not {"wsdl", "WSDL"} & request.query.keys():
        return web.Response(status=400, text="add ?wsdl to get the service description\n")
    document = copy.deepcopy(request.app[ELICENSE_STATE].wsdl_template)
    address = document.getroot().find(f"{{{_WSDL_NS}}}service/{{{_WSDL_NS}}}port/{{{_SOAP_BINDING_NS}}}address")
    assert address is not None
    address.set("location", str(request.url.with_query(None)))
    body = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    """GET /health."""
    return web.json_response({"status": "ok"})


def _guarded(request: web.Request) -> bool:
    """Fault injection applies to POST /soap only: the WSDL stays reachable."""
    return request.method == "POST" and request.path == SOAP_PATH


def _injected_fault(status: int) -> web.Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return fault_response("EL_INJECTED_FAULT", "failure injected by /_control/fail", client=False,
                          status=status, headers=headers)


def create_elicense_app(
    *,
    signer: DocumentSigner | None,
    clock: SimulatedClock | None = None,
    calendar: WorkingCalendar | None = None,
    pace: float = 1.0,
    store: StateFile | None = None,
    ws_security: RequiredWsSecurity | None = None,
) -> web.Application:
    """Build the E-licensing mock.

    ``signer`` signs the results (the provider's key: ``pki.systems["elicense"]``); None leaves them
    unsigned (development only). ``clock`` defaults to real time (scale 1) starting now; ``calendar`` to
    the packaged Kazakhstan holidays. ``pace`` (at least 1) makes the provider work that many times faster than
    its regulated deadlines; ``store`` keeps its state between runs (read here); ``ws_security`` makes it
    refuse calls not WS-Security-signed by the gateway. Schemas and the WSDL are loaded
    here, once.
    """
    if pace < 1:
        raise ValueError("pace must be at least 1: the provider never works slower than regulated")
    clock = clock or SimulatedClock(datetime.now(KZ_TIME), 1.0)
    app = web.Application(middlewares=[fault_middleware])
    app[ELICENSE_STATE] = ElicenseState(
        application_schema=load_xml_schema("elicense/export-application.xsd"),
        result_schema=load_xml_schema("elicense/export-result.xsd"),
        service_schema=load_xml_schema("elicense/ElicenseService_types.xsd"),
        wsdl_template=_wsdl_template(),
        signer=signer,
        clock=clock,
        calendar=calendar or WorkingCalendar.load(),
        pace=pace,
        store=store,
        ws_security=ws_security,
    )
    app[ELICENSE_STATE].restore()
    app.router.add_post(SOAP_PATH, soap_endpoint)
    app.router.add_get(SOAP_PATH, wsdl_endpoint)
    app.router.add_get("/health", health)
    add_control_routes(app, Controls(clock=clock, guarded=_guarded, injected=_injected_fault, pace=pace))
    return app


async def run_elicense(host: str, port: int, *, signer: DocumentSigner | None,
                       clock: SimulatedClock | None = None) -> web.AppRunner:
    """Start the mock on a real socket; the caller awaits ``runner.cleanup()`` (port 0: see ``runner.addresses``)."""
    runner = web.AppRunner(create_elicense_app(signer=signer, clock=clock))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
