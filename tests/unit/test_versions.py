"""Content hashes and diffs of dataset snapshots (analysis.versions)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from analysis.versions import content_hash, version_diff


def snapshot(rows):
    return pd.DataFrame(rows, columns=["clip_id", "sha256", "label", "transcript", "tags", "split"])


BASE = [
    (1, "a" * 64, "yes", None, ["noise:car", "accent:scottish"], "train"),
    (2, "b" * 64, "no", "no", [], "dev"),
    (3, "c" * 64, "up", None, ["noise:car"], "test"),
]


def test_hash_is_sha256_of_the_documented_canonical_lines():
    lines = [
        '{"label":"yes","sha256":"' + "a" * 64 + '","split":"train","tags":["accent:scottish","noise:car"],'
        '"transcript":null}',
        '{"label":"no","sha256":"' + "b" * 64 + '","split":"dev","tags":[],"transcript":"no"}',
        '{"label":"up","sha256":"' + "c" * 64 + '","split":"test","tags":["noise:car"],"transcript":null}',
    ]
    expected = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert content_hash(snapshot(BASE)) == expected


def test_hash_ignores_row_order_tag_order_and_database_ids():
    shuffled = [
        (10 + i, sha, label, tr, list(reversed(tags)), split)
        for i, (_, sha, label, tr, tags, split) in enumerate(reversed(BASE))
    ]
    assert content_hash(snapshot(shuffled)) == content_hash(snapshot(BASE))


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [(0, 2, "no"), (1, 3, "no thanks"), (2, 4, []), (2, 5, "train")],
)
def test_any_change_of_label_transcript_tags_or_split_changes_the_hash(index, field, value):
    changed = [list(r) for r in BASE]
    changed[index][field] = value
    assert content_hash(snapshot(changed)) != content_hash(snapshot(BASE))


def test_duplicate_audio_in_one_snapshot_is_refused():
    with pytest.raises(ValueError, match="duplicate sha256"):
        content_hash(snapshot([*BASE, (4, "a" * 64, "yes", None, [], "train")]))


def test_diff_names_added_removed_relabelled_retagged_and_resplit_clips():
    new = snapshot(
        [
            (1, "a" * 64, "no", None, ["accent:scottish", "noise:car"], "train"),  # relabelled
            (2, "b" * 64, "no", "no", ["noise:car"], "train"),  # re-tagged and re-split
            (4, "d" * 64, "go", None, ["augmented:car@10dB", "noise:car"], "train"),  # added
        ]
    )
    diff = version_diff(snapshot(BASE), new)
    assert diff.added["clip_id"].tolist() == [4]
    assert diff.removed["clip_id"].tolist() == [3]
    assert diff.relabelled[["clip_id", "old_label", "new_label"]].values.tolist() == [[1, "yes", "no"]]
    assert diff.retagged["clip_id"].tolist() == [2]
    assert diff.retagged["added_tags"].iloc[0] == ["noise:car"]
    assert diff.resplit[["clip_id", "old_split", "new_split"]].values.tolist() == [[2, "dev", "train"]]
    by_tag = diff.by_tag.set_index("tag")
    assert by_tag.loc["noise:car", "old"] == 2
    assert by_tag.loc["noise:car", "new"] == 3
    assert by_tag.loc["augmented:car@10dB", "delta"] == 1
    by_split = diff.by_split.set_index("split")["new"].to_dict()
    assert by_split == {"dev": 0, "test": 0, "train": 3}
    assert diff.summary()["added"] == 1
    assert diff.summary()["by_tag"] == {"augmented:car@10dB": 1, "noise:car": 1}
    assert not diff.unchanged


def test_a_first_version_is_all_additions_and_equal_snapshots_are_unchanged():
    empty = snapshot([])
    first = version_diff(empty, snapshot(BASE))
    assert len(first.added) == 3
    assert len(first.removed) == 0
    assert version_diff(snapshot(BASE), snapshot(BASE)).unchanged
