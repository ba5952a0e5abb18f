"""Probe (issue 12): how the router a home already has treats the hand-written questions.

Loads the newest non-retired ``router-policy`` of a home (what the server routes by), pretends every
known domain has an active specialist, and counts, per question set, where the questions go: to their
own domain's specialist (served accuracy), to another specialist, or kept on the parent. For
``general`` and ``out-of-domain`` the right answer is the parent.

    .venv/bin/python benchmarks/questions_probe.py --registry /tmp/bhome/registry
"""

from __future__ import annotations

import argparse
from collections import Counter

from breedlab.data.questions import load_questions, question_domains
from breedlab.ecosystem.router import load_policy
from breedlab.registry import Registry
from breedlab.server.setup import policy_embedder, router_policy_artifact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    args = parser.parse_args()
    artifact = router_policy_artifact(Registry.open(args.registry), "newest")  # the server's choice
    if artifact is None:
        raise SystemExit("no router-policy in this registry: run `breedlab demo` first")
    policy = load_policy(artifact, embedder=policy_embedder(artifact))
    specialists = {domain: f"{domain}-specialist" for domain in policy.domains}
    print(f"policy {artifact.manifest.name} {artifact.id[:12]} ({type(policy).name}, threshold "
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
