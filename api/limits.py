"""Request limits and strictness that apply before any route runs."""

from collections import Counter
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import FieldError, Problem, problem_response


class BodyLimit:
    """Refuse (413) request bodies over `max_bytes`, declared or streamed.

    The body is read here, up to the limit, and handed on whole: bodies of
    this API are small, and a route never sees a partial one.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Problem(
                413,
                "payload-too-large",
                "Request body too large",
                f"the body may be {self.max_bytes} bytes at most",
            )
        )
        await response(scope, receive, send)


def _is_sequence(annotation: Any) -> bool:
    if get_origin(annotation) in (list, set, frozenset, tuple):
        return True
    return any(_is_sequence(arg) for arg in get_args(annotation))


def _query_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.query_params
    for dependency in dependant.dependencies:
        yield from _query_params(dependency)


def _query_names(route: APIRoute) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters a route declares, and those that may repeat."""
    names, repeatable = set(), set()
    for param in _query_params(route.dependant):
        names.add(param.alias)
        if _is_sequence(param.field_info.annotation):
            repeatable.add(param.alias)
    return frozenset(names), frozenset(repeatable)


async def strict_query(request: Request) -> None:
    """Refuse query parameters a route does not declare, or repeats of one.

    A misspelt filter (`?stauts=paid`) would otherwise be ignored, and the
    caller would act on every order instead of the ones they meant.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    names, repeatable = _query_names(route)
    errors = []
    counts = Counter(key for key, _ in request.query_params.multi_items())
    for key, count in counts.items():
        if key not in names:
            errors.append(FieldError(field=key, message="unknown query parameter"))
        elif count > 1 and key not in repeatable:
            errors.append(FieldError(field=key, message="given more than once"))
    if errors:
        fields = ", ".join(sorted(error.field for error in errors))
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            f"invalid fields: {fields}",
            errors=errors,
        )
