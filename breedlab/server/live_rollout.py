"""Shadow and canary children on live traffic, scored in the background after the response is sent.

The verdict rules are ``ecosystem.rollout``'s, not a copy: a ``Rollout`` per
niche holds the paired scores, ``judge`` says whether a canary broke the gate.

What is scored: for every pair, both models' mean next-token NLL on the same
text, **the prompt followed by the champion's answer** (the champion being the
model the niche's routing would use without the rollout: its champion child,
else the parent). The prompt alone is the replay's signal (``ModelPool.run``);
adding the champion's answer also measures the continuation users actually
get. Scoring on the champion's own greedy words favours the champion slightly:
that bias is conservative for a child that wants its traffic.

* shadow: the served model is the champion; the shadow child also answers the
  request (same sampling; counted, never returned), then both score the text.
  A ``shadow-scored`` event every ``shadow_record_every`` pairs carries the
  numbers and ``judge``'s view; crowning stays with the approver.
* canary: the canary served; the champion answers the prompt in the background
  and both score it. The last ``canary_window_queries`` pairs are judged after
  each pair; ``rollback`` moves the canary canary -> rejected by a
  ``rolled-back`` event of the lifecycle identity, with the numbers.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from breedlab.ecosystem.rollout import Rollout, judge
from breedlab.governance.niche import active_children
from breedlab.registry import RegistryError
from breedlab.server.generation import Sampling, mean_nll

log = logging.getLogger("breedlab.server")


@dataclass(frozen=True)
class Job:
    """One served auto request whose niche has a shadow or canary child."""

    niche: str
    child: str
    champion: str
    stage: str
    prompt: str
    prompt_ids: tuple[int, ...]
    answer: str
    """What the user got back."""
    sampling: Sampling


class LiveRollouts:
    """Shadow/canary children by niche; a single background thread scores their jobs in order."""

    def __init__(self, registry, config, metrics, host, on_rollback):
        self.registry, self.config, self.metrics, self.host = registry, config, metrics, host
        self.on_rollback = on_rollback
        """Called with the child id after an automatic rollback (the state refreshes its routes)."""
        self._rollouts: dict[str, Rollout] = {}
        self._lock = threading.Lock()
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="breedlab-shadow")

    def sync(self, niches: list[str]) -> None:
        """One rollout per niche with a shadow or canary child in the registry (a canary first)."""
        found = {}
        for niche in niches:
            children = [c for c in active_children(self.registry, niche) if c.state in ("shadow", "canary")]
            children.sort(key=lambda c: c.state != "canary")
            if children:
                found[niche] = (children[0].id, children[0].state)
        with self._lock:
            for niche, old in self._rollouts.items():
                if old.stage == "canary" and found.get(niche) != (old.child, "canary"):
                    self.metrics.canary.labels(niche, old.child[:12]).set(0)
            kept = {n: r for n, r in self._rollouts.items() if found.get(n) == (r.child, r.stage)}
            self._rollouts = {n: kept.get(n) or Rollout(child, n, stage=stage) for n, (child, stage) in found.items()}
            for niche, rollout in self._rollouts.items():
                if rollout.stage == "canary":
                    self.metrics.canary.labels(niche, rollout.child[:12]).set(1)

    def stages(self) -> dict[str, tuple[str, str]]:
        """niche -> (child id, 'shadow' | 'canary')."""
        with self._lock:
            return {n: (r.child, r.stage) for n, r in self._rollouts.items()}

    def submit(self, job: Job) -> bool:
        """Queue a job; False (and counted) when the backlog is full: evidence is optional, serving is not."""
        with self._lock:
            if self._pending >= self.config.shadow_queue_limit:
                self.metrics.background_dropped.inc()
                return False
            self._pending += 1
        try:
            self._executor.submit(self._run, job)
        except RuntimeError:  # shut down: the server is draining
            with self._lock:
                self._pending -= 1
            return False
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every job queued so far (tests, shutdown)."""
        self._executor.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job) -> None:
        try:
            with self._lock:
                rollout = self._rollouts.get(job.niche)
            if rollout is None or rollout.child != job.child or rollout.stage != job.stage:
                return  # the rollout changed since the request (promoted, rolled back): no stale pairs
            scored = self._score(job)
            if scored is None:
                return
            rollout.add_pair(*scored)
            if job.stage == "shadow":
                self._after_shadow(rollout)
            else:
                self._after_canary(rollout)
        except Exception as error:  # background evidence never crashes the server
            log.exception("shadow/canary scoring failed for %s: %s", job.child[:12], error)
        finally:
            with self._lock:
                self._pending -= 1

    def _score(self, job: Job) -> tuple[float, float] | None:
        """(child NLL, champion NLL) on prompt + champion's answer; None if either model is unavailable."""
        child, champion = self.host.get(job.child), self.host.get(job.champion)
        if child.fallback or champion.fallback:
            return None
        if job.stage == "shadow":
            copy = child.generation(job.prompt_ids, job.sampling)
            copy.run()  # the shadow's own answer: real work, counted, never returned
            self.metrics.tokens.labels(job.child[:12], "shadow").inc(copy.completion_tokens)
            answer = job.answer
        else:
            reference = champion.generation(job.prompt_ids, job.sampling)
            answer = reference.run()
            self.metrics.tokens.labels(job.champion[:12], "shadow").inc(reference.completion_tokens)
        text = job.prompt + answer
        return (mean_nll(child.model, child.tokenizer, text, child.context),
                mean_nll(champion.model, champion.tokenizer, text, champion.context))

    def _after_shadow(self, rollout: Rollout) -> None:
        n = len(rollout.child_nll)
        self.metrics.shadow_scores.labels(rollout.niche).inc()
        self.metrics.shadow_delta.labels(rollout.niche, rollout.child[:12], "shadow").set(rollout.mean_delta())
        if n == 0 or n % self.config.shadow_record_every:
            return
        view = judge(replace(rollout), self.config.rollout)  # a copy: judge counts windows
        child_mean, champion_mean = _mean(rollout.child_nll), _mean(rollout.champion_nll)
        self.registry.record(
            "shadow-scored", rollout.child, actor=self.config.lifecycle.actor,
            reason=(f"shadow on {n} live {rollout.niche} queries: child NLL {child_mean:.4f}, champion NLL "
                    f"{champion_mean:.4f}, delta {rollout.mean_delta():+.4f} nats/token (never returned); "
                    f"{view.reason}"),
            data={"niche": rollout.niche, "queries": n, "child_nll": child_mean, "champion_nll": champion_mean,
                  "mean_delta": rollout.mean_delta(), "verdict": view.action, "scored": "prompt + champion answer"})

    def _after_canary(self, rollout: Rollout) -> None:
        window = self.config.canary_window_queries
        del rollout.child_nll[:-window], rollout.champion_nll[:-window]  # rolling window, oldest dropped
        self.metrics.shadow_delta.labels(rollout.niche, rollout.child[:12], "canary").set(rollout.mean_delta())
        verdict = judge(replace(rollout), self.config.rollout)
        if verdict.action != "rollback":
            return
        try:
            self.registry.transition(
                rollout.child, "rejected", event_type="rolled-back", actor=self.config.lifecycle.actor,
                reason=f"{verdict.reason}; {rollout.niche} returns to its champion (scored: prompt + champion answer)",
                data={"niche": rollout.niche, **verdict.data, "window": window, "source": "live traffic"})
        except RegistryError as error:  # someone moved it meanwhile (an approver); the registry has the final word
            log.warning("canary %s not rolled back: %s", rollout.child[:12], error)
        self.metrics.rollbacks.labels(rollout.niche).inc()
        self.on_rollback(rollout.child)


def _mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))

