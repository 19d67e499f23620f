"""The fast paths large projects take equal the slow, row-by-row computations, on both engines.

Whole-column reads against the ORM's rows; metadata from the indexed table against each clip's JSON;
the Clips page's SQL filters against ``analysis.filters.filter_clips`` on the full clip frame; the
Overview's database counts against pandas counts of that frame; and per-slice agreement against the
``krippendorff`` package run on each slice's annotations alone.
"""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Text, cast, insert, select, update

from analysis.filters import filter_clips
from db.models import Annotation, Clip, ClipMetadata, ClipTag, Resolution, utcnow
from labeling.annotate.annotations import annotations_frame, submit_annotation
from labeling.data.clip_metadata import index_clip_metadata, metadata_counts, metadata_keys, metadata_values
from labeling.data.clip_query import ClipFilters, clip_filter_options, clip_page
from labeling.data.clips import clip_frame, data_fingerprint
from labeling.data.overview import metadata_value_counts, project_overview
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from labeling.platform.columnar import read_frame
from labeling.quality.agreement_service import project_agreement, project_hlp

CLASSES = ["yes", "no", "maybe"]
ACCENTS = ["north", "south", "west"]
N = 60


def _clip(s, project_id: int, n: int, meta: dict) -> int:
    return s.scalar(
        insert(Clip)
        .values(
            project_id=project_id,
            sha256=f"{n:064x}",
            storage_key=f"00/{n:064x}.wav",
            original_name=f"Clip_{n:03d}, take {n % 4}.wav",
            duration_s=0.5 + (n % 7) / 4,
            sample_rate=8000,
            channels=1,
            frames=8000,
            audio_format="WAV",
            meta=meta,
            split=["train", "dev", "test"][n % 3],
            annotations_needed=3,
            annotation_count=0,
            priority=0,
            rms_dbfs=None if n % 11 == 0 else -30.0 + n % 13,
            snr_db=10.0 + n % 5,
            created_at=utcnow(),
        )
        .returning(Clip.id)
    )


@pytest.fixture
def project(workspace):
    """60 clips: metadata (a 3-value accent, a 30-value speaker, a number, a nested value), one or two
    tags each, three annotators with partly random labels, final labels on a third, one clip retired.
    The first 40 clips' metadata is indexed as an import would; the last 20 were stored by a path
    that did not index them."""
    rng = np.random.default_rng(11)
    with workspace.db.write() as s:
        p = create_project(s, name="scale", classes=CLASSES, tag_groups={"noise": ["car", "none"]})
        users = [add_user(s, name=n, role="annotator").id for n in ("ann", "bo", "cy")]
        clips = []
        for n in range(N):
            meta = {"speaker": f"spk{n % 30}", "accent": ACCENTS[n % 3], "take": n % 4, "extra": {"a": 1}}
            if n % 10 == 9:
                del meta["accent"]
            clips.append(_clip(s, p.id, n, meta))
            tags = ["noise:car" if n % 4 == 0 else "noise:none"] + (["reverb:yes"] if n % 5 == 0 else [])
            s.execute(
                insert(ClipTag), [{"clip_id": clips[-1], "tag": t, "created_at": utcnow()} for t in tags]
            )
            truth = CLASSES[n % 3]
            for u in users[: 1 + (n * 7 // 5) % 3]:
                label = truth if rng.random() < 0.7 else str(rng.choice(CLASSES))
                assert submit_annotation(s, p.id, u, clips[-1], label=label, unsure=n % 8 == 0).ok
            if n % 3 == 0:
                s.add(
                    Resolution(
                        clip_id=clips[-1],
                        project_id=p.id,
                        label=truth,
                        method="imported",
                        updated_at=utcnow(),
                    )
                )
            if n == 39:
                index_clip_metadata(s, p.id)
        s.execute(update(Clip).where(Clip.id == clips[7]).values(deleted_at=utcnow()))
    return workspace, p, clips


def test_whole_column_reads_equal_the_orm_rows(workspace):
    awkward = ["plain", "with, comma", 'with "quotes"', "two\nlines", "", None, "ünïcode"]
    with workspace.db.write() as s:
        p = create_project(s, name="columns", classes=["a"])
        u = add_user(s, name="u", role="annotator").id
        for i, text in enumerate(awkward):
            cid = _clip(s, p.id, 100 + i, {})
            submit_annotation(
                s,
                p.id,
                u,
                cid,
                label="a",
                transcript=text,
                unsure=i % 2 == 0,
                time_spent_ms=None if i == 3 else i * 10,
            )
    q = select(
        Annotation.clip_id, Annotation.transcript, Annotation.unsure, Annotation.time_spent_ms
    ).order_by(Annotation.clip_id)
    with workspace.db.read() as s:
        fast = read_frame(
            s, q, {"clip_id": "int64", "transcript": "object", "unsure": "bool", "time_spent_ms": "Int64"}
        )
        rows = s.execute(q).all()
    assert fast["clip_id"].tolist() == [r[0] for r in rows]
    # CSV cannot tell an empty string from NULL; both are "no transcript" to every view.
    assert [t or None for t in fast["transcript"]] == [r[1] or None for r in rows]
    assert fast["unsure"].tolist() == [r[2] for r in rows]
    assert [None if pd.isna(v) else int(v) for v in fast["time_spent_ms"]] == [r[3] for r in rows]


def _expected_meta(s, project_id: int) -> pd.DataFrame:
    """Scalar metadata of live clips decoded from each clip's JSON, the slow way."""
    rows = s.execute(
        select(Clip.id, cast(Clip.meta, Text)).where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
    ).all()
    out = [
        (cid, k, str(v))
        for cid, raw in rows
        for k, v in json.loads(raw).items()
        if not isinstance(v, dict | list) and v is not None
    ]
    return pd.DataFrame(out, columns=["clip_id", "key", "value"]).sort_values(
        ["clip_id", "key"], ignore_index=True
    )


def test_metadata_readers_equal_the_json_also_for_clips_not_indexed_yet(project):
    ws, p, _ = project
    with ws.db.read() as s:
        expected = _expected_meta(s, p.id)
        got = metadata_values(s, p.id).sort_values(["clip_id", "key"], ignore_index=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        counts = metadata_counts(s, p.id).set_index(["key", "value"])["n"].sort_index()
        assert counts.to_dict() == expected.groupby(["key", "value"]).size().sort_index().to_dict()
        assert metadata_keys(s, p.id) == ["speaker", "accent", "take"]  # first-seen order; "extra" is nested
        n_indexed = s.scalar(select(ClipMetadata.clip_id).order_by(ClipMetadata.clip_id.desc()).limit(1))
    with ws.db.write() as s:
        assert index_clip_metadata(s, p.id) == 20  # the clips stored past the indexed ones
    with ws.db.read() as s:
        assert (
            s.scalar(select(ClipMetadata.clip_id).order_by(ClipMetadata.clip_id.desc()).limit(1)) > n_indexed
        )
        pd.testing.assert_frame_equal(
            metadata_values(s, p.id).sort_values(["clip_id", "key"], ignore_index=True),
            expected,
            check_dtype=False,
        )


@pytest.mark.parametrize(
    "filters",
    [
        ClipFilters(),
        ClipFilters(splits=("dev",), tags_all=("noise:car",)),
        ClipFilters(labels=("yes", "maybe"), name_contains="TAKE 1"),
        ClipFilters(metadata={"accent": ("north", "west")}, ranges={"rms_dbfs": (-29.0, -22.0)}),
        ClipFilters(metadata={"speaker": ("spk25", "spk3")}, tags_all=("noise:none", "reverb:yes")),
    ],
)
def test_the_clip_table_filters_in_the_database_as_the_frame_filter_does(project, filters):
    ws, p, _ = project
    with ws.db.read() as s:
        frame = clip_frame(s, p.id)
        expected = filter_clips(
            frame,
            splits=filters.splits,
            labels=filters.labels,
            tags_all=filters.tags_all,
            metadata=filters.metadata,
            name_contains=filters.name_contains,
            ranges=filters.ranges,
        )
        pages = [
            clip_page(s, p.id, filters, offset=o, limit=7, metadata_keys=["speaker", "take"])
            for o in range(0, N, 7)
        ]
        options = clip_filter_options(s, p.id)
        walked: list[int] = []  # page by page, each starting after the last clip of the one before
        while True:
            page, _ = clip_page(s, p.id, filters, after=walked[-1] if walked else None, limit=7, count=False)
            walked += page["clip_id"].tolist()
            if len(page) < 7:
                break
    assert walked == expected["clip_id"].tolist()
    assert {total for _, total in pages} == {len(expected)}
    got = pd.concat([page for page, _ in pages], ignore_index=True)
    assert got["clip_id"].tolist() == expected["clip_id"].tolist()
    assert got["tags"].tolist() == expected["tags"].tolist()

    def plain(values: pd.Series) -> list:
        return [None if pd.isna(v) else v for v in values]

    assert plain(got["label"]) == plain(expected["label"])
    assert plain(got["take"]) == plain(expected["take"])
    assert options.n_clips == len(frame)
    assert options.tags == sorted(set(frame["tags"].explode().dropna()))
    assert options.labels == sorted(frame["label"].dropna().unique())
    assert options.ranges["duration_s"] == (frame["duration_s"].min(), frame["duration_s"].max())


def test_overview_counts_in_the_database_equal_counts_of_the_clip_frame(project):
    ws, p, _ = project
    with ws.db.read() as s:
        frame = clip_frame(s, p.id)
        view = project_overview(s, p.id)
        accents = metadata_value_counts(s, p.id, "accent", n_clips=view.summary["n_clips"])
    assert view.summary["n_clips"] == len(frame)
    assert view.summary["hours"] == pytest.approx(frame["duration_s"].sum() / 3600)
    assert view.labels.to_dict() == frame["label"].fillna("(none)").value_counts().to_dict()
    assert view.splits.to_dict() == frame["split"].value_counts().to_dict()
    assert view.tags.to_dict() == frame["tags"].explode().value_counts().to_dict()
    assert accents.to_dict() == frame["accent"].fillna("(none)").value_counts().to_dict()
    counts, edges = np.histogram(frame["rms_dbfs"].dropna(), bins=40)
    assert view.loudness.counts.tolist() == counts.tolist()
    assert view.loudness.edges == pytest.approx(edges)


def test_agreement_per_slice_equals_the_krippendorff_package_on_each_slice(project):
    ws, p, _ = project
    with ws.db.read() as s:
        report = project_agreement(s, p.id, n_boot=50)
        ann = annotations_frame(s, p.id)
        frame = clip_frame(s, p.id).set_index("clip_id")
        hlp = project_hlp(s, p.id)
    ann = ann[ann["label"].notna()]
    by_slice = report["by_slice"].set_index(["slice", "value"])
    # speaker has 30 values (too many to chart) and take splits clips like nothing else: a slice.
    assert set(by_slice.index.get_level_values("slice")) == {"tag", "accent", "take"}
    members = {
        ("tag", t): frame.index[frame["tags"].map(lambda ts, t=t: t in ts)]
        for t in ["noise:car", "noise:none", "reverb:yes"]
    }
    members |= {("accent", a): frame.index[frame["accent"] == a] for a in ACCENTS}
    members |= {("take", str(t)): frame.index[frame["take"] == t] for t in range(4)}
    for key, clips in members.items():
        part = ann[ann["clip_id"].isin(clips)]
        wide = part.pivot_table(index="clip_id", columns="annotator", values="label", aggfunc="first")
        coded = wide.apply(lambda col: col.map({c: i for i, c in enumerate(CLASSES)})).T.to_numpy(dtype=float)
        expected = krippendorff.alpha(coded, level_of_measurement="nominal")
        assert by_slice.loc[key, "krippendorff_alpha"] == pytest.approx(expected, abs=1e-9), key
        assert by_slice.loc[key, "n_ratings"] == len(part)
    # HLP per tag: each annotation against the clip's final label, counted by hand.
    final = frame["label"].dropna()
    for tag in ["noise:car", "noise:none", "reverb:yes"]:
        rows = ann[ann["clip_id"].isin(members[("tag", tag)]) & ann["clip_id"].isin(final.index)]
        assert hlp[tag] == pytest.approx((rows["label"] == rows["clip_id"].map(final)).mean())


def test_the_fingerprint_moves_when_a_clip_is_retired_or_prioritised(project):
    ws, p, clips = project
    with ws.db.read() as s:
        before = data_fingerprint(s, p.id)
    with ws.db.write() as s:
        s.execute(update(Clip).where(Clip.id == clips[3]).values(priority=5))
    with ws.db.read() as s:
        prioritised = data_fingerprint(s, p.id)
    with ws.db.write() as s:
        s.execute(update(Clip).where(Clip.id == clips[4]).values(deleted_at=utcnow()))
    with ws.db.read() as s:
        retired = data_fingerprint(s, p.id)
    assert len({before, prioritised, retired}) == 3
