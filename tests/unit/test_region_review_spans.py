"""Review spans of a dense recording: a group of overlapping regions is cut where everyone agrees.

The expected spans and final sets below are worked out by hand from the drawn regions.
"""

from __future__ import annotations

import pandas as pd

from analysis.region_review import compose_final, disagreement_spans, review_spans

# Two annotators on a 12 s recording, every region overlapping the next: one group from 0 to 11.5 s.
#   0.0-0.3  ann speech, bob nothing        disagree
#   0.3-3.5  both speech                    agree 3.2 s -> cut at 1.9
#   3.5-4.0  ann speech+music, bob speech   disagree (music starts 3.5 vs 4.0)
#   4.0-7.0  both music                     agree 3.0 s -> cut at 5.5
#   7.0-7.2  ann music+speech, bob music    disagree (speech starts 7.0 vs 7.2)
#   7.2-11.0 both speech (+music to 8.0)    agree 3.8 s -> cut at 9.1
#   11.0-11.5 bob speech only               disagree (speech ends 11.0 vs 11.5)
DENSE = pd.DataFrame(
    [
        ("ann", "speech", 0.0, 4.0),
        ("ann", "music", 3.5, 8.0),
        ("ann", "speech", 7.0, 11.0),
        ("bob", "speech", 0.3, 4.0),
        ("bob", "music", 4.0, 8.0),
        ("bob", "speech", 7.2, 11.5),
    ],
    columns=["annotator", "label", "start", "end"],
)


def test_a_dense_group_is_cut_in_the_middle_of_each_agreed_stretch_inside_it():
    spans = review_spans(DENSE)
    assert spans[["start", "end"]].to_numpy().tolist() == [[0.0, 1.9], [1.9, 5.5], [5.5, 9.1], [9.1, 11.5]]
    table = disagreement_spans(DENSE, tolerance=0.2)
    # 7.0 vs 7.2 is within ±200 ms: the third span agrees; the others hold a boundary 300-500 ms apart.
    assert table["agreed"].tolist() == [False, False, True, False]
    assert table["annotators"][1] == {
        "ann": "speech 1.90–4.00, music 3.50–5.50",
        "bob": "speech 1.90–4.00, music 4.00–5.50",
    }


def test_agreement_at_the_edge_of_a_group_or_shorter_than_the_minimum_does_not_cut():
    # 0.1-2.0 agreed ends the group: nothing to separate. With a 4 s minimum no stretch above qualifies.
    edge = pd.DataFrame(
        [("ann", "speech", 0.0, 2.0), ("bob", "speech", 0.1, 2.0)],
        columns=["annotator", "label", "start", "end"],
    )
    assert review_spans(edge)[["start", "end"]].to_numpy().tolist() == [[0.0, 2.0]]
    assert review_spans(DENSE, min_agreed=4.0)[["start", "end"]].to_numpy().tolist() == [[0.0, 11.5]]


def test_a_region_with_a_transcript_is_never_cut():
    texted = DENSE.assign(text=["hello there", None, None, "hello there", None, None])
    # The speech 0.3-3.5 stretch lies under a transcript; the other two cuts stay.
    assert review_spans(texted)[["start", "end"]].to_numpy().tolist() == [[0.0, 5.5], [5.5, 9.1], [9.1, 11.5]]


def test_choices_per_span_join_the_pieces_again_where_everyone_agreed():
    final = compose_final(DENSE, {0: "bob", 1: "ann", 2: "ann", 3: "bob"})
    # bob's speech from 0.3, ann's music from 3.5 and speech from 7.0, bob's speech end at 11.5.
    assert final[["start", "end", "label"]].to_numpy().tolist() == [
        [0.3, 4.0, "speech"],
        [3.5, 8.0, "music"],
        [7.0, 11.5, "speech"],
    ]
    for who in ("ann", "bob"):
        whole = compose_final(DENSE, dict.fromkeys(range(4), who))
        own = DENSE[DENSE["annotator"] == who].sort_values("start")
        assert (
            whole[["start", "end", "label"]].to_numpy().tolist()
            == own[["start", "end", "label"]].to_numpy().tolist()
        )
    nothing_in_the_middle = compose_final(DENSE, {0: "ann", 3: "ann"})
    assert nothing_in_the_middle[["start", "end"]].to_numpy().tolist() == [[0.0, 1.9], [9.1, 11.0]]
