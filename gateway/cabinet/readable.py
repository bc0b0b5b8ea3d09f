"""Readable documents: an application's document and result as JSON fields, decoded against the service's XSD.

A portal can show ``documentFields`` and ``resultFields`` of the cabinet API without parsing XML. The
decoding follows the service's own ``document_schema`` / ``result_schema`` (``xmlschema``, compiled once
per schema at start-up): element names become keys, repeated elements lists, typed values JSON values
(booleans, integers; decimals stay strings so no amount is rounded). The enveloped ``ds:Signature`` is
left out: the signature is checked and reported elsewhere, its base64 says nothing to a reader.

A stored document that does not decode (it should not happen: intake and delivery validated it) gives
``None`` and a warning in the log, never an error to the caller.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from typing import Any, cast

import xmlschema
from lxml import etree

from gateway.config import ServiceSettings

log = logging.getLogger("egov.cabinet.readable")
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class ServiceDecoders:
    """The compiled schemas one service's documents are decoded with."""

    document: xmlschema.XMLSchema | None
    "Decoder of the applicant's document (the service's ``document_schema``), if it has one."
    result: xmlschema.XMLSchema | None
    "Decoder of the provider's result (the service's ``result_schema``), if it has one."


class ReadableDocuments:
    """Decodes stored documents of each configured service; build it once at start-up."""

    def __init__(self, decoders: dict[str, ServiceDecoders]) -> None:
        self._decoders = decoders

    @classmethod
    def build(cls, services: dict[str, ServiceSettings]) -> ReadableDocuments:
        """Compile every service's schemas (each file once, however many services share it)."""
        compiled: dict[str, xmlschema.XMLSchema] = {}

        def schema(path: str | None) -> xmlschema.XMLSchema | None:
            if path is None:
                return None
            if path not in compiled:
                compiled[path] = xmlschema.XMLSchema(str(importlib.resources.files("schemas") / path))
            return compiled[path]

        return cls({service_id: ServiceDecoders(schema(s.document_schema), schema(s.result_schema))
                    for service_id, s in services.items()})

    def document_fields(self, service_id: str, xml: str | None) -> dict[str, Any] | None:
        """The applicant's document as JSON fields, or None (no document, no schema, or it does not decode)."""
        decoders = self._decoders.get(service_id)
        return _decode(decoders.document if decoders else None, xml, f"{service_id} document")

    def result_fields(self, service_id: str, xml: str | None) -> dict[str, Any] | None:
        """The signed result as JSON fields, or None (no result, no schema, or it does not decode)."""
        decoders = self._decoders.get(service_id)
        return _decode(decoders.result if decoders else None, xml, f"{service_id} result")


def _decode(schema: xmlschema.XMLSchema | None, xml: str | None, what: str) -> dict[str, Any] | None:
    if schema is None or not xml:
        return None
    try:
        root = etree.fromstring(xml.encode("utf-8"), _PARSER)
        for signature in root.findall(f"{{{DSIG_NS}}}Signature"):
            root.remove(signature)
        # xmlschema reads lxml trees natively; its ElementProtocol and types-lxml disagree only on find()'s typing.
        resource = xmlschema.XMLResource(cast(Any, root))
        decoded = schema.to_dict(resource, decimal_type=str, namespaces={"": schema.target_namespace})
    except (etree.XMLSyntaxError, xmlschema.XMLSchemaException, ValueError) as exc:
        # Intake and delivery validated the document, so this means the schema changed since it was stored.
        log.warning("%s does not decode against its schema: %s", what, type(exc).__name__)
        return None
    if not isinstance(decoded, dict):
        return {"value": decoded}
    return {key: value for key, value in decoded.items() if not key.startswith("@xmlns")}
