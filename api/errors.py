"""Errors as `application/problem+json` (RFC 9457), mapped in one place.

Routes raise `Problem` with a stable type slug; validation errors, unknown
routes, unavailable backends and unexpected exceptions are turned into the
same shape here, so no caller ever sees a stack trace.

    Exception
    └── Problem            a response the API means to give (4xx, 503)
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetails(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.details = ProblemDetails(
            type=f"/problems/{slug}",
            title=title,
            status=status,
            detail=detail,
            errors=errors,
        )
        self.headers = headers


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.details.model_dump(exclude_none=True),
        status_code=problem.details.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def invalid(field: str, message: str, *, also: str = "") -> Problem:
    """A 422 validation problem about `field` (and the fields in `also`,
    comma-separated, that it concerns too)."""
    fields = ", ".join(f for f in (field, also) if f)
    return Problem(
        422,
        "validation-error",
        "The request is not valid",
        f"invalid fields: {fields}",
        errors=[FieldError(field=field, message=message)],
    )


def not_found(what: str, key: str) -> Problem:
    return Problem(404, f"{what}-not-found", f"{what.capitalize()} not found", key)


def field_path(location: tuple[int | str, ...] | list[Any]) -> str:
    """('body', 'lines', 0, 'sku') -> 'lines[0].sku'."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path or "body"


def _field_error(item: dict[str, Any]) -> FieldError:
    if item["type"] == "json_invalid":
        reason = item.get("ctx", {}).get("error", "malformed")
        return FieldError(
            field="body",
            message=f"invalid JSON at character {item['loc'][-1]}: {reason}",
        )
    return FieldError(field=field_path(item["loc"]), message=item["msg"])


_GENERIC_HTTP = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(error)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        errors = [_field_error(item) for item in error.errors()]
        fields = ", ".join(sorted({e.field for e in errors}))
        return problem_response(
            Problem(
                422,
                "validation-error",
                "The request is not valid",
                f"invalid fields: {fields}",
                errors=errors,
            )
        )

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, error: HTTPException) -> JSONResponse:
        slug, title = _GENERIC_HTTP.get(error.status_code, ("http-error", "HTTP error"))
        detail = error.detail if isinstance(error.detail, str) else None
        return problem_response(
            Problem(error.status_code, slug, title, detail, headers=error.headers)
        )

    @app.exception_handler(RPCError)
    async def on_temporal(request: Request, error: RPCError) -> JSONResponse:
        logger.error("Temporal call failed on %s: %s", request.url.path, error)
        return problem_response(
            Problem(
                503,
                "temporal-unavailable",
                "The workflow service is unavailable",
                "try again shortly",
                headers={"Retry-After": "5"},
            )
        )

    async def on_database(request: Request, error: Exception) -> JSONResponse:
        logger.error("database unreachable on %s: %s", request.url.path, error)
        return problem_response(
            Problem(
                503,
                "database-unavailable",
                "The database is unavailable",
                "try again shortly",
                headers={"Retry-After": "5"},
            )
        )

    for unreachable in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
    ):
        app.add_exception_handler(unreachable, on_database)

    @app.exception_handler(sa_exc.DataError)
    async def on_bad_value(request: Request, error: sa_exc.DataError) -> JSONResponse:
        # Input validation should have caught it; the database is the backstop.
        logger.warning(
            "database refused a value on %s: %s", request.url.path, error.orig
        )
        return problem_response(
            Problem(
                422,
                "invalid-value",
                "A value is not acceptable",
                "a value in the request cannot be stored or searched for",
            )
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(500, "internal-error", "Internal error", "the error was logged")
        )


_EVERYWHERE = {
    "413": "Request body too large",
    "422": "Invalid request",
    "500": "Internal error",
    "503": "A backend is unavailable",
}
_WITH_A_KEY = {
    "401": "No API key, or an unknown or revoked one",
    "403": "The key's role (or channel) may not do this",
    "429": "Too many requests for this key; see Retry-After",
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe every error answer as what it is: problem+json, for each route.

    FastAPI documents error models as application/json; the API answers them
    as application/problem+json, and lists the errors every route can give.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ProblemDetails", ProblemDetails.model_json_schema(ref_template="")
    )
    problem = {"application/problem+json": {"schema": {"$ref": _REF}}}
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            common = dict(_EVERYWHERE)
            if operation.get("security"):
                common.update(_WITH_A_KEY)
            if "requestBody" in operation:
                common["400"] = "The body is not JSON"
            for code, description in common.items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = problem
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


_REF = "#/components/schemas/ProblemDetails"
