"""The app factory: ``create_app(home, config)`` builds one server; nothing lives at module level.

The lifespan loads the ``ServerState`` (registry, parent, router policy,
monitor: seconds of blocking work, done in a worker thread) into
``app.state.breedlab``, and on shutdown drains: new requests get 503 while
in-flight ones get ``drain_timeout_s`` to finish; then background scoring
stops and the monitor's queue is written out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from breedlab import __version__
from breedlab.home import Home
from breedlab.server import admin, dashboard, feedback_api, openai_api
from breedlab.server.config import ServerConfig, load_server_config
from breedlab.server.errors import install_handlers
from breedlab.server.gate import RequestGate
from breedlab.server.limiter import Limiter
from breedlab.server.replica_forward import ForwardWrites, forward_writes
from breedlab.server.state import ServerState
from breedlab.typed_config import use_home_configs

log = logging.getLogger("breedlab.server")


def create_app(home: Home | Path | str, config: ServerConfig | None = None, writer=None) -> FastAPI:
    """A FastAPI app serving ``home``'s ecosystem with ``config`` (default: the shipped server section).

    ``writer``: the Ray Serve handle of the one writer, which makes this app a read replica
    (``server/replica_forward.py``: its admin, feedback, shadow and detector writes go there)."""
    home = home if isinstance(home, Home) else Home.resolve(home)
    use_home_configs(home.root)  # the home's configs/*.yaml over the shipped ones
    config = config or load_server_config()
    if writer is not None and config.writes:
        raise ValueError("a replica with a writer must not write itself: set writes=False")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = await anyio.to_thread.run_sync(ServerState.load, home, config)
        if writer is not None:
            forward_writes(state, writer)
        state.tokens = admin.load_tokens(home.root)
        state.limiter = Limiter(config.max_concurrency, config.queue_limit, state.metrics)
        app.state.breedlab = state
        log.info("serving %s: parent %s, router %s", home.root, state.parent_id[:12], (state.policy_id or "-")[:12])
        try:
            yield
        finally:
            await drain(state, config.drain_timeout_s)
            await anyio.to_thread.run_sync(state.close)

    app = FastAPI(title="breedlab", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible serving of a breedlab ecosystem: `auto` routes every request.")
    install_handlers(app)
    if writer is not None:  # inside the gate (draining, body limit), before any of this replica's routes
        app.add_middleware(ForwardWrites, writer=writer, max_body=config.max_request_bytes)
    app.add_middleware(RequestGate)
    app.include_router(openai_api.router)
    app.include_router(feedback_api.router)
    app.include_router(metrics_router())
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    return app


async def drain(state: ServerState, timeout_s: float) -> None:
    """Refuse new requests and wait (at most ``timeout_s``) for in-flight ones to finish."""
    state.draining = True
    deadline = time.monotonic() + timeout_s
    while state.inflight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if state.inflight:
        log.warning("drain timed out with %d requests in flight", state.inflight)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def metrics(request: Request) -> Response:
        """Prometheus text format: requests, latency, tokens, routing decisions, canary state."""
        return Response(generate_latest(request.app.state.breedlab.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
