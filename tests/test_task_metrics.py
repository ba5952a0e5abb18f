"""Task metrics on fixed cases, against hand-worked values and the reference libraries."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from breedlab.evaluation.task_metrics import (
    citation_validity,
    normalise,
    score_task,
    support,
    token_f1,
)


def test_classify_matches_normalised_labels_and_macro_f1_by_hand():
    scores = score_task("classify", ["MIT", "apache", "gpl", "MIT."], ["mit", "Apache", "mit", "mit"])
    assert scores.per_case == [1.0, 1.0, 0.0, 1.0]
    # apache: P = R = 1 -> F 1.0; mit: TP 2, FN 1 -> P 1, R 2/3 -> F 0.8; macro over the reference labels
    assert scores.figures["macro_f1"] == pytest.approx(0.9)


def test_extract_is_squad_exact_match_and_token_f1():
    assert normalise("The  Cat, sat!") == "cat sat"
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    scores = score_task("extract", ["The cat", "dog"], ["cat", "cat"])
    assert scores.per_case == [1.0, 0.0] and scores.figures["exact_match"] == 0.5


def test_summaries_are_rouge_l_and_chrf_from_the_libraries():
    pred, ref = "the cat is on the mat", "the cat sat on the mat"
    scores = score_task("summarize", [pred], [ref])
    assert scores.per_case[0] == pytest.approx(5 / 6)  # LCS "the cat on the mat": P = R = 5/6
    library = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, pred)["rougeL"].fmeasure
    assert scores.per_case[0] == pytest.approx(library)
    assert scores.figures["chrf"] == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score / 100)
    assert score_task("rewrite", [ref], [ref]).per_case == [pytest.approx(1.0)]


def test_grounded_support_is_one_for_a_copy_and_zero_for_an_unrelated_answer():
    source = "Arachnodactyly is an abnormal length and slenderness of the fingers and toes."
    assert support("an abnormal length and slenderness of the fingers", [source]) == 1.0
    assert support("The weather in Paris is mild in spring.", [source]) == 0.0
    assert support("of the and", [source]) == 0.0  # no content words: nothing is supported
    half = support("abnormal length of the fingers; purple elephants dance", [source])
    assert 0.0 < half < 1.0


def test_citations_count_only_when_they_name_a_supporting_source():
    sources = ["Fever is an elevated body temperature.", "Rash is a change of the skin."]
    assert citation_validity("elevated body temperature [1]", sources) == 1.0
    assert citation_validity("elevated body temperature [2]", sources) == 0.0  # the wrong source
    assert citation_validity("elevated body temperature [3]", sources) == 0.0  # no such source
    assert citation_validity("elevated body temperature", sources) == 0.0
    cited = score_task("grounded", ["elevated body temperature [1]"], [""], sources=[sources], citations=True)
    assert cited.per_case == [1.0]


def test_bad_calls_are_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        score_task("translate", ["a"], ["b"])
    with pytest.raises(ValueError, match="sources"):
        score_task("grounded", ["a"], ["b"])
    with pytest.raises(ValueError, match="predictions"):
        score_task("classify", ["a", "b"], ["b"])


def test_the_sign_test_on_task_scores_counts_who_scored_higher_and_is_mcnemar_on_0_1():
    from breedlab.evaluation.stats import paired_sign_test, sign_test

    binary_a, binary_b = [1, 0, 0, 1, 0, 1], [1, 1, 1, 0, 1, 1]
    assert paired_sign_test(binary_a, binary_b) == sign_test(binary_a, binary_b)
    test = paired_sign_test([0.2, 0.5, 0.5, 0.9], [0.4, 0.5, 0.7, 0.1])  # b higher twice, lower once, one tie
    assert (test.discordant_b_wins, test.discordant_a_wins) == (2, 1)
    assert test.p_b_better == pytest.approx(0.5)  # P(X >= 2), X ~ Binomial(3, 1/2)
