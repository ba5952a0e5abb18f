"""Task metrics: how a generated answer is scored against the held-out example's output.

Each task kind has one per-case primary score in [0, 1] (what the paired tests and the
non-inferiority rule compare, case by case, as they compare cloze today) and a few corpus
figures for the record:

| task | per case (primary) | also | computed by |
|---|---|---|---|
| ``classify`` | normalised exact match | macro-F1 over the reference labels | sklearn ``f1_score`` |
| ``extract`` | token F1 (SQuAD) | normalised exact match | the SQuAD v1.1 definition |
| ``summarize``, ``rewrite`` | ROUGE-L F (stemmed) | chrF | ``rouge-score``, ``sacrebleu`` |
| ``grounded`` | support (below) x citation validity | support, citation validity | this module |

**Normalisation** (classify, extract; SQuAD's): lower case, punctuation removed, the articles
a/an/the removed, whitespace collapsed.

**Grounded support** is deterministic: the answer's content tokens are its lower-cased word
tokens (``\\w+``) minus a fixed list of English function words; its content bigrams are the
pairs of consecutive content tokens. Support is the share of those bigrams that also occur as
consecutive content tokens in some source (an answer of one content word: the share of its
unigrams). An answer copied from a source scores 1.0; an answer sharing no phrase with any
source scores 0.0; an answer with no content tokens scores 0.0. **Citation validity**, when the
task asks for citations: the share of the answer's ``[k]`` markers that name a given source
(1 <= k <= number of sources) whose content tokens support at least one of the answer's
bigrams; no marker at all is 0. Without citations required it is 1.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from breedlab.data.examples import TASKS

WORD = re.compile(r"\w+")
CITATION = re.compile(r"\[(\d+)\]")
ARTICLES = re.compile(r"\b(a|an|the)\b")
FUNCTION_WORDS = frozenset("""a an the and or but if of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very can will just
is are was were be been being have has had having do does did doing it its this that these those i you he she we
they them his her their our your my me him us what which who whom as s t""".split())


@dataclass
class TaskScores:
    """One task's scores on one suite: the per-case primary score, and corpus figures."""

    task: str
    per_case: list[float]
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.per_case) / len(self.per_case) if self.per_case else 0.0


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token F1 over normalised tokens (two empty answers agree)."""
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum(min(pred.count(t), ref.count(t)) for t in set(pred))
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def classify(predictions: list[str], references: list[str]) -> TaskScores:
    from sklearn.metrics import f1_score

    pred, ref = [normalise(p) for p in predictions], [normalise(r) for r in references]
    labels = sorted(set(ref))
    macro = f1_score(ref, pred, labels=labels, average="macro", zero_division=0) if ref else 0.0
    return TaskScores("classify", [float(p == r) for p, r in zip(pred, ref)], {"macro_f1": float(macro)})


def extract(predictions: list[str], references: list[str]) -> TaskScores:
    exact = [float(normalise(p) == normalise(r)) for p, r in zip(predictions, references)]
    scores = TaskScores("extract", [token_f1(p, r) for p, r in zip(predictions, references)])
    scores.figures["exact_match"] = sum(exact) / len(exact) if exact else 0.0
    return scores


def overlap(task: str, predictions: list[str], references: list[str]) -> TaskScores:
    """summarize / rewrite: ROUGE-L F1 (rouge-score, Porter-stemmed) per case, chrF (sacrebleu) beside it."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    chrf = [sacrebleu.sentence_chrf(p, [r]).score / 100 for p, r in zip(predictions, references)]
    return TaskScores(task, rouge, {"chrf": sum(chrf) / len(chrf) if chrf else 0.0})


def content_tokens(text: str) -> list[str]:
    return [t for t in WORD.findall(text.lower()) if t not in FUNCTION_WORDS]


def _grams(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1)} if len(tokens) > 1 else {tuple(tokens)}


def support(answer: str, sources: list[str]) -> float:
    """Share of the answer's content bigrams found in the sources (the module docstring)."""
    grams = _grams(content_tokens(answer))
    if not grams or grams == {()}:
        return 0.0
    found = set().union(*(_grams(content_tokens(s)) | {(t,) for t in content_tokens(s)} for s in sources)) \
        if sources else set()
    return sum(g in found for g in grams) / len(grams)


def citation_validity(answer: str, sources: list[str]) -> float:
    """Share of ``[k]`` markers naming a source that supports part of the answer (0 with no marker)."""
    marks = [int(k) for k in CITATION.findall(answer)]
    if not marks:
        return 0.0
    plain = CITATION.sub(" ", answer)
    valid = [1 <= k <= len(sources) and support(plain, [sources[k - 1]]) > 0 for k in marks]
    return sum(valid) / len(valid)


def grounded(predictions: list[str], sources: list[list[str]], *, citations: bool = False) -> TaskScores:
    supported = [support(CITATION.sub(" ", p), s) for p, s in zip(predictions, sources)]
    valid = [citation_validity(p, s) if citations else 1.0 for p, s in zip(predictions, sources)]
    n = max(1, len(supported))
    return TaskScores("grounded", [a * b for a, b in zip(supported, valid)],
                      {"support": sum(supported) / n, "citation_validity": sum(valid) / n})


def score_task(task: str, predictions: list[str], references: list[str], *,
               sources: list[list[str]] | None = None, citations: bool = False) -> TaskScores:
    """The task's scores of ``predictions`` against the held-out ``references`` (grounded: ``sources``)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if task == "classify":
        return classify(predictions, references)
    if task == "extract":
        return extract(predictions, references)
    if task in ("summarize", "rewrite"):
        return overlap(task, predictions, references)
    if task == "grounded":
        if sources is None or len(sources) != len(predictions):
            raise ValueError("a grounded task needs the sources of every case")
        return grounded(predictions, sources, citations=citations)
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
