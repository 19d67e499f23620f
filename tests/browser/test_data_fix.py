"""Data → Checks → "Fix these clips" in Chromium: it shows what the fix changes and waits for a yes, and
the fixed copies keep the clips' workflow (annotations, disagreements, final labels, flags, gold
examples, queue state) instead of settling it without a reviewer."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from db.models import Annotation, Clip, ClipFlag, Resolution, User
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.review import add_gold_example, resolve_clip
from labeling.data.conventions import gold_examples, save_convention
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from labeling.quality.agreement_service import disagreements
from labeling.quality.check_summary import stored_checks
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
SR = 16000


@pytest.fixture
def workflow(sqlite_workspace, tmp_path):
    """Five clips that start with 0.8 s of silence, each at another stage of labeling (k = 2)."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i, stage in enumerate(["split", "adjudicated", "half", "flagged", "fresh"]):
        y = np.concatenate([np.zeros(int(0.8 * SR), dtype=np.float32), speechlike(400 + i)])
        write_wav(src / f"{stage}.wav", y, SR)
    import_path(ws, src, "fixes")
    with ws.db.write() as s:
        update_project(s, "fixes", classes=["yes", "no"], annotations_per_clip=2)
        team = (("eli", "engineer"), ("ana", "annotator"), ("ben", "annotator"), ("rosa", "reviewer"))
        for name, role in team:
            add_user(s, name=name, role=role, password=PASSWORD)
        users = dict(s.execute(select(User.name, User.id)).all())
        clips = dict(s.execute(select(Clip.original_name, Clip.id)).all())
        pid = s.scalar(select(Clip.project_id).limit(1))
        save_convention(s, pid, text="Say yes or no.")

        def label(name: str, stage: str, value: str) -> None:
            submit_annotation(s, pid, users[name], clips[f"{stage}.wav"], label=value)

        label("ana", "split", "yes")
        label("ben", "split", "no")
        label("ana", "adjudicated", "yes")
        label("ben", "adjudicated", "no")
        resolve_clip(s, pid, clips["adjudicated.wav"], label="no", reviewer_id=users["rosa"])
        add_gold_example(
            s, pid, clips["adjudicated.wav"], label="no", explanation="a sigh is no", actor_id=users["rosa"]
        )
        label("ana", "half", "yes")
        label("ana", "flagged", "no")
        s.add(ClipFlag(clip_id=clips["flagged.wav"], kind="label_issue", detail={"suggested_label": "yes"}))
    stored_checks(ws.db, pid)  # as the worker stores them after a change
    return ws, pid


def state(ws, pid):  # type: ignore[no-untyped-def]
    """Per live clip (by its original file name): annotations, final label, open flags, gold, queue."""
    with ws.db.read() as s:
        live = {c.id: c for c in s.scalars(select(Clip).where(Clip.deleted_at.is_(None)))}
        stem = {cid: c.original_name.split("~")[0].removesuffix(".wav") for cid, c in live.items()}
        out: dict[str, dict] = {
            stem[cid]: {"queue": (c.annotation_count, c.annotations_needed)} for cid, c in live.items()
        }
        by = User.id == Annotation.annotator_id
        for a in s.execute(select(Annotation.clip_id, User.name, Annotation.label).join(User, by)):
            if a.clip_id in live:
                out[stem[a.clip_id]].setdefault("labels", set()).add((a.name, a.label))
        for r in s.scalars(select(Resolution)):
            if r.clip_id in live:
                out[stem[r.clip_id]]["final"] = (r.label, r.method)
        for f in s.scalars(select(ClipFlag).where(ClipFlag.resolved_at.is_(None))):
            if f.clip_id in live:
                out[stem[f.clip_id]]["flag"] = f.kind
        for g in gold_examples(s, pid):
            if g.clip_id in live:
                out[stem[g.clip_id]]["gold"] = g.label
        split = disagreements(s, pid)
        for cid in split["clip_id"]:
            out[stem[int(cid)]]["disagreement"] = True
        n_live = s.scalar(select(func.count()).select_from(Clip).where(Clip.deleted_at.is_(None)))
    return out, n_live, sorted(live)


def test_fixing_silence_asks_first_and_keeps_every_clip_s_workflow(browser, serve, workflow):
    ws, pid = workflow
    before, n_before, ids_before = state(ws, pid)
    assert before["split"]["disagreement"]
    assert before["adjudicated"]["gold"] == "no"

    server = serve(ws)
    page = open_page(browser, server.url)
    sign_in(page, "eli", PASSWORD)
    page.goto(f"{server.url}/data")
    settle(page)
    page.get_by_role("tab", name="Checks").click()
    settle(page)
    assert_no_exception(page)
    page.get_by_role("button", name="Fix these 5 clips").click()
    settle(page)
    assert_no_exception(page)

    # Nothing has changed yet: the page says what would, and asks.
    assert state(ws, pid) == (before, n_before, ids_before)
    preview = page.get_by_test_id("stAlert").filter(has_text="retires the originals").first
    text = preview.inner_text()
    for said in ("5 clips", "6 annotations", "1 open disagreement", "1 final label", "1 open flag"):
        assert said in text, said
    assert "1 gold example" in text
    page.get_by_role("button", name="Yes, fix 5 clips").click()
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("5 clips replaced by fixed copies").first.is_visible()

    after, n_after, ids_after = state(ws, pid)
    assert n_after == n_before
    assert not set(ids_after) & set(ids_before)  # five new clips; the originals are retired
    assert after == before
