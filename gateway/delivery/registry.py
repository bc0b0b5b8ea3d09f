"""The service registry: each configured serviceId with its compiled schemas and its connector."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

import schemas
from connectors.base import Connector
from gateway.config import ConfigError, ServiceSettings
from signing.applicant import ApplicantKind, ApplicantPolicy
from signing.nca import SignerRole


@dataclass(frozen=True)
class Service:
    """A routable service, ready for the hot path (schemas compiled at start)."""

    service_id: str
    "The serviceId callers use."
    settings: ServiceSettings
    "Its configuration."
    connector: Connector | None
    "Request/answer transport (rest); None for soap and queue, which delivery drives itself."
    document_schema: etree.XMLSchema | None
    "Compiled XSD of the business document."
    result_schema: etree.XMLSchema | None
    "Compiled XSD of the back-end's answer."
    applicant: ApplicantPolicy
    "Who may apply (individual IIN or organisation BIN + role)."

    def admits(self, sender_id: str) -> bool:
        """The service's own access list (X-Road style access rights); empty admits every sender."""
        return not self.settings.senders or sender_id in self.settings.senders


class ServiceRegistry:
    def __init__(self, services: dict[str, Service]) -> None:
        self._services = services

    @classmethod
    def build(cls, settings: dict[str, ServiceSettings], connectors: dict[str, Connector]) -> ServiceRegistry:
        compiled: dict[str, etree.XMLSchema] = {}

        def schema(path: str | None) -> etree.XMLSchema | None:
            if path is None:
                return None
            if path not in compiled:
                compiled[path] = schemas.load_xml_schema(path)
            return compiled[path]

        return cls({
            service_id: Service(
                service_id=service_id,
                settings=service,
                connector=connectors.get(service.connector),
                document_schema=schema(service.document_schema),
                result_schema=schema(service.result_schema),
                applicant=ApplicantPolicy(
                    kind=ApplicantKind(service.applicant),
                    iin_element=service.iin_element,
                    bin_element=service.bin_element,
                    required_roles=frozenset(SignerRole(role) for role in service.required_roles),
                ),
            )
            for service_id, service in settings.items()
        })

    @staticmethod
    def check_schemas(settings: dict[str, ServiceSettings]) -> None:
        """Compile every configured schema once, so a missing or broken XSD stops start-up."""
        for service_id, service in settings.items():
            for key in ("document_schema", "result_schema"):
                path = getattr(service, key)
                if path is None:
                    continue
                try:
                    schemas.load_xml_schema(path)
                except (OSError, ValueError, etree.XMLSchemaParseError) as exc:
                    raise ConfigError(f"services.{service_id}.{key}: cannot load {path!r}: {exc}") from None

    def get(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._services.values())
