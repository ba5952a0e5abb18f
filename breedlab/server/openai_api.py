"""The OpenAI-compatible endpoints: /v1/models, /v1/completions, /v1/chat/completions.

Handlers are thin: parse (schemas), ``dispatch.prepare`` in a worker thread
(routing, loading and tokenising are blocking), take a generation slot,
generate in a worker thread, shape the answer (``shapes``). Streaming answers
are Server-Sent Events, ``data: {chunk}\\n\\n`` ending with ``data: [DONE]``;
the slot is held until the stream ends however it ends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from breedlab.server import admin
from breedlab.server.dispatch import Prepared, finish, prepare, refused
from breedlab.server.errors import ApiError, error_body
from breedlab.server.limiter import QueueFull, Slot, SlotTimeout
from breedlab.server.prompts import chat_renderer, text_renderer
from breedlab.server.routing import ModelNotFound
from breedlab.server.schemas import (
    MAX_STOPS,
    ChatCompletion,
    ChatRequest,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
)
from breedlab.server.shapes import ChatShape, TextShape

log = logging.getLogger("breedlab.server")
CLIENT_CLOSED = 499  # nginx's "client closed request": what the request metric counts for an abandoned answer
DISCONNECT_POLL_S = 0.1
# Inference keys are optional (issue 6): admin.inference_key checks one only when the config asks for it.
router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(admin.inference_key)])
ERRORS = {code: {"description": text} for code, text in (
    (400, "bad input (OpenAI error shape)"), (404, "unknown or unservable model"), (413, "body too large"),
    (429, "queue full"), (503, "draining or no slot in time"))}


def _state(request: Request):
    return request.app.state.breedlab


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> dict:
    state = _state(request)
    await anyio.to_thread.run_sync(state.refresh_if_changed)
    return {"object": "list", "data": state.catalogue.listing()}


@router.get("/models/{model:path}", response_model=ModelCard, responses={404: ERRORS[404]})
async def retrieve_model(model: str, request: Request) -> dict:
    state = _state(request)
    await anyio.to_thread.run_sync(state.refresh_if_changed)
    try:
        artifact = state.catalogue.find(model)
    except ModelNotFound as error:
        raise ApiError(404, str(error), param="model", code=error.code) from None
    name = state.catalogue.name_of(artifact.id)
    return next(entry for entry in state.catalogue.listing() if entry["id"] == name)


@router.post("/completions", response_model=Completion, responses=ERRORS)
async def completions(body: CompletionRequest, request: Request):
    if isinstance(body.prompt, list) and not all(isinstance(p, str) for p in body.prompt):
        raise ApiError(400, "token-id prompts are not supported; send the prompt as text", param="prompt",
                       code="unsupported_prompt")
    if isinstance(body.prompt, list) and len(body.prompt) != 1:
        raise ApiError(400, "exactly one prompt per request is supported (got a list of "
                            f"{len(body.prompt)})", param="prompt", code="unsupported_batch")
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    return await _serve(request, body, "completions", text_renderer(prompt), prompt, TextShape)


@router.post("/chat/completions", response_model=ChatCompletion, responses=ERRORS)
async def chat_completions(body: ChatRequest, request: Request):
    if body.max_tokens is not None and body.max_completion_tokens is not None \
            and body.max_tokens != body.max_completion_tokens:
        raise ApiError(400, "max_tokens and max_completion_tokens disagree; give one", param="max_tokens",
                       code="invalid_value")
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    users = [m["content"] for m in messages if m["role"] == "user"]
    route_text = users[-1] if users else "\n".join(m["content"] for m in messages)
    body.max_tokens = body.max_tokens or body.max_completion_tokens
    return await _serve(request, body, "chat.completions", chat_renderer(messages), route_text, ChatShape)


async def _serve(request: Request, body, endpoint: str, render, route_text: str, shape):
    """Prepare, take a slot, answer; a refusal on the way is logged to the task monitor, then raised."""
    started = time.perf_counter()
    try:
        prepared = await _prepare(request, body, endpoint, render, route_text)
        return await _respond(request, prepared, shape(prepared), body)
    except ApiError as error:
        refused(_state(request), route_text, error, started)
        raise


async def _prepare(request: Request, body, endpoint: str, render, route_text: str) -> Prepared:
    stops = body.stops()
    if len(stops) > MAX_STOPS:
        raise ApiError(400, f"at most {MAX_STOPS} stop strings", param="stop", code="invalid_value")
    return await anyio.to_thread.run_sync(lambda: prepare(
        _state(request), model=body.model, render=render, route_text=route_text, endpoint=endpoint,
        max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p, seed=body.seed, stop=stops))


async def _slot(state) -> Slot:
    try:
        return await state.limiter.acquire(state.config.request_timeout_s)
    except QueueFull as error:
        state.metrics.refused.labels("queue_full").inc()
        raise ApiError(429, str(error), code="queue_full", headers={"retry-after": "1"}) from None
    except SlotTimeout as error:
        state.metrics.refused.labels("slot_timeout").inc()
        raise ApiError(503, str(error), code="slot_timeout", headers={"retry-after": "5"}) from None


async def _respond(request: Request, prepared: Prepared, shape, body):
    state = _state(request)
    slot = await _slot(state)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _events(state, prepared, shape, include_usage)
        return SlotStreamingResponse(slot, _in_threads(events), media_type="text/event-stream",
                                     headers={**prepared.headers(), "cache-control": "no-cache"})
    generation = prepared.generation()
    try:
        connected = await _generate_while_connected(request, generation)
    finally:
        slot.release()
    if not connected:  # nobody will read an answer: record what was done, send nothing worth building
        state.metrics.disconnects.labels("plain").inc()
        await anyio.to_thread.run_sync(lambda: finish(state, prepared, generation, completed=False))
        return Response(status_code=CLIENT_CLOSED, headers=prepared.headers())
    return JSONResponse(shape.body(generation), headers=prepared.headers(),
                        background=BackgroundTask(finish, state, prepared, generation, response_id=shape.id))


async def _generate_while_connected(request: Request, generation) -> bool:
    """Generate in a worker thread, stopping between tokens if the client disconnects (then False)."""

    async def watch() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(DISCONNECT_POLL_S)
        generation.cancel.set()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await anyio.to_thread.run_sync(generation.run)
        group.cancel_scope.cancel()
    return not generation.cancel.is_set()


def _events(state, prepared: Prepared, shape, include_usage: bool) -> Iterator[str]:
    """The SSE stream (runs in worker threads); telemetry and the shadow job once it ends."""
    generation = prepared.generation()
    completed = False
    try:
        yield from (_sse(chunk) for chunk in shape.opening())
        for piece in generation.deltas():
            yield _sse(shape.chunk(piece))
        yield _sse(shape.chunk("", generation.finish_reason))
        if include_usage:
            yield _sse(shape.usage_chunk(generation))
        yield "data: [DONE]\n\n"
        completed = True
    except GeneratorExit:  # the client left: _in_threads closed us; no further token is generated
        state.metrics.disconnects.labels("stream").inc()
        raise
    except Exception:  # headers are sent: say so in the stream instead of cutting it silently
        log.exception("generation failed mid-stream")
        yield _sse(error_body(500, "generation failed; the answer is incomplete", code="internal_error"))
    finally:
        finish(state, prepared, generation, completed=completed, response_id=shape.id)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _in_threads(iterator: Iterator[str]):
    """Each step of a blocking iterator in a worker thread; the iterator is closed however the stream ends."""
    done = object()
    try:
        while (item := await anyio.to_thread.run_sync(next, iterator, done)) is not done:
            yield item
    finally:
        with anyio.CancelScope(shield=True):  # a client that left must still release what it held
            await anyio.to_thread.run_sync(iterator.close)


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that releases its generation slot when it ends, even if it never started."""

    def __init__(self, slot: Slot, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.slot = slot

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
