"""Service discovery for portals (as X-Road's listMethods / allowedMethods / getWsdl).

``GET /api/v1/services``                    every registered service
``GET /api/v1/services/allowed``            the services this sender (HTTP Basic) may call
``GET /api/v1/services/{id}``               one service
``GET /api/v1/services/{id}/schema``        its business-document XSD
``GET /api/v1/services/{id}/wsdl``          the SOAP channel to call it (``?channel=async`` for AsyncChannel)
``GET /api/v1/services/{id}/openapi``       the REST twin for it, as OpenAPI 3.1
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import schemas
from gateway.delivery.registry import Service
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.web.problems import guarded
from gateway.web.reading import basic_auth_sender


def describe(service: Service, base_url: str) -> dict[str, Any]:
    settings = service.settings
    link = f"{base_url}/api/v1/services/{service.service_id}"
    return {
        "serviceId": service.service_id,
        "title": settings.title,
        "mode": settings.mode,
        "connector": settings.connector,
        "applicant": settings.applicant,
        "requiredRoles": list(settings.required_roles),
        "documentSchema": f"{link}/schema" if settings.document_schema else None,
        "wsdl": f"{link}/wsdl",
        "openapi": f"{link}/openapi",
    }


def _service(request: web.Request) -> Service:
    service = request.app[INTAKE].registry.get(request.match_info["service_id"])
    if service is None:
        raise GatewayError("CLIENT_UNKNOWN_SERVICE")
    return service


async def list_services(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    return web.json_response({"services": [describe(s, components.settings.base_url)
                                           for s in components.registry]})


@guarded
async def allowed_services(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    sender = await basic_auth_sender(request, components.senders)
    allowed = [describe(s, components.settings.base_url) for s in components.registry
               if sender.may_call(s.service_id) and s.admits(sender.sender_id)]
    return web.json_response({"senderId": sender.sender_id, "services": allowed})


@guarded
async def get_service(request: web.Request) -> web.Response:
    return web.json_response(describe(_service(request), request.app[INTAKE].settings.base_url))


@guarded
async def get_schema(request: web.Request) -> web.Response:
    service = _service(request)
    if not service.settings.document_schema:
        raise GatewayError("CLIENT_NOT_FOUND", "this service declares no business-document schema")
    return web.Response(body=schemas.read_schema_bytes(service.settings.document_schema),
                        content_type="application/xml", charset="utf-8")


@guarded
async def get_wsdl(request: web.Request) -> web.Response:
    _service(request)
    base = request.app[INTAKE].settings.base_url
    body = (schemas.async_channel_wsdl(f"{base}/shep/async") if request.query.get("channel") == "async"
            else request.app[INTAKE].sync_wsdl)
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


@guarded
async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi(_service(request), request.app[INTAKE].settings.base_url))


def openapi(service: Service, base_url: str) -> dict[str, Any]:
    """OpenAPI 3.1 for ``POST /api/v1/requests`` with this service's id fixed."""
    string = {"type": "string"}
    problem_ref = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"egov-gateway: {service.settings.title or service.service_id}", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {"/api/v1/requests": {"post": {
            "summary": f"Submit a signed application to {service.service_id}",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["requestInfo", "requestData"],
                "properties": {
                    "requestInfo": {"type": "object", "required": ["messageId", "serviceId", "messageDate", "sender"],
                                    "properties": {
                                        "messageId": {"type": "string", "maxLength": 100},
                                        "correlationId": {"type": "string", "maxLength": 100},
                                        "serviceId": {"const": service.service_id},
                                        "messageDate": {"type": "string", "format": "date-time"},
                                        "sender": {"type": "object", "required": ["senderId"], "properties": {
                                            "senderId": string, "password": string}},
                                        "properties": {"type": "array", "items": {"type": "object", "properties": {
                                            "key": {"type": "string", "maxLength": 30},
                                            "value": {"type": "string", "maxLength": 500}}}}}},
                    "requestData": {"type": "object", "required": ["data"], "properties": {"data": {
                        "type": "string", "description": "the business document, enveloped-signed XMLDSig, as XML"
                                                         " text; schema: GET .../schema"}}},
                }}}}},
            "responses": {
                "200": {"description": "accepted; the signed result (sync) or null (async) and the signed receipt",
                        "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"description": "bad request", **problem_ref}, "401": {"description": "sender", **problem_ref},
                "403": {"description": "refused", **problem_ref}, "422": {"description": "signature", **problem_ref},
                "502": {"description": "back-end", **problem_ref}, "503": {"description": "try later", **problem_ref},
            }}}},
        "components": {"schemas": {"Problem": {"type": "object", "required": ["code", "status", "title"],
                                               "properties": {"code": string, "status": {"type": "integer"},
                                                              "title": string, "detail": string,
                                                              "sessionId": string, "subIndication": string}}}},
    }


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/services", list_services)
    app.router.add_get("/api/v1/services/allowed", allowed_services)
    app.router.add_get("/api/v1/services/{service_id}", get_service)
    app.router.add_get("/api/v1/services/{service_id}/schema", get_schema)
    app.router.add_get("/api/v1/services/{service_id}/wsdl", get_wsdl)
    app.router.add_get("/api/v1/services/{service_id}/openapi", get_openapi)
