"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``, never a bare 500.

Requests under ``/v1/`` get this shape for every failure: validation (400,
the first problem named, with its parameter), unknown routes (404), our own
refusals (``ApiError``), and anything unexpected (500, logged with its
traceback, the message generic). Other paths (admin, dashboard) keep
FastAPI's ``{"detail": ...}`` shape, which their clients expect.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("breedlab.server")
OPENAI_PREFIX = "/v1"
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
         429: "rate_limit_error", 503: "service_unavailable"}


class ApiError(Exception):
    """A refusal with an HTTP status and the OpenAI error fields."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error" if status >= 500
                                                              else "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.message, param=error.param, code=error.code, headers=error.headers)


async def _validation_error(request: Request, error: RequestValidationError):
    if not request.url.path.startswith(OPENAI_PREFIX):
        return await request_validation_exception_handler(request, error)
    first = error.errors()[0] if error.errors() else {}
    kind = first.get("type", "invalid")
    if kind == "json_invalid":
        return error_response(400, f"the request body is not valid JSON: {first.get('msg', '')}",
                              code="invalid_json")
    location = [str(part) for part in first.get("loc", ())[1:] if not _union_tag(part)]
    param = ".".join(location) or None
    if param is None and kind in ("model_attributes_type", "dict_type"):
        return error_response(400, "the request body must be a JSON object (Content-Type: application/json)",
                              code="invalid_body")
    if kind == "missing":
        message, code = f"missing required parameter: {param}", "missing_required_parameter"
    else:
        message, code = f"invalid value for {param or 'the body'}: {first.get('msg', kind)}", "invalid_value"
    return error_response(400, message, param=param, code=code)


def _union_tag(part) -> bool:
    """pydantic names the member of a union that failed (``str``, ``list[str]``): not a parameter."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "list", "dict") or "[" in part)


async def _http_error(request: Request, error: StarletteHTTPException):
    if not request.url.path.startswith(OPENAI_PREFIX):
        return await http_exception_handler(request, error)
    message = error.detail if isinstance(error.detail, str) else "request refused"
    if error.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    return error_response(error.status_code, message, headers=getattr(error, "headers", None))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_response(500, "internal server error (logged); the request was not served", code="internal_error")
