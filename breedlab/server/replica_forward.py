"""A read replica's writes, sent to the one writer (``breedlab serve --ray``, ``server/ray_serve.py``).

A replica serves the OpenAI routes, the dashboard and /metrics from its own copy of the models, and
reads the registry (it picks up a promotion from the event log on its next request). Everything that
would write goes to the writer, through the writer's Ray Serve handle:

- admin and feedback requests (``WRITE_ROUTES``), forwarded whole; the writer answers them;
- shadow and canary jobs: the writer scores them and records ``shadow-scored`` or rolls a canary back;
- the detector's count of logged queries: the writer closes the windows (the monitor's log is shared);
- a child that fails to load: the writer records the ``serve-fallback`` event.

``GET /metrics/writer`` on any replica is the writer's own /metrics (feedback, shadow deltas, rollbacks
are counted there). The handle is duck-typed (``handle.method.remote(...)``): nothing here imports Ray.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("breedlab.server")

WRITE_ROUTES = (("POST", "/admin/"), ("POST", "/v1/feedback"))
WRITER_METRICS = "/metrics/writer"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "upgrade"}


def is_write(method: str, path: str) -> bool:
    return any(method == m and path.startswith(prefix) for m, prefix in WRITE_ROUTES)


class ForwardWrites:
    """ASGI middleware (inside the request gate: draining and the body limit apply): a write request, or
    the writer's metrics, is answered by the writer, byte for byte."""

    def __init__(self, app, writer: Any, max_body: int):
        self.app, self.writer, self.max_body = app, writer, max_body

    async def __call__(self, scope, receive, send) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        if scope["type"] != "http" or not (is_write(method, path) or (method, path) == ("GET", WRITER_METRICS)):
            return await self.app(scope, receive, send)
        body = await _body(receive, self.max_body)
        raw = (scope.get("raw_path") or path.encode()).decode("latin-1")
        target = "/metrics" if path == WRITER_METRICS else raw
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers") or []]
        try:
            status, answer, content = await self.writer.request.remote(
                method, target, scope.get("query_string", b"").decode("latin-1"), headers, body)
        except Exception as error:  # the writer is restarting or gone: the write did not happen
            log.warning("writer unreachable for %s %s: %s", method, path, error)
            status, answer = 503, [("content-type", "application/json"), ("retry-after", "5")]
            content = json.dumps({"error": {"message": f"the writer is unavailable ({type(error).__name__}); "
                                            "nothing was written, retry shortly", "type": "unavailable",
                                            "code": "writer_unavailable"}}).encode()
        kept = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer if k.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*kept, (b"content-length", str(len(content)).encode()),
                                (b"x-breedlab-written-by", b"writer")]})
        await send({"type": "http.response.body", "body": content})


async def _body(receive, limit: int) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:  # the gate checked Content-Length; a chunked body is capped here
            raise ValueError(f"request body over {limit} bytes")
    return body


class ForwardedRollouts:
    """The replica's rollouts: stages read from the registry here, scoring done by the writer."""

    def __init__(self, local, writer: Any):
        self.local, self.writer = local, writer

    def submit(self, job) -> bool:
        try:
            self.writer.score.remote(job)
        except Exception as error:  # evidence is optional, serving is not
            log.warning("shadow job not forwarded to the writer: %s", error)
            return False
        return True

    def __getattr__(self, name: str):
        return getattr(self.local, name)


class ForwardedDetector:
    """Each logged query counted by the writer's detector, which closes the shared monitor's windows."""

    def __init__(self, writer: Any):
        self.writer = writer

    def logged(self) -> None:
        try:
            self.writer.logged.remote()
        except Exception as error:
            log.warning("logged query not counted by the writer: %s", error)


def forward_writes(state, writer: Any) -> None:
    """Make a loaded ``ServerState`` a read replica of ``writer``."""
    state.rollouts = ForwardedRollouts(state.rollouts, writer)
    state.detector = ForwardedDetector(writer)
    state.host.record_elsewhere = lambda model_id, reason: writer.fallback.remote(model_id, reason)
