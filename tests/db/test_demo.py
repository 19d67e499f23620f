from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from db.models import Annotation, ConventionVersion, utcnow
from labeling.data.clips import clip_frame
from labeling.data.projects import ProjectError, get_project
from labeling.data.regions import changed_after_final, list_regions
from labeling.demo.annotators import DAY_MINUTES, labelled_at, labelling_start, published_at
from labeling.demo.build import DEMO_PROJECT, create_demo
from labeling.demo.recordings import DEMO_REGIONS_PROJECT


def test_demo_creates_a_tagged_labelled_project_once(sqlite_workspace):
    ws = sqlite_workspace
    steps: list[tuple[int, int, str, str | None]] = []
    report = create_demo(ws, size="tiny", on_step=lambda *step: steps.append(step))
    assert report.created
    # Each step is told as it starts and as it ends, with the line the report keeps.
    n = len(report.lines)
    assert [(i, total, result is None) for i, total, _, result in steps[:2]] == [(1, n, True), (1, n, False)]
    assert [result for *_, result in steps[1::2]] == report.lines
    assert steps[0][2] == "create the project with its classes, tag groups and k".capitalize()
    with ws.db.read() as s:
        project = get_project(s, DEMO_PROJECT)
        frame = clip_frame(s, project.id)
    assert project.annotations_per_clip == 3
    assert set(project.tag_groups) >= {"noise", "channel", "accent"}
    assert len(frame) > 0
    assert frame["label"].isin(project.classes).all()
    # Every clip carries its conditions as tags and metadata, and they agree.
    noise_tag = frame["tags"].map(lambda tags: next(t for t in tags if t.startswith("noise:")))
    assert (noise_tag == "noise:" + frame["noise"]).all()
    # Audio is stored and decodes at the corpus rate.
    assert (frame["sample_rate"] == 16000).all()
    assert pd.notna(frame["rms_dbfs"]).all()
    # The demo's labelling history lies in the past, each label after the conventions it followed.
    with ws.db.read() as s:
        published = dict(
            s.execute(
                select(ConventionVersion.version, ConventionVersion.created_at).where(
                    ConventionVersion.project_id == project.id
                )
            ).all()
        )
        labelled = s.execute(select(Annotation.created_at, Annotation.convention_version)).all()
    assert labelled
    assert max(at for at, _ in labelled) <= utcnow()
    assert all(at >= published[version] for at, version in labelled)

    # Beside it, long recordings with two annotators' regions, the final regions and the VAD's.
    with ws.db.read() as s:
        regions = list_regions(s, DEMO_REGIONS_PROJECT)
        long = get_project(s, DEMO_REGIONS_PROJECT)
        stale = changed_after_final(s, long.id)
    assert long.labels_regions
    assert sorted(regions["annotator"].dropna().unique()) == ["ana", "ben"]
    assert {"final", "proposal"} <= set(regions["source"])
    assert stale == {}  # the final regions settle the annotators' regions as they are

    again = create_demo(ws, size="tiny", if_empty=True)
    assert not again.created
    with pytest.raises(ProjectError, match="already exists"):
        create_demo(ws, size="tiny")


def test_each_step_that_works_says_how_far_it_is(sqlite_workspace):
    # A first start builds the demo for a while: a step that works in silence looks like a hang.
    step = [0]
    reports: dict[int, list[tuple[str, int, int]]] = {}

    def on_step(number: int, n_steps: int, title: str, result: str | None) -> None:
        step[0] = number

    create_demo(
        sqlite_workspace,
        size="tiny",
        progress=lambda stage, done, total: reports.setdefault(step[0], []).append((stage, done, total)),
        on_step=on_step,
    )
    # Synthesis and import, the annotators, the model's features and the data iteration all report.
    assert {2, 3, 4, 5} <= set(reports)
    # The annotators' labels are counted up to the last one.
    counted = [(done, total) for _, done, total in reports[3] if total > 1]
    assert counted
    assert counted[-1][0] == counted[-1][1]
    assert len({done for done, _ in counted}) == len(counted)


def test_the_demo_history_ends_before_now_and_follows_its_conventions():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    start = labelling_start(now)
    v1, v2 = published_at(start)
    n, cut = 300, 200  # the standard demo's size and share under v1
    latest = [labelled_at(start, i, n, cut, DAY_MINUTES) for i in range(n)]
    earliest = [labelled_at(start, i, n, cut, 0.0) for i in range(n)]
    assert max(latest) <= now
    assert min(earliest[:cut]) > v1
    assert min(earliest[cut:]) > v2
    assert max(latest[:cut]) < v2 + timedelta(days=1)
