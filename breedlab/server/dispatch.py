"""One request through the ecosystem: decide, load (parent fallback), bound, generate, record.

``prepare`` does everything that can refuse a request (unknown model, prompt
over the context limit, max_tokens out of bounds) before a generation slot is
taken, so bad input never waits in the queue. ``finish`` runs after the
answer is complete (for a plain response: after it was sent): metrics, the
routing history, the task monitor, and the background shadow/canary job;
``refused`` logs a query that was read but refused, so the monitor sees all
demand (only a body too malformed to hold a query is not logged).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from breedlab.server.engine import Loaded
from breedlab.server.errors import ApiError
from breedlab.server.generation import Generation, Sampling
from breedlab.server.live_rollout import Job
from breedlab.server.routing import Decision, ModelNotFound


@dataclass(frozen=True)
class Prepared:
    """A request ready to generate."""

    decision: Decision
    loaded: Loaded
    served_name: str
    endpoint: str
    prompt: str
    """The exact text the model continues (chat: rendered by its template)."""
    prompt_ids: tuple[int, ...]
    route_text: str
    """What the router and the task monitor see (chat: the user's words, not the template)."""
    sampling: Sampling
    started: float

    def generation(self) -> Generation:
        return self.loaded.generation(self.prompt_ids, self.sampling)

    def served(self) -> dict:
        """The ``breedlab`` object of the response."""
        d = self.decision
        return {"served_by": self.served_name, "artifact_id": self.loaded.id, "requested": d.requested,
                "route": d.route, "confidence": None if d.confidence is None else round(d.confidence, 4),
                "reason": d.reason if not self.loaded.fallback else f"{d.reason}; {self.loaded.fallback}",
                "canary": d.canary and not self.loaded.fallback, "fallback": self.loaded.fallback,
                "seed": self.sampling.seed, "engine": self.loaded.engine.backend,
                "quantization": self.loaded.engine.quantization}

    def headers(self) -> dict[str, str]:
        headers = {"x-breedlab-model": self.served_name, "x-breedlab-artifact": self.loaded.id,
                   "x-breedlab-route": self.decision.route,
                   "x-breedlab-engine": f"{self.loaded.engine.backend}/{self.loaded.engine.quantization}"}
        if self.decision.confidence is not None:
            headers["x-breedlab-confidence"] = f"{self.decision.confidence:.4f}"
        return headers


def prepare(state, *, model: str, render, route_text: str, endpoint: str, max_tokens: int | None,
            temperature: float, top_p: float, seed: int | None, stop: tuple[str, ...]) -> Prepared:
    """Route and bound one request (blocking: run it in a worker thread).

    ``render(tokenizer) -> (prompt text, extra stop strings)`` builds the prompt for the
    model that will serve (a chat needs that model's template).
    """
    started = time.perf_counter()
    try:
        decision = state.decide(model, route_text)
    except ModelNotFound as error:
        raise ApiError(404, str(error), param="model", code=error.code) from None
    loaded = state.host.get(decision.model_id)
    prompt, extra_stops = render(loaded.tokenizer)
    stop = tuple(dict.fromkeys((*stop, *extra_stops)))
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    if not ids and loaded.tokenizer.bos_token_id is not None:
        ids = [loaded.tokenizer.bos_token_id]  # an empty prompt continues from the start of a text
    if not ids:
        raise ApiError(400, "the prompt is empty", param="prompt", code="empty_prompt")
    wanted = answer_budget(state.config, loaded, len(ids), max_tokens)
    sampling = Sampling(max_new_tokens=wanted, temperature=temperature, top_p=top_p,
                        seed=seed if seed is not None else secrets.randbits(63), stop=stop,
                        deadline=time.monotonic() + state.config.request_timeout_s)
    return Prepared(decision, loaded, state.catalogue.name_of(loaded.id), endpoint, prompt, tuple(ids), route_text,
                    sampling, started)


def answer_budget(config, loaded: Loaded, prompt_tokens: int, max_tokens: int | None) -> int:
    """Tokens the answer may have: ``max_tokens`` if it fits, else a 400 saying what does fit."""
    limit = config.max_new_tokens_limit
    if max_tokens is not None and max_tokens > limit:
        raise ApiError(400, f"max_tokens {max_tokens} exceeds this server's limit of {limit}", param="max_tokens",
                       code="max_tokens_too_large")
    room = loaded.context - prompt_tokens
    if room < 1:
        raise ApiError(400, f"the prompt has {prompt_tokens} tokens; this model's context is {loaded.context}: "
                            "shorten the prompt", param="prompt", code="context_length_exceeded")
    wanted = max_tokens or min(config.default_max_tokens, room)
    if wanted > room:
        raise ApiError(400, f"this model's context is {loaded.context} tokens; the prompt has {prompt_tokens}, so "
                            f"at most {room} more fit, not {wanted}: lower max_tokens", param="max_tokens",
                       code="context_length_exceeded")
    return wanted


def finish(state, prepared: Prepared, generation: Generation, *, completed: bool = True,
           response_id: str | None = None) -> None:
    """Telemetry for a served request (and its id, so a person can rate it), then its shadow/canary job."""
    name, metrics = prepared.served_name, state.metrics
    prompt_tokens = len(prepared.prompt_ids)
    metrics.tokens.labels(name, "prompt").inc(prompt_tokens)
    metrics.tokens.labels(name, "completion").inc(generation.completion_tokens)
    metrics.routes.labels(prepared.decision.route, name).inc()
    state.history.add(name)
    latency_ms = (time.perf_counter() - prepared.started) * 1e3
    state.monitor.log(prepared.route_text, model=prepared.loaded.id, latency_ms=latency_ms,
                      tokens=prompt_tokens + generation.completion_tokens)
    if state.detector is not None:
        state.detector.logged()  # live traffic drives the detector
    if completed and response_id and state.feedback is not None:
        state.feedback.served(response_id, model=prepared.loaded.id, niche=prepared.decision.niche)
    job = _job(state, prepared, generation.text) if completed and state.config.shadow else None
    if job is not None:
        state.rollouts.submit(job)


def refused(state, route_text: str, error: ApiError, started: float) -> None:
    """A query refused after it was read (too long, unknown model, queue full) is still demand: log it.

    The monitor's ``model`` column says ``refused:<code>``; the detector counts the query like a
    served one, so a domain whose prompts are all over the context limit can still ask for a spawn.
    """
    if not route_text:
        return
    state.monitor.log(route_text, model=f"refused:{error.code or error.status}",
                      latency_ms=(time.perf_counter() - started) * 1e3, tokens=0)
    if state.detector is not None:
        state.detector.logged()


def _job(state, prepared: Prepared, answer: str) -> Job | None:
    decision, loaded = prepared.decision, prepared.loaded
    if decision.niche is None or loaded.fallback:
        return None
    child, stage = state.rollouts.stages().get(decision.niche, (None, None))
    sampling = replace(prepared.sampling, deadline=None)  # background work is not bound by the request's clock
    common = {"niche": decision.niche, "prompt": prepared.prompt, "prompt_ids": prepared.prompt_ids,
              "answer": answer, "sampling": sampling}
    if stage == "shadow" and not decision.canary:
        return Job(child=child, champion=loaded.id, stage="shadow", **common)
    if stage == "canary" and decision.canary and loaded.id == child:
        return Job(child=child, champion=state.routes.get(decision.niche, state.parent_id), stage="canary", **common)
    return None

