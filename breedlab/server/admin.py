"""Admin endpoints under /admin/: promote, rollback, retire, trigger breeding.

Each call needs ``Authorization: Bearer <token>`` naming a role from the
home's token file (``tokens``). Promote, rollback and retire need the
approver role and go through ``governance.promotion`` unchanged, so the
evidence rule and the breeder != approver rule apply exactly as on the CLI;
the token's identity is the actor of every event. Breeding may be triggered
by the breeder or an approver (``admin_breed`` says what each may do).

Status codes: 401 no or unknown token, 403 wrong role, 404 unknown model,
409 governance refused (authority, budget, transition, busy), 422 malformed
body or no passing evidence. The token itself is never written anywhere:
not in events, logs, responses or error messages (only its identity is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from breedlab.governance.niche import active_children
from breedlab.governance.promotion import EvidenceError, check_approver, promote, rollback
from breedlab.registry import RegistryError
from breedlab.registry.errors import NotFoundError
from breedlab.server.tokens import TokenBook, TokenEntry, TokenError, read_book

router = APIRouter(prefix="/admin", tags=["admin"])

ARTIFACT_REF = r"^[0-9a-f]{6,64}$"
NICHE = r"^[a-z][a-z0-9_-]{0,63}$"  # the evidence packets' niche rule


def load_tokens(home: Path) -> TokenBook:
    """The token book of a breedlab home (empty until a token is made; re-read when the file changes)."""
    return read_book(Path(home))


def server_state(request: Request):
    return request.app.state.breedlab


def bearer_identity(request: Request) -> TokenEntry:
    """The token entry presented in the Authorization header; 401 when absent or unknown."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "a bearer token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        entry = server_state(request).tokens.lookup(token.strip())
    except TokenError as error:  # someone broke the file by hand: refuse everyone, loudly, not with a 500
        raise HTTPException(503, f"{error}; no bearer token is accepted until it is fixed") from None
    if entry is None:
        raise HTTPException(401, "the bearer token is not known to this server", headers={"WWW-Authenticate": "Bearer"})
    return entry


def approver(entry: Annotated[TokenEntry, Depends(bearer_identity)]) -> TokenEntry:
    if entry.role != "approver":
        raise HTTPException(403, f"{entry.identity!r} holds the {entry.role} role; this needs an approver")
    return entry


def breeder_or_approver(entry: Annotated[TokenEntry, Depends(bearer_identity)]) -> TokenEntry:
    if entry.role not in ("breeder", "approver"):
        raise HTTPException(403, f"{entry.identity!r} holds the {entry.role} role; breeding needs breeder or approver")
    return entry


def inference_key(request: Request) -> TokenEntry | None:
    """Dependency for /v1/*: when the config requires inference keys, an inference or approver token."""
    if not server_state(request).config.require_inference_key:  # optional by default (issue 6 item 5)
        return None
    entry = bearer_identity(request)
    if entry.role not in ("inference", "approver"):
        raise HTTPException(403, f"{entry.identity!r} holds the {entry.role} role; inference needs an inference key")
    return entry


Approver = Annotated[TokenEntry, Depends(approver)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class PromoteBody(_Body):
    candidate: str = Field(pattern=ARTIFACT_REF, description="artifact id or a unique prefix (6+ hex)")
    to: str = Field(pattern="^(shadow|canary|champion)$")
    niche: str = Field(pattern=NICHE)
    reason: str = Field(min_length=1, max_length=500)


class RollbackBody(_Body):
    niche: str = Field(pattern=NICHE)
    reason: str = Field(min_length=1, max_length=500)


class RetireBody(_Body):
    model: str = Field(pattern=ARTIFACT_REF, description="artifact id or a unique prefix (6+ hex)")
    niche: str = Field(pattern=NICHE)
    reason: str = Field(min_length=1, max_length=500)


class BreedBody(_Body):
    domain: str = Field(pattern=NICHE)


class AdminResult(BaseModel):
    actor: str
    events: list[dict]


def _refusal(error: RegistryError) -> HTTPException:
    """Governance refusals are the caller's to fix, never a 500: 404 unknown, 422 no evidence, 409 the rest."""
    if isinstance(error, NotFoundError):
        return HTTPException(404, str(error))
    if isinstance(error, EvidenceError):
        return HTTPException(422, str(error))
    return HTTPException(409, str(error))  # AuthorityError, BudgetError, TransitionError, ...


def _result(request: Request, who: TokenEntry, events) -> AdminResult:
    server_state(request).refresh_routes()  # the router must serve the new champion from the next request
    return AdminResult(actor=who.identity, events=[
        {"seq": e.seq, "type": e.type, "artifact": e.artifact, "actor": e.actor, "from": e.data.get("from"),
         "to": e.data.get("to"), "niche": e.data.get("niche")} for e in events])


# The handlers are ``async def`` with no await inside on purpose: they run one at a time on the event
# loop, so two admin calls can never interleave governance's check-then-transition (a budget check
# passing twice). Each takes milliseconds (a log read and one append).

@router.post("/promote", response_model=AdminResult)
async def admin_promote(body: PromoteBody, request: Request, who: Approver) -> AdminResult:
    """Move a candidate to shadow, canary or champion of a niche (evidence and authority checked)."""
    state = server_state(request)
    if body.to == "champion":
        _check_approval(state, body.candidate, body.niche)
    try:
        events = promote(state.registry, state.governance, body.candidate, body.to, niche=body.niche,
                         approver=who.identity, reason=body.reason)
    except RegistryError as error:
        raise _refusal(error) from None
    return _result(request, who, events)


def _check_approval(state, candidate: str, niche: str) -> None:
    """The rollout's approval gate (``rollout.min_approval``): people's ratings of the candidate's answers."""
    from breedlab.ecosystem.rollout import approval_gate

    if state.config.rollout.min_approval is None:
        return
    try:
        model = state.registry.get(candidate).id
    except RegistryError as error:
        raise _refusal(error) from None
    passed, why = approval_gate(state.config.rollout, state.feedback.approval(model, niche))
    if not passed:
        raise HTTPException(409, f"not crowned: {why}")


@router.post("/rollback", response_model=AdminResult)
async def admin_rollback(body: RollbackBody, request: Request, who: Approver) -> AdminResult:
    """Retire the niche's champion and restore the previous one (or the parent)."""
    state = server_state(request)
    try:
        events = rollback(state.registry, state.governance, body.niche, approver=who.identity, reason=body.reason)
    except RegistryError as error:
        raise _refusal(error) from None
    return _result(request, who, events)


@router.post("/retire", response_model=AdminResult)
async def admin_retire(body: RetireBody, request: Request, who: Approver) -> AdminResult:
    """Retire an active child of a niche (shadow, canary or champion); the parent is never retired."""
    state = server_state(request)
    try:
        check_approver(state.governance, who.identity)
        model = state.registry.get(body.model)
        if model.id not in {a.id for a in active_children(state.registry, body.niche)}:
            raise RegistryError(f"{model.id[:12]} ({model.state}) is not an active child of niche {body.niche!r}")
        event = state.registry.transition(model.id, "retired", event_type="retired", actor=who.identity,
                                          reason=body.reason, data={"niche": body.niche, "action": "retire"})
    except RegistryError as error:
        raise _refusal(error) from None
    return _result(request, who, [event])


@router.post("/breed", status_code=202)
async def admin_breed(body: BreedBody, request: Request,
                      who: Annotated[TokenEntry, Depends(breeder_or_approver)]) -> dict:
    """Start breeding for a domain in a worker process; events on the parent say how it went."""
    from breedlab.server.admin_breed import BreedingBusy, domain_problem

    state = server_state(request)
    problem = domain_problem(state.registry, body.domain)
    if problem:
        raise HTTPException(422, problem)
    try:
        run = await anyio.to_thread.run_sync(
            lambda: state.breeding.start(body.domain, identity=who.identity, role=who.role))
    except BreedingBusy as error:
        raise HTTPException(409, str(error)) from None
    return {"actor": who.identity, "role": who.role, "domain": body.domain, "status": "started",
            "log": str(run.log),
            "watch": "events breeding-triggered, then breeding-finished, breeding-failed or breeding-interrupted, "
                     "on the parent"}
