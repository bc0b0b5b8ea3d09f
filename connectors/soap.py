"""SOAP connector for long-running providers (the E-licensing profile): submit once, then ask for status.

zeep over its async (httpx) transport. The WSDL is loaded once per endpoint, in a worker thread
because zeep loads WSDLs synchronously, on first use: a provider that is down when the gateway
starts is then just a transient failure, retried like any other.

Profile: ``SubmitApplication(applicationId, document)`` → ``registrationNumber`` (``submit``);
``GetApplicationStatus(registrationNumber)`` → ``state`` (in_progress | issued | refused),
``steps`` (code, name, startedAt, dueAt, completedAt?) and, when final, ``result`` (the provider's
signed document) (``poll``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import httpx
import zeep
from lxml import etree
from zeep import xsd
from zeep.exceptions import Fault, TransportError, XMLSyntaxError
from zeep.transports import AsyncTransport

from connectors.base import Answer, ConnectorError, Step, Submission
from signing.signer import SigningKey
from signing.wssecurity_sign import sign_envelope

XSD_NS = "http://www.w3.org/2001/XMLSchema"
log = logging.getLogger("egov.connectors")
# zeep writes an element into an xsd:anyType slot only inside an AnyObject of a named complex type.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_ANY_CONTENT = xsd.ComplexType(xsd.Sequence([xsd.Any()]), qname=etree.QName(XSD_NS, "anyType"))


def any_type(element: etree._Element) -> xsd.AnyObject:
    """``element`` as the value of an xsd:anyType field for zeep (a copy: zeep moves it into its envelope)."""
    return xsd.AnyObject(_ANY_CONTENT, {"_value_1": copy.deepcopy(element)})


class WsSecuritySigning:
    """zeep's ``wsse`` hook: every outgoing envelope is signed with WS-Security (Body and Timestamp, X.509 token)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def apply(self, envelope: etree._Element, headers: dict[str, str]) -> tuple[etree._Element, dict[str, str]]:
        return sign_envelope(envelope, self.key), headers

    def verify(self, envelope: etree._Element) -> None:
        """Answers are not WS-Security-signed: the provider's result document carries its own signature."""


class SoapConnector:
    """One per gateway process; clients per WSDL URL are built once and kept. Calls to the endpoints in
    ``signed_endpoints`` are signed with WS-Security by ``ws_security_key`` (the gateway's key)."""

    def __init__(self, *, timeout: float = 30.0, ws_security_key: SigningKey | None = None,
                 signed_endpoints: frozenset[str] = frozenset()) -> None:
        if signed_endpoints and ws_security_key is None:
            raise ValueError("signed endpoints need a WS-Security key")
        self._wsse = WsSecuritySigning(ws_security_key) if ws_security_key is not None else None
        self._signed_endpoints = signed_endpoints
        self._timeout = timeout
        self._clients: dict[str, zeep.AsyncClient] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def _client(self, wsdl_url: str, session: str) -> zeep.AsyncClient:
        client = self._clients.get(wsdl_url)
        if client is not None:
            return client
        async with self._loading.setdefault(wsdl_url, asyncio.Lock()):
            if wsdl_url not in self._clients:
                transport = AsyncTransport(timeout=self._timeout, operation_timeout=self._timeout)
                try:
                    wsse = self._wsse if wsdl_url in self._signed_endpoints else None
                    self._clients[wsdl_url] = await asyncio.to_thread(zeep.AsyncClient, wsdl_url, transport=transport,
                                                                      wsse=wsse)
                except (OSError, httpx.HTTPError, TransportError, XMLSyntaxError) as exc:
                    log.warning("session %s: cannot load the WSDL %s: %s: %s", session, wsdl_url,
                                type(exc).__name__, exc)
                    raise ConnectorError("PROVIDER_UNAVAILABLE", "the back-end's service description could not "
                                         "be loaded", transient=True) from None
        return self._clients[wsdl_url]

    async def submit(self, submission: Submission) -> Answer:
        """Hand the application over; the answer names the provider's registration number, to be polled."""
        client = await self._client(submission.endpoint, submission.application_id)
        # The document is the gateway's own serialisation of an already checked tree; parsed without entities.
        document = etree.fromstring(submission.document, _PARSER)
        answer = await self._call(client.service.SubmitApplication, submission.timeout, submission.application_id,
                                  applicationId=submission.application_id, document=any_type(document))
        number = getattr(answer, "registrationNumber", None)
        if not number:
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "no registrationNumber in the answer", transient=False)
        return Answer(reference=str(number), polled=True, note=f"registered by the provider as {number}")

    async def poll(self, endpoint: str, reference: str, *, timeout: float) -> Answer:
        """The provider's state: its steps, and its signed result once issued or refused."""
        client = await self._client(endpoint, reference)
        answer = await self._call(client.service.GetApplicationStatus, timeout, reference,
                                  registrationNumber=reference)
        steps = tuple(
            Step(code=str(s.code), name=str(s.name), started_at=_iso(s.startedAt), due_at=_iso(s.dueAt),
                 completed_at=_iso(getattr(s, "completedAt", None)))
            for s in (answer.steps or [])
        )
        result = None
        content = getattr(answer, "result", None)
        if content is not None:
            items = content if isinstance(content, list) else [content]
            elements = [e for e in items if isinstance(e, etree._Element)]
            if elements:
                result = etree.tostring(elements[0])
        state = str(answer.state)
        final = state in ("issued", "refused") and result is not None
        return Answer(document=result if final else None, refused=final and state == "refused", reference=reference,
                      polled=not final, steps=steps)

    async def _call(self, operation: Any, timeout: float, session: str, **arguments: Any) -> Any:
        """One operation; what reaches the caller names neither the provider's address nor the transport's error
        text (both are logged under ``session``, the application id or the provider's registration number)."""
        try:
            return await asyncio.wait_for(operation(**arguments), timeout)
        except TimeoutError:
            raise ConnectorError("PROVIDER_TIMEOUT", f"no answer within {timeout}s", transient=True) from None
        except Fault as fault:
            # SOAP 1.1: a Server fault may succeed later (retry); a Client fault says the message is wrong.
            transient = "server" in str(fault.code or "").lower()
            code = "PROVIDER_UNAVAILABLE" if transient else "PROVIDER_REJECTED"
            raise ConnectorError(code, f"SOAP fault: {fault.message}"[:500], transient=transient) from None
        except (httpx.HTTPError, OSError, TransportError) as exc:
            log.warning("session %s: provider unreachable: %s: %s", session, type(exc).__name__, exc)
            raise ConnectorError("PROVIDER_UNAVAILABLE", "the back-end could not be reached", transient=True) from None
        except XMLSyntaxError as exc:
            log.warning("session %s: provider sent unreadable XML: %s", session, exc)
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "the back-end's answer is not well-formed XML",
                                 transient=False) from None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
