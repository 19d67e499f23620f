"""Dawid-Skene annotator reliability and the adaptive-overlap decision.

The EM estimate is checked on the data of Dawid & Skene (1979), Table 1 (45 patients, 5 observers, 4
classes; observer 1 rated every patient three times), against crowd-kit 1.4.2's ``DawidSkene``
(``n_iter=1000, tol=-1``, i.e. run to its fixed point), an independent implementation. Posteriors of
single clips are checked against Bayes' rule worked by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.overlap import AnnotatorModel, dawid_skene, label_posterior, overlap_decisions

# Patient, observer 1's three answers, then observers 2-5 (Dawid & Skene 1979, Table 1).
TABLE_1 = """
1 111 1 1 1 1|2 333 4 3 3 4|3 112 2 1 2 2|4 222 3 1 2 1|5 222 3 2 2 2|6 222 3 3 2 2|7 122 2 1 1 1
8 333 3 4 3 3|9 222 2 2 2 3|10 232 2 2 2 3|11 444 4 4 4 4|12 222 3 3 4 3|13 111 1 1 1 1
14 222 3 2 1 2|15 121 1 1 1 1|16 111 2 1 1 1|17 111 1 1 1 1|18 111 1 1 1 1|19 222 2 2 2 1
20 222 1 3 2 2|21 222 2 2 2 2|22 222 2 2 2 1|23 222 3 2 2 2|24 221 2 2 2 2|25 111 1 1 1 1
26 111 1 1 1 1|27 232 2 2 2 2|28 111 1 1 1 1|29 111 1 1 1 1|30 112 1 1 2 1|31 111 1 1 1 1
32 333 3 2 3 3|33 111 1 1 1 1|34 222 2 2 2 2|35 222 3 2 3 2|36 433 4 3 4 3|37 221 2 2 3 2
38 232 3 2 3 3|39 333 3 4 3 2|40 111 1 1 1 1|41 111 1 1 1 1|42 121 2 1 1 1|43 232 2 2 2 2
44 121 1 1 1 1|45 222 2 2 2 2
"""


def dawid_skene_1979() -> pd.DataFrame:
    rows = []
    for record in TABLE_1.replace("\n", "|").split("|"):
        if not record.strip():
            continue
        patient, first, *others = record.split()
        rows += [(int(patient), 1, int(answer)) for answer in first]
        rows += [(int(patient), observer, int(a)) for observer, a in zip((2, 3, 4, 5), others, strict=True)]
    return pd.DataFrame(rows, columns=["clip_id", "annotator_id", "label"])


def test_the_papers_data_has_the_papers_shape():
    data = dawid_skene_1979()
    assert data["clip_id"].nunique() == 45
    assert len(data) == 45 * 7
    assert sorted(data["label"].unique()) == [1, 2, 3, 4]


def test_dawid_skene_on_the_1979_data_matches_crowd_kit():
    model = dawid_skene(dawid_skene_1979(), smoothing=0.0, max_iter=1000, tol=1e-12)
    assert model.converged
    assert model.priors == pytest.approx([0.399555, 0.421983, 0.111795, 0.066667], abs=1e-6)
    # The clips whose class is not certain, P(class 1..4).
    soft = {
        7: [0.981020, 0.018980, 0.0, 0.0],
        15: [0.999997, 0.000003, 0.0, 0.0],
        30: [0.999146, 0.000854, 0.0, 0.0],
        32: [0.0, 0.000021, 0.999979, 0.0],
        35: [0.0, 0.947995, 0.052005, 0.0],
        38: [0.0, 0.021200, 0.978800, 0.0],
        42: [0.999806, 0.000194, 0.0, 0.0],
    }
    for clip, expected in soft.items():
        assert model.posteriors.loc[clip].to_numpy() == pytest.approx(expected, abs=2e-6), clip
    assert "".join(str(v) for v in model.labels().to_numpy()) == (
        "142222132243121111222222112111131224233111212"
    )
    # Observer 1: P(answer | true class 1) and P(answer | true class 2).
    first = list(model.annotators).index(1)
    assert model.confusion[first, 0] == pytest.approx([0.889488, 0.110512, 0.0, 0.0], abs=2e-6)
    assert model.confusion[first, 1] == pytest.approx([0.070585, 0.876380, 0.053035, 0.0], abs=2e-6)
    assert np.allclose(model.confusion.sum(axis=2), 1.0)


def test_dawid_skene_recovers_simulated_annotator_accuracies():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 3000)
    accuracy = {"ana": 0.95, "ben": 0.9, "cho": 0.75}
    rows = []
    for who, acc in accuracy.items():
        right = rng.random(truth.size) < acc
        wrong = (truth + rng.integers(1, 5, truth.size)) % 5
        rows.append(pd.DataFrame({"clip_id": np.arange(truth.size), "annotator_id": who}))
        rows[-1]["label"] = np.where(right, truth, wrong)
    model = dawid_skene(pd.concat(rows))
    estimated = model.accuracy()
    for who, acc in accuracy.items():
        assert estimated[who] == pytest.approx(acc, abs=0.02), who
    # With errors spread evenly, Bayes' rule for these three is: ben and cho agreeing outvote ana,
    # anything else goes ana's way. The estimate (full confusion matrices) comes within 1% of it.
    ana, ben, cho = (frame["label"].to_numpy() for frame in rows)
    bayes = np.where(ben == cho, ben, ana)
    assert (model.labels().to_numpy() == truth).mean() >= (bayes == truth).mean() - 0.01


def two_annotators() -> AnnotatorModel:
    """Two classes; annotator 'a' is right 90% of the time, 'b' 80%, both symmetric; shares 50/50."""
    confusion = np.array([[[0.9, 0.1], [0.1, 0.9]], [[0.8, 0.2], [0.2, 0.8]]])
    return AnnotatorModel(
        classes=np.array(["yes", "no"]),
        annotators=pd.Index(["a", "b"]),
        priors=np.array([0.5, 0.5]),
        confusion=confusion,
        pooled=confusion.mean(axis=0),
        posteriors=pd.DataFrame(),
        n_annotations=np.array([1.0, 1.0]),
        n_iter=0,
        converged=True,
        log_likelihood=0.0,
    )


def test_label_posterior_is_bayes_rule_worked_by_hand():
    model = two_annotators()
    # Both say yes: 0.9·0.8 / (0.9·0.8 + 0.1·0.2) = 0.72 / 0.74.
    agree = label_posterior(["yes", "yes"], ["a", "b"], model=model)
    assert agree["yes"] == pytest.approx(0.72 / 0.74)
    # They disagree: 0.9·0.2 / (0.9·0.2 + 0.1·0.8) = 0.18 / 0.26, the better annotator wins.
    split = label_posterior(["yes", "no"], ["a", "b"], model=model)
    assert split["yes"] == pytest.approx(0.18 / 0.26)
    # A prior of 0.2 for yes and one 'yes' from a: 0.2·0.9 / (0.2·0.9 + 0.8·0.1).
    assert label_posterior(["yes"], ["a"], model=model, prior=[0.2, 0.8])["yes"] == pytest.approx(0.18 / 0.26)
    # A newcomer counts as the average annotator (85% here).
    assert label_posterior(["yes"], ["zoe"], model=model)["yes"] == pytest.approx(0.85)
    # Unsure halves the evidence: 0.5·0.9 + 0.5·0.5 = 0.7.
    assert label_posterior(["yes"], ["a"], model=model, unsure=[True])["yes"] == pytest.approx(0.7)
    assert label_posterior([], [], model=model).to_numpy() == pytest.approx([0.5, 0.5])


def test_overlap_decisions_ask_again_only_where_the_majority_label_is_in_doubt():
    model = two_annotators()
    annotations = pd.DataFrame(
        [
            (1, "a", "yes"),  # one reliable answer: 0.9 < 0.95, ask again
            (2, "a", "yes"),
            (2, "b", "yes"),  # two agreeing: 0.973 >= 0.95, done
            (3, "a", "yes"),
            (3, "b", "no"),
            (3, "zoe", "no"),  # three, majority 'no' at 0.39: in doubt but max_k reached
        ],
        columns=["clip_id", "annotator_id", "label"],
    )
    out = overlap_decisions(annotations, model=model, min_k=1, max_k=3, target=0.95)
    assert out["more_needed"].tolist() == [True, False, False]
    assert out.loc[2, "majority_posterior"] == pytest.approx(0.72 / 0.74)
    assert out.loc[3, "majority"] == "no"
    # P(no | yes from a, no from b, no from zoe) = 0.1·0.8·0.85 / (that + 0.9·0.2·0.15).
    assert out.loc[3, "majority_posterior"] == pytest.approx(0.068 / (0.068 + 0.027))
    assert out.loc[3, "reason"] == "3 annotations reached"
    assert overlap_decisions(annotations, model=model, min_k=2, target=0.5).loc[1, "more_needed"]


def test_the_model_settles_a_clip_when_it_agrees_and_asks_again_when_it_disagrees():
    model = two_annotators()
    one_each = pd.DataFrame({"clip_id": [1, 2], "annotator_id": ["a", "a"], "label": ["yes", "yes"]})
    proba = pd.DataFrame({"yes": [0.99, 0.01], "no": [0.01, 0.99]}, index=[1, 2])
    out = overlap_decisions(one_each, model=model, model_proba=proba, model_weight=0.8, target=0.95)
    assert out["more_needed"].tolist() == [False, True]
    # Prior for clip 1: 0.2·0.5 + 0.8·0.99 = 0.892 for yes; one 'yes' from a makes it 0.8028/0.8144.
    assert out.loc[1, "majority_posterior"] == pytest.approx(0.892 * 0.9 / (0.892 * 0.9 + 0.108 * 0.1))


def test_bad_annotations_are_refused_with_a_message():
    with pytest.raises(ValueError, match="missing annotator_id"):
        dawid_skene(pd.DataFrame({"clip_id": [1], "label": ["x"]}))
    with pytest.raises(ValueError, match="two classes"):
        dawid_skene(pd.DataFrame({"clip_id": [1], "annotator_id": ["a"], "label": ["x"]}))
    with pytest.raises(ValueError, match="not among"):
        dawid_skene(
            pd.DataFrame({"clip_id": [1, 1], "annotator_id": ["a", "b"], "label": ["x", "y"]}),
            classes=["x", "z"],
        )
    with pytest.raises(ValueError, match="min_k"):
        overlap_decisions(
            pd.DataFrame({"clip_id": [1], "annotator_id": ["a"], "label": ["yes"]}),
            model=two_annotators(),
            min_k=3,
            max_k=2,
        )


def test_an_answer_marked_unsure_is_weaker_evidence():
    model = two_annotators()
    annotations = pd.DataFrame(
        {
            "clip_id": [1, 2, 3],
            "annotator_id": ["a", "a", "a"],
            "label": ["yes", "yes", "yes"],
            "unsure": [False, True, None],
        }
    )
    out = overlap_decisions(annotations, model=model, target=0.8)
    assert out.loc[1, "majority_posterior"] == pytest.approx(0.9)
    assert out.loc[2, "majority_posterior"] == pytest.approx(0.7)
    assert out.loc[3, "majority_posterior"] == pytest.approx(0.9), "a missing flag means sure"
    assert out["more_needed"].tolist() == [False, True, False]
