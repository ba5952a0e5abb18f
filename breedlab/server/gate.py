"""The gate every HTTP request passes: draining, body size, in-flight count, request metrics.

A pure ASGI middleware rather than ``@app.middleware("http")``: it sees the
response's start (status, serving model header) and its last body message, so
a streamed answer is counted and timed when it really ends, and it never
buffers a stream. It reads no header but Content-Length and the response's
``x-breedlab-model``: the Authorization header is never looked at or logged.
A Serve replica's gate also adds ``x-breedlab-replica`` to every response.
"""

from __future__ import annotations

import json
import time

from breedlab.server.errors import OPENAI_PREFIX, error_body

ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models")


class RequestGate:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = getattr(scope["app"].state, "breedlab", None)
        path = scope.get("path", "")
        if state is None or state.draining:
            return await _refuse(send, path, 503, "the server is starting or draining; retry shortly", "unavailable")
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if length.isdigit() and int(length) > state.config.max_request_bytes:
            return await _refuse(send, path, 413, f"request body over {state.config.max_request_bytes} bytes",
                                 "body_too_large")
        state.inflight += 1
        started, seen = time.perf_counter(), {}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                if state.config.replica:  # which replica answered: its metrics and history are its own
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"x-breedlab-replica", state.config.replica.encode())]}
                seen["model"] = dict(message.get("headers") or []).get(b"x-breedlab-model", b"none").decode()
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                _count(state, path, seen, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            state.inflight -= 1


def _count(state, path: str, seen: dict, seconds: float) -> None:
    if not path.startswith(OPENAI_PREFIX):
        return
    endpoint = next((e for e in ENDPOINTS if path.startswith(e)), "other")
    model = seen.get("model", "none")
    state.metrics.requests.labels(model, endpoint, str(seen.get("status", 0))).inc()
    if model != "none":
        state.metrics.latency.labels(model, endpoint).observe(seconds)


async def _refuse(send, path: str, status: int, message: str, code: str) -> None:
    body = error_body(status, message, code=code) if path.startswith(OPENAI_PREFIX) else {"detail": message}
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"retry-after", b"5")]})
    await send({"type": "http.response.body", "body": raw})
