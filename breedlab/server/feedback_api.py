"""``POST /v1/feedback``: a person rates a response the server gave, +1 or -1, with an optional comment.

The rating is stored with the model that served the response and the niche it was routed to
(``ecosystem/feedback.py``), counted in ``/metrics`` (``breedlab_feedback``, and the approval rate
per model) and shown on the dashboard. An id the server never returned is 404; a rating other than
+1 or -1 is 422; both in the OpenAI error shape.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from breedlab.ecosystem.feedback import UnknownResponse
from breedlab.server import admin
from breedlab.server.errors import ApiError

router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[Depends(admin.inference_key)])


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, description="the response's id (its ``id`` field)")
    rating: int = Field(description="+1 (helpful) or -1 (not helpful)")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResult(BaseModel):
    id: str
    rating: int
    model: str
    """The artifact id of the model that served the response."""
    niche: str | None
    approval: dict
    """That model's approval so far: up, down, rate and its 95% Wilson lower bound."""


@router.post("/feedback", response_model=FeedbackResult,
             responses={404: {"description": "no such response"}, 422: {"description": "rating not +1 or -1"}})
async def feedback(body: FeedbackBody, request: Request) -> dict:
    state = request.app.state.breedlab
    if body.rating not in (-1, 1):
        raise ApiError(422, f"rating must be +1 or -1, got {body.rating}", param="rating", code="invalid_rating")
    try:
        model, niche = await anyio.to_thread.run_sync(state.feedback.rate, body.id, body.rating, body.comment)
    except UnknownResponse:
        raise ApiError(404, f"no response {body.id!r} was served here (or it aged out of the feedback log)",
                       param="id", code="response_not_found") from None
    approval = await anyio.to_thread.run_sync(state.feedback.approval, model)
    label = state.catalogue.name_of(model) if state.catalogue else model[:12]
    state.metrics.feedback.labels(label, "up" if body.rating > 0 else "down").inc()
    state.metrics.approval.labels(label).set(approval.rate)
    return {"id": body.id, "rating": body.rating, "model": model, "niche": niche,
            "approval": {"up": approval.up, "down": approval.down, "rate": approval.rate,
                         "lower_bound": approval.bound()}}
