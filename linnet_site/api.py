"""The JSON API: one NinjaAPI, the error envelope for every failure, the routers of each app."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from agents_app.api import router as runs_router
from sessions_app import errors
from sessions_app.api import router as sessions_router
from sessions_app.errors import LinnetError
from voice_app.api import router as feedback_router

logger = logging.getLogger("linnet.api")

api = NinjaAPI(
    title="Linnet",
    version="1",
    description="Real-time sessions: audio in, tone annotations and agent runs out.",
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url=None,
)
api.add_router("/", sessions_router)
api.add_router("/", runs_router)
api.add_router("/", feedback_router)


def error_response(status: int, code: str, message: str, *, details: object = None) -> JsonResponse:
    body: dict = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JsonResponse({"error": body}, status=status)


@api.exception_handler(LinnetError)
def _linnet_error(request: HttpRequest, exc: LinnetError) -> HttpResponse:
    if exc.status >= 400:
        logger.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.code)
    return error_response(exc.status, exc.code, exc.message)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    details = [{"loc": [str(part) for part in item.get("loc", [])], "msg": item.get("msg", "")} for item in exc.errors]
    logger.info("%s %s -> 422 validation_error", request.method, request.path)
    summary = "; ".join(f"{'.'.join(d['loc'][1:]) or d['loc'][0] if d['loc'] else 'body'}: {d['msg']}" for d in details)
    return error_response(422, errors.VALIDATION_ERROR, summary or "The request is invalid.", details=details)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    logger.info("%s %s -> %d %s", request.method, request.path, exc.status_code, exc)
    return error_response(exc.status_code, errors.INVALID_REQUEST, str(exc))


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    logger.info("%s %s -> 413 payload_too_large", request.method, request.path)
    return error_response(413, errors.PAYLOAD_TOO_LARGE, errors.MESSAGES[errors.PAYLOAD_TOO_LARGE])


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("%s %s -> 500", request.method, request.path)
    return error_response(500, errors.INTERNAL_ERROR, errors.MESSAGES[errors.INTERNAL_ERROR])


def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(404, errors.NOT_FOUND, errors.MESSAGES[errors.NOT_FOUND])
