"""Request limits that apply before any route runs."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, problem_response


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
