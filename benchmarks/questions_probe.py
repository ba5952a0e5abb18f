"""Probe (issue 12): how the router a home already has treats the hand-written questions.

Loads the router policy a home routes by (its champion; for a home from before issue 12, which has
none, the newest non-retired ``router-policy``, what the server routed by then), pretends every
known domain has an active specialist, and counts, per question set, where the questions go: to their
own domain's specialist (served accuracy), to another specialist, or kept on the parent. For
``general`` and ``out-of-domain`` the right answer is the parent.

    .venv/bin/python benchmarks/questions_probe.py --registry /tmp/bhome/registry
"""

from __future__ import annotations

import argparse
from collections import Counter

from breedlab.data.questions import load_questions, question_domains
from breedlab.ecosystem.router.base import load_policy
from breedlab.ecosystem.router.candidates import champion_policy
from breedlab.registry import Registry
from breedlab.server.setup import policy_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    args = parser.parse_args()
    registry = Registry.open(args.registry)
    artifact = champion_policy(registry) or next(
        (a for a in registry.find(kind="router-policy") if a.state not in ("retired", "rejected")), None)
    if artifact is None:
        raise SystemExit("no router-policy in this registry: run `breedlab demo` first")
    policy = load_policy(artifact, embedder=policy_embedder(artifact))
    specialists = {domain: f"{domain}-specialist" for domain in policy.domains}
    print(f"policy {artifact.manifest.name} {artifact.id[:12]} ({artifact.state}, {type(policy).name}, threshold "
          f"{policy.threshold:.3f}, domains {', '.join(policy.domains)})")
    print(f"{'set':<14} {'n':>3} {'own specialist':>15} {'other specialist':>17} {'parent':>7}")
    for name in question_domains():
        questions = load_questions(name)
        routes = policy.route([q.text for q in questions], specialists)
        counts = Counter("parent" if r.target is None else "own" if r.domain == name else "other"
                         for r in routes)
        print(f"{name:<14} {len(questions):>3} {counts['own']:>15} {counts['other']:>17} {counts['parent']:>7}")


if __name__ == "__main__":
    main()
