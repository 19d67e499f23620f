"""Error analysis of stored runs: the slice report against a plain pandas computation, tagging while
listening, HLP from annotations and by hand, discovered slices, and actions on a slice."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from db.models import Annotation, AuditEvent, Clip, ClipTag, SliceAction, User
from labeling.model import error_analysis as ea
from labeling.model.runs import import_external_predictions, run_predictions, train_run
from tests.db.test_runs import make_fsdd_project


def expected_table(preds: pd.DataFrame, slices: dict[str, pd.Series], hlp: dict[str, float]) -> pd.DataFrame:
    """The slice table by hand: pandas over the run's predictions."""
    scored = preds[preds["correct"].notna()]
    wrong = ~scored["correct"].astype(bool)
    rows = []
    for name, mask in slices.items():
        inside = mask.loc[scored.index]
        n = int(inside.sum())
        accuracy = 1 - wrong[inside].mean()
        rows.append(
            {
                "tag": name,
                "n": n,
                "share": n / len(scored),
                "accuracy": accuracy,
                "error_share": wrong[inside].sum() / wrong.sum(),
                "hlp": hlp.get(name, np.nan),
                "gap": hlp.get(name, np.nan) - accuracy,
            }
        )
    out = pd.DataFrame(rows).set_index("tag")
    out["priority"] = out["gap"] * out["share"]
    return out


@pytest.fixture
def digits_run(workspace, fsdd_dir, tmp_path):
    ws = workspace
    project_id = make_fsdd_project(ws, fsdd_dir, tmp_path, takes=10)
    with ws.db.write() as s:
        clips = s.execute(select(Clip.id, Clip.original_name).order_by(Clip.id)).all()
        for clip_id, name in clips:
            digit, speaker, take = name.removesuffix(".wav").split("_")
            if int(take) % 2 == 0:
                ea.tag_clip(s, clip_id, "noise:car")
            if speaker == "nicolas" and int(digit) < 5:
                ea.tag_clip(s, clip_id, "channel:phone")
    run = train_run(ws, project_id)
    return ws, project_id, run.id


@pytest.mark.fsdd
def test_slice_report_equals_pandas_over_run_predictions(digits_run) -> None:
    ws, project_id, run_id = digits_run
    with ws.db.write() as s:
        ea.set_hlp(s, project_id, "noise:car", 0.97)
        ea.set_hlp(s, project_id, "speaker=theo", 0.99)
    with ws.db.read() as s:
        report = ea.slice_report(s, run_id, hlp={"speaker=theo": 1.0}, split="test")
        preds = run_predictions(s, run_id)
    test = preds[preds["split"] == "test"]
    slices = {
        "noise:car": test["noise:car"] == 1,
        "channel:phone": test["channel:phone"] == 1,
        **{f"speaker={sp}": test["speaker"] == sp for sp in ("jackson", "nicolas", "theo")},
    }
    expected = expected_table(test, slices, {"noise:car": 0.97, "speaker=theo": 1.0})
    got = report.set_index("tag").loc[expected.index]
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    assert got.loc["noise:car", "hlp_source"] == "entered"
    assert got.loc["speaker=theo", "hlp_source"] == "given"  # this report's value beats the stored one
    assert set(report["kind"]) == {"tag", "metadata"}
    ranked = report.dropna(subset=["priority"])["priority"].tolist()
    assert ranked == sorted(ranked, reverse=True)

    with ws.db.read() as s:
        everything = ea.slice_report(s, run_id, split="all")
    assert everything.set_index("tag").loc["speaker=theo", "n"] == 100

    # The page's single read of the run gives the same tables.
    with ws.db.read() as s:
        whole = ea.run_analysis(s, run_id, split="test", hlp={"speaker=theo": 1.0})
    got = whole.report.set_index("tag").loc[expected.index]
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    correct = test["correct"].astype(bool)
    assert whole.overall["n"] == len(test)
    assert whole.overall["accuracy"] == pytest.approx(correct.mean())
    assert whole.overall["errors"] == int((~correct).sum())
    assert int(whole.confusion.to_numpy().sum()) == len(test)


@pytest.mark.fsdd
def test_tagging_while_listening_tags_the_clip_and_the_next_run_slices_by_it(digits_run) -> None:
    ws, project_id, run_id = digits_run
    with ws.db.read() as s:
        errors = ea.error_examples(s, run_id, split="test")
        right = run_predictions(s, run_id).query("split == 'test' and correct == True")
    assert len(errors) > 0
    assert (errors["y_true"] != errors["y_pred"]).all()
    assert errors["confidence"].is_monotonic_decreasing
    wrong_id, right_id = int(errors["clip_id"].iloc[0]), int(right["clip_id"].iloc[0])
    with ws.db.write() as s:
        assert ea.tag_clip(s, wrong_id, "mumbled", actor_id=None)
        assert ea.tag_clip(s, right_id, "mumbled")
        assert not ea.tag_clip(s, right_id, "mumbled")  # tagging twice changes nothing
    with ws.db.read() as s:
        # The run was trained and scored on frozen data: its table keeps the tags it had.
        assert "mumbled" not in set(ea.slice_report(s, run_id)["tag"])
        # The error browser shows the clip as it is now beside what the run saw.
        shown = ea.error_page(s, run_id, split="test", page_size=len(errors)).rows.set_index("clip_id")
        source = s.scalar(select(ClipTag.source).where(ClipTag.clip_id == wrong_id, ClipTag.tag == "mumbled"))
        audited = s.scalars(select(AuditEvent.action).where(AuditEvent.entity == "clip_tag")).all()
    assert "mumbled" in shown.loc[wrong_id, "tags_now"]
    assert "mumbled" not in shown.loc[wrong_id, "tags"]
    assert source == "analysis"
    # The next run on the current labels slices by it; tags do not change the model.
    rerun = train_run(ws, project_id).id
    with ws.db.read() as s:
        row = ea.slice_report(s, rerun).set_index("tag").loc["mumbled"]
    assert row["n"] == 2
    assert row["accuracy"] == 0.5
    with ws.db.write() as s:
        assert ea.untag_clip(s, right_id, "mumbled")
    rerun = train_run(ws, project_id).id
    with ws.db.read() as s:
        assert ea.slice_report(s, rerun).set_index("tag").loc["mumbled", "accuracy"] == 0.0
        assert ea.error_examples(s, rerun, slice_expr="mumbled")["clip_id"].tolist() == [wrong_id]
        last = s.scalars(
            select(AuditEvent.action).where(AuditEvent.entity == "clip_tag").order_by(AuditEvent.id.desc())
        ).first()
        assert last == "delete"
    assert audited.count("create") >= 3


@pytest.mark.fsdd
def test_send_slice_to_queue_raises_priorities_and_records_the_decision(
    workspace, fsdd_dir, tmp_path
) -> None:
    ws = workspace
    project_id = make_fsdd_project(ws, fsdd_dir, tmp_path, takes=2)
    with ws.db.write() as s:
        result = ea.send_slice_to_queue(s, "digits", "speaker=theo", boost=5)
        again = ea.send_slice_to_queue(s, "digits", "speaker=theo AND duration_s >= 0", boost=2)
        collect = ea.mark_for_collection(s, "digits", "speaker=nicolas", note="record more of him")
    assert (result.n_clips, again.n_clips, collect.n_clips) == (20, 20, 20)
    with ws.db.read() as s:
        priorities = dict(s.execute(select(Clip.original_name, Clip.priority)).all())
        actions = ea.slice_actions(s, project_id)
        assert s.scalar(select(SliceAction.action).where(SliceAction.id == collect.id)) == "collect"
    assert all(p == (7 if "_theo_" in name else 0) for name, p in priorities.items())
    assert actions["action"].tolist() == ["collect", "queue", "queue"]
    assert actions["note"].iloc[0] == "record more of him"
    with ws.db.write() as s, pytest.raises(ea.ErrorAnalysisError, match="holds no clips"):
        ea.send_slice_to_queue(s, "digits", "speaker=nobody")
    with ws.db.write() as s, pytest.raises(ea.ErrorAnalysisError, match="neither a tag"):
        ea.mark_for_collection(s, "digits", "loudness is high")
    with ws.db.write() as s, pytest.raises(ea.ErrorAnalysisError, match="between 0 and 1"):
        ea.set_hlp(s, "digits", "noise:car", 93)


def _tagged_project(ws, tmp_path, *, n: int = 120) -> tuple[int, pd.DataFrame]:
    """Clips with speaker and noise metadata and tags; truth is 'yes' for even clips."""
    from labeling.data.importer import import_path
    from tests.audio import speechlike, write_wav

    src = tmp_path / "src"
    rows = []
    for i in range(n):
        name = f"c{i:03d}.wav"
        write_wav(src / name, speechlike(i))
        rows.append(
            {
                "file_name": name,
                "label": "yes" if i % 2 == 0 else "no",
                "speaker": f"s{i % 4}",
                "noise": "car" if i % 3 == 0 else "clean",
                "tags": "noise:car" if i % 3 == 0 else "",
            }
        )
    meta = pd.DataFrame(rows).drop(columns="tags")
    meta.to_csv(src / "metadata.csv", index=False)
    import_path(ws, src, "tagged", metadata=src / "metadata.csv")
    with ws.db.write() as s:
        for clip_id, name in s.execute(select(Clip.id, Clip.original_name)).all():
            if name in set(meta.loc[meta["noise"] == "car", "file_name"]):
                ea.tag_clip(s, clip_id, "noise:car")
        return int(s.scalar(select(Clip.project_id).limit(1))), meta


def test_discovered_slices_find_where_the_errors_are(sqlite_workspace, tmp_path) -> None:
    ws = sqlite_workspace
    _, meta = _tagged_project(ws, tmp_path)
    # The other model is wrong exactly on speaker s1 in car noise, and right everywhere else.
    flip = {"yes": "no", "no": "yes"}
    pred = tmp_path / "pred.csv"
    with pred.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "label"])
        for r in meta.itertuples():
            bad = r.speaker == "s1" and r.noise == "car"
            w.writerow([r.file_name, flip[r.label] if bad else r.label])
    run = import_external_predictions(ws, "tagged", pred, name="theirs")
    with ws.db.read() as s:
        found = ea.discovered_slices(s, run.id, split=None)
        report = ea.slice_report(s, run.id, split=None).set_index("tag")
    assert found["slice"].iloc[0] in {"noise:car AND speaker=s1", "speaker=s1 AND noise:car"}
    assert found["error_rate"].iloc[0] == 1.0
    # noise=car repeats the tag noise:car clip for clip, so the table shows the tag alone.
    assert "noise:car" in report.index
    assert "noise=car" not in report.index
    expected_errors = ((meta["speaker"] == "s1") & (meta["noise"] == "car")).sum()
    assert report.loc["speaker=s1", "error_share"] == 1.0
    assert report.loc["noise:car", "accuracy"] == pytest.approx(
        1 - expected_errors / (meta["noise"] == "car").sum()
    )


def test_hlp_from_annotations_is_overridden_by_entered_values(sqlite_workspace, tmp_path) -> None:
    ws = sqlite_workspace
    project_id, meta = _tagged_project(ws, tmp_path, n=24)
    with ws.db.write() as s:
        users = [User(name=f"rater{k}", role="annotator") for k in range(2)]
        s.add_all(users)
        s.flush()
        clips = s.execute(select(Clip.id, Clip.original_name).order_by(Clip.id)).all()
        truth = dict(zip(meta["file_name"], meta["label"], strict=True))
        for k, user in enumerate(users):
            for i, (clip_id, name) in enumerate(clips):
                # rater1 disagrees with the final label on every fourth clip.
                label = (
                    truth[name] if not (k == 1 and i % 4 == 0) else {"yes": "no", "no": "yes"}[truth[name]]
                )
                s.add(Annotation(project_id=project_id, clip_id=clip_id, annotator_id=user.id, label=label))
    pred = tmp_path / "pred.csv"
    pred.write_text("file_name,label\n" + "".join(f"{r.file_name},yes\n" for r in meta.itertuples()))
    run = import_external_predictions(ws, "tagged", pred, name="always yes")
    with ws.db.read() as s:
        auto = ea.annotation_hlp(s, project_id)
        report = ea.slice_report(s, run.id, split=None).set_index("tag")
    car = (meta["noise"] == "car").to_numpy()
    disagree = np.arange(24) % 4 == 0
    # Two annotations per clip; rater1's disagreements are the only misses.
    assert auto["all"] == pytest.approx(1 - disagree.sum() / 48)
    assert auto["noise:car"] == pytest.approx(1 - (disagree & car).sum() / (2 * car.sum()))
    assert report.loc["noise:car", "hlp"] == pytest.approx(auto["noise:car"])
    assert report.loc["noise:car", "hlp_source"] == "annotations"
    with ws.db.write() as s:
        ea.set_hlp(s, project_id, "noise:car", 0.9)
    with ws.db.read() as s:
        row = ea.slice_report(s, run.id, split=None).set_index("tag").loc["noise:car"]
    assert row["hlp"] == 0.9
    assert row["hlp_source"] == "entered"


def test_the_error_browser_pages_through_every_error_of_a_slice_and_by_confusion_pair(
    sqlite_workspace, tmp_path
) -> None:
    ws = sqlite_workspace
    _, meta = _tagged_project(ws, tmp_path)
    # The other model says the opposite for speakers s1 (all "no" clips) and s2 (all "yes" clips).
    flip = {"yes": "no", "no": "yes"}
    bad = meta["speaker"].isin(["s1", "s2"])
    pred = tmp_path / "pred.csv"
    pd.DataFrame(
        {"file_name": meta["file_name"], "label": meta["label"].where(~bad, meta["label"].map(flip))}
    ).to_csv(pred, index=False)
    run = import_external_predictions(ws, "tagged", pred, name="theirs")
    with ws.db.read() as s:
        names = dict(s.execute(select(Clip.id, Clip.original_name)).all())
        pages = [ea.error_page(s, run.id, slice_expr="speaker=s1", split=None, page=i) for i in range(3)]
        everything = ea.error_page(s, run.id, split=None, page_size=25)
        yes_as_no = ea.error_page(s, run.id, split=None, pair=("yes", "no"), page_size=100)
        beyond = ea.error_page(s, run.id, slice_expr="speaker=s1", split=None, page=99)
    s1 = set(meta.loc[meta["speaker"] == "s1", "file_name"])
    # Thirty errors in s1, ten a page, each once: not just the ten most confident.
    assert [p.n_errors for p in pages] == [30, 30, 30]
    seen = [names[c] for p in pages for c in p.rows["clip_id"]]
    assert len(seen) == 30
    assert set(seen) == s1
    assert (pages[1].first, pages[0].n_pages) == (11, 3)
    # The confusions among all sixty errors, most frequent first, and a filter by one of them.
    assert everything.n_errors == bad.sum() == 60
    assert sorted(map(tuple, everything.pairs[["y_true", "y_pred", "n"]].to_numpy().tolist())) == [
        ("no", "yes", 30),
        ("yes", "no", 30),
    ]
    assert yes_as_no.n_errors == 30
    assert set(yes_as_no.rows["y_true"]) == {"yes"}
    assert set(yes_as_no.rows["y_pred"]) == {"no"}
    assert {names[c] for c in yes_as_no.rows["clip_id"]} == set(
        meta.loc[meta["speaker"] == "s2", "file_name"]
    )
    assert beyond.page == 2
    assert len(beyond.rows) == 10
