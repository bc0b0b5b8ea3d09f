"""The service registry: each configured serviceId with its compiled schemas and its connector.

The connector kind in the configuration (rest | soap | queue) is resolved here, once, to the process's
connector of that kind; delivery only ever calls ``service.connector``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lxml import etree

import schemas
from connectors.base import Connector
from gateway.config import ConfigError, ConnectorKind, ServiceSettings
from signing.applicant import ApplicantPolicy
from signing.nca import SignerRole


@dataclass(frozen=True)
class Service:
    """A routable service, ready for the hot path (schemas compiled at start)."""

    service_id: str
    "The serviceId callers use."
    settings: ServiceSettings
    "Its configuration."
    connector: Connector
    "The transport to its back-end (the process's connector of the configured kind)."
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
    """The configured services by serviceId; built once at start-up, read-only afterwards."""

    def __init__(self, services: dict[str, Service]) -> None:
        self._services = services

    @classmethod
    def build(cls, settings: dict[str, ServiceSettings],
              connectors: Mapping[ConnectorKind, Connector]) -> ServiceRegistry:
        """Compile schemas and resolve connectors; raises ConfigError for a kind with no connector given."""
        missing = sorted({f"services.{sid}.connector" for sid, s in settings.items() if s.connector not in connectors})
        if missing:
            raise ConfigError(f"{missing[0]}: no connector of this kind in this process")
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
                connector=connectors[service.connector],
                document_schema=schema(service.document_schema),
                result_schema=schema(service.result_schema),
                applicant=ApplicantPolicy(
                    kind=service.applicant,
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

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services.values())
