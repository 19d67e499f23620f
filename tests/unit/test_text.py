"""Transcript normalisation and WER/CER, with jiwer as the independent reference."""

from __future__ import annotations

import jiwer
import numpy as np
import pandas as pd
import pytest

from analysis.text import (
    NormalizationRules,
    cer,
    error_rate_summary,
    error_rates,
    normalize_transcript,
    pairwise_error_rates,
    wer,
)

SENTENCES = [
    ("the cat sat on the mat", "the cat sat on mat"),
    ("the cat sat on the mat", "the dog sat on the mat today"),
    ("turn on the kitchen lights", ""),
    ("seven", "seven"),
    ("seven", "eleven"),
    ("  leading and   inner   spaces ", "leading and inner spaces"),
    ("a b c d e f", "f e d c b a"),
    ("Café au lait, s'il vous plaît", "cafe au lait s'il vous plait"),
    ("", ""),
    ("", "an unexpected insertion"),
    ("名古屋 に 行きます", "名古屋 へ 行きます"),
    ("one two three four five six seven eight nine ten", "one too three for five six seven ate nine ten"),
]


@pytest.mark.parametrize(("ref", "hyp"), SENTENCES)
def test_wer_and_cer_equal_jiwer(ref, hyp):
    assert wer(ref, hyp) == pytest.approx(jiwer.wer(ref, hyp), abs=1e-12)
    assert cer(ref, hyp) == pytest.approx(jiwer.cer(ref, hyp), abs=1e-12)


def test_empty_reference_counts_hypothesis_words_as_errors():
    assert wer("", "") == 0.0
    assert wer("", "two words") == 2.0
    assert wer("some words", "") == 1.0


def test_error_rates_of_many_pairs_equal_jiwer_pair_by_pair():
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(50)]
    refs, hyps = [], []
    for _ in range(400):
        ref = list(rng.choice(vocabulary, rng.integers(0, 12)))
        hyp = [w if rng.random() > 0.3 else str(rng.choice(vocabulary)) for w in ref if rng.random() > 0.1]
        if rng.random() < 0.2:
            hyp.insert(int(rng.integers(0, len(hyp) + 1)), "extra")
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    rates = error_rates(refs, hyps)
    np.testing.assert_allclose(rates["wer"], [jiwer.wer(r, h) for r, h in zip(refs, hyps, strict=True)])
    np.testing.assert_allclose(rates["cer"], [jiwer.cer(r, h) for r, h in zip(refs, hyps, strict=True)])
    assert rates["ref_words"].tolist() == [len(r.split()) for r in refs]


def test_normalisation_makes_filler_and_punctuation_variants_agree():
    variants = ["Um, today's weather", "Um… today's weather", "Today's weather", "today’s   WEATHER!"]
    assert {normalize_transcript(v) for v in variants} == {"today's weather"}


def test_normalisation_rules_can_each_be_switched_off():
    text = "Uh, the 2nd  train at 7:45?"
    assert normalize_transcript(text) == "the 2nd train at 7 45"
    assert normalize_transcript(text, numbers_to_words=True) == "the second train at seven forty five"
    assert normalize_transcript(text, lowercase=False, remove_fillers=()) == "Uh the 2nd train at 7 45"
    assert normalize_transcript(text, strip_punctuation=False) == ", the 2nd train at 7:45?"
    assert "the 2nd  train at 7 45 " in normalize_transcript(text, collapse_whitespace=False)


def test_fillers_are_whole_words_in_any_case():
    assert normalize_transcript("UM, the summer umbrella, er, HMM") == "the summer umbrella"
    assert normalize_transcript("you know it is, you  know", remove_fillers=["you know"]) == "it is"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("42", "forty two"),
        ("1,000 people", "one thousand people"),
        ("3.05", "three point zero five"),
        ("21st", "twenty first"),
        ("room 101", "room one hundred one"),
        ("agent 007", "agent zero zero seven"),
        ("2,500,019", "two million five hundred thousand nineteen"),
        ("mp3", "mp3"),
    ],
)
def test_numbers_to_words(text, spoken):
    assert normalize_transcript(text, numbers_to_words=True) == spoken


def test_normalisation_keeps_letters_of_every_script():
    assert normalize_transcript("नमस्ते, दुनिया!") == "नमस्ते दुनिया"
    assert normalize_transcript("¿Qué tal?") == "qué tal"


def test_rules_come_from_a_project_settings_dict():
    rules = NormalizationRules.from_dict({"numbers_to_words": True, "remove_fillers": ["um", "like"]})
    assert rules.normalize("Um, like, 5 cats") == "five cats"
    assert NormalizationRules.from_dict(rules.to_dict()) == rules
    assert NormalizationRules.from_dict(None) == NormalizationRules()
    assert NormalizationRules.from_dict({"remove_fillers": False}).normalize("um ok") == "um ok"
    with pytest.raises(ValueError, match="unknown normalisation setting"):
        NormalizationRules.from_dict({"lower_case": True})
    with pytest.raises(ValueError, match="true or false"):
        NormalizationRules.from_dict({"lowercase": "yes"})


def transcripts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [1, 1, 1, 2, 2, 3, 4, 4],
            "annotator": ["bo", "al", "cy", "al", "bo", "al", "al", "bo"],
            "transcript": [
                "Um, today's weather",
                "Today's weather.",
                "today's whether",
                "turn left",
                "",
                "alone on this clip",
                "three cats",
                None,
            ],
        }
    )


def test_pairwise_error_rates_compare_every_annotator_pair_per_clip():
    pairs = pairwise_error_rates(transcripts(), rules=NormalizationRules())
    got = {(p.clip_id, p.rater_a, p.rater_b): p.wer for p in pairs.itertuples()}
    # Clip 3 has one transcript and clip 4 one non-missing transcript: no pairs.
    assert set(got) == {(1, "al", "bo"), (1, "al", "cy"), (1, "bo", "cy"), (2, "al", "bo")}
    assert got[(1, "al", "bo")] == 0.0  # equal once the filler and punctuation are gone
    assert got[(1, "al", "cy")] == pytest.approx(jiwer.wer("today's weather", "today's whether"))
    assert got[(2, "al", "bo")] == 1.0  # an empty transcript deletes every reference word


def test_pairwise_error_rates_without_rules_compare_texts_as_typed():
    pairs = pairwise_error_rates(transcripts())
    row = pairs[(pairs["clip_id"] == 1) & (pairs["rater_a"] == "al") & (pairs["rater_b"] == "bo")].iloc[0]
    assert row["wer"] == pytest.approx(jiwer.wer("Today's weather.", "Um, today's weather"))
    assert row["cer"] == pytest.approx(jiwer.cer("Today's weather.", "Um, today's weather"))


def test_summary_uses_corpus_rates_like_jiwer_lists():
    df = transcripts()
    pairs = pairwise_error_rates(df, rules={"remove_fillers": []})
    summary = error_rate_summary(pairs)
    rules = NormalizationRules(remove_fillers=())
    texts = {(r.clip_id, r.annotator): rules.normalize(r.transcript) for r in df.dropna().itertuples()}
    refs = [texts[(p.clip_id, p.rater_a)] for p in pairs.itertuples()]
    hyps = [texts[(p.clip_id, p.rater_b)] for p in pairs.itertuples()]
    assert summary.overall["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    assert summary.overall["cer"] == pytest.approx(jiwer.cer(refs, hyps))
    assert summary.overall["n_pairs"] == 4
    clip1 = summary.per_clip.set_index("clip_id").loc[1]
    assert clip1["n_pairs"] == 3
    assert clip1["wer"] == pytest.approx(jiwer.wer(refs[:3], hyps[:3]))
    assert summary.to_dict()["overall"]["n_items"] == 2


def test_duplicate_transcripts_by_one_annotator_are_refused():
    df = transcripts()
    with pytest.raises(ValueError, match="more than one transcript"):
        pairwise_error_rates(pd.concat([df, df.head(1)]))
