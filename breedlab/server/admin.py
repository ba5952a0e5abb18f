"""Admin endpoints under /admin/: promote, rollback, retire, trigger breeding.

Each call needs ``Authorization: Bearer <token>`` naming a role from the
home's token file (see ``tokens``). Promote, rollback and retire need the
approver role and go through ``governance.promotion`` unchanged, so the
evidence rule and the breeder != approver rule apply exactly as on the
CLI; the token's identity is the actor of every event. The token itself is
never written anywhere: not in events, logs or error messages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from ..governance.promotion import AuthorityError, BudgetError, EvidenceError, promote, rollback
from ..registry import RegistryError
from ..registry.errors import NotFoundError
from .tokens import TokenBook, TokenEntry, read_book

router = APIRouter(prefix="/admin", tags=["admin"])


def load_tokens(home: Path) -> TokenBook:
    """The token book of a breedlab home (empty when no token was ever made)."""
    return read_book(Path(home))


def _state(request: Request):
    return request.app.state.breedlab


def bearer_identity(request: Request) -> TokenEntry:
    """The token entry presented in the Authorization header; 401 when absent or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    entry = _state(request).tokens.lookup(token.strip())
    if entry is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return entry


def approver(entry: TokenEntry = Depends(bearer_identity)) -> TokenEntry:
    if entry.role != "approver":
        raise HTTPException(403, f"{entry.identity!r} holds the {entry.role} role; this needs an approver")
    return entry


class PromoteBody(BaseModel):
    candidate: str = Field(min_length=4, max_length=64, description="artifact id or unique prefix")
    to: str = Field(pattern="^(shadow|canary|champion)$")
    niche: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class RollbackBody(BaseModel):
    niche: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


def _refusal(error: RegistryError) -> HTTPException:
    """Governance refusals are the caller's problem, never a 500: 404 unknown, 422 evidence, 409 the rest."""
    if isinstance(error, NotFoundError):
        return HTTPException(404, str(error))
    if isinstance(error, EvidenceError):
        return HTTPException(422, str(error))
    if isinstance(error, (AuthorityError, BudgetError)):
        return HTTPException(409, str(error))
    return HTTPException(409, str(error))


def _events(events) -> list[dict]:
    return [{"seq": e.seq, "type": e.type, "artifact": e.artifact, "actor": e.actor, "to": e.data.get("to")}
            for e in events]


@router.post("/promote")
def admin_promote(body: PromoteBody, request: Request, who: TokenEntry = Depends(approver)) -> dict:
    state = _state(request)
    try:
        events = promote(state.registry, state.governance, body.candidate, body.to, niche=body.niche,
                         approver=who.identity, reason=body.reason)
    except RegistryError as error:
        raise _refusal(error) from None
    return {"actor": who.identity, "events": _events(events)}


@router.post("/rollback")
def admin_rollback(body: RollbackBody, request: Request, who: TokenEntry = Depends(approver)) -> dict:
    state = _state(request)
    try:
        events = rollback(state.registry, state.governance, body.niche, approver=who.identity, reason=body.reason)
    except RegistryError as error:
        raise _refusal(error) from None
    return {"actor": who.identity, "events": _events(events)}
