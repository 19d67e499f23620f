"""Review: settle the clips annotators disagree on, most instructive first.

The queue is ``labeling.quality.agreement_service.review_queue`` (``disagreements``, stored per data change);
a decision is ``labeling.annotate.review.resolve_clip`` (audited, and it locks the annotators' labels),
optionally with a gold example in the same transaction.
"""

from __future__ import annotations

import streamlit as st

from labeling.annotate.review import (
    ReviewError,
    add_gold_example,
    auto_resolve,
    auto_rule,
    convention_proposal_params,
    resolve_clip,
    settle_label_issue,
)
from labeling.data.clips import clip_detail
from labeling.data.conventions import ConventionError
from labeling.platform import auth
from labeling.quality.agreement_service import REVIEW_QUEUE, REVIEW_SHOWN, ReviewQueue, review_queue
from labeling.quality.label_issues import open_label_issues
from pages.quality import review_regions
from pages.widgets import audio, common, stored_report

user = common.require_permission("review")
project = common.current_project()
ws = common.workspace()
ss = st.session_state
if project.labels_regions:  # long recordings: adjudicate time regions, not clip labels
    review_regions.show(project, user)
    st.stop()
QUEUE_SHOWN = REVIEW_SHOWN
QUEUE_PARAMS = {"limit": QUEUE_SHOWN}
FORM_FIELDS = ("label", "transcript", "gold", "why")

try:
    rule = auto_rule(project)
except ReviewError as exc:
    st.warning(str(exc))
    rule = None


def field(name: str, clip_id: int) -> str:
    """A form widget's key, one per clip: a widget keyed alike on every clip would carry one clip's
    answers (class, gold, reason) onto the next."""
    return f"review.{name}.{clip_id}"


def clear_form(clip_id: int) -> None:
    for name in FORM_FIELDS:
        ss.pop(field(name, clip_id), None)


def run_rule() -> None:
    with ws.db.write() as s:
        auth.require(common.signed_in_user(), "review")
        n = auto_resolve(s, project.id, rule=rule, actor_id=user.id)
    ss["review.flash"] = ("success", f"The {rule} rule resolved {n} clip{'s' * (n != 1)}.")


def resolve(clip_id: int) -> None:
    label = ss.get(field("label", clip_id))
    transcript = ss.get(field("transcript", clip_id)) or None
    try:
        with ws.db.write() as s:
            auth.require(common.signed_in_user(), "review")
            done = resolve_clip(
                s, project.id, clip_id, label=label, transcript=transcript, reviewer_id=user.id
            )
            if ss.get(field("gold", clip_id)):
                add_gold_example(
                    s,
                    project.id,
                    clip_id,
                    label=done.label,
                    transcript=done.transcript,
                    explanation=ss.get(field("why", clip_id)) or "",
                    actor_id=user.id,
                )
    except (ReviewError, ConventionError, auth.PermissionDenied) as exc:
        ss["review.flash"] = ("error", f"Nothing was saved: {exc}")
        return
    gold = " and added it to the gold examples" if ss.get(field("gold", clip_id)) else ""
    ss["review.flash"] = ("success", f"Clip {clip_id} resolved as {done.label or done.transcript}{gold}.")
    clear_form(clip_id)


def settle(clip_id: int, label: str) -> None:
    try:
        with ws.db.write() as s:
            auth.require(common.signed_in_user(), "review")
            settle_label_issue(s, project.id, clip_id, label=label, reviewer_id=user.id)
    except (ReviewError, auth.PermissionDenied) as exc:
        ss["review.flash"] = ("error", f"Nothing was saved: {exc}")
        return
    ss["review.flash"] = ("success", f"Clip {clip_id} settled as {label}; its label-issue flag is closed.")


@st.cache_data(ttl=600, max_entries=8, show_spinner="Ranking disagreements…")
def _queue(project_id: int, token: tuple[object, ...], stored: object) -> ReviewQueue:
    """The ranked disagreements: stored per data change, so settling a clip does not re-rank them all."""
    return review_queue(ws.db, project_id, limit=QUEUE_SHOWN, allow_stale=True)


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _suspects(project_id: int, token: tuple[object, ...]):
    with ws.db.read() as s:
        return open_label_issues(s, project_id)


token = common.data_token(project.id)
watched = stored_report.stamp_or_wait(
    kind=REVIEW_QUEUE,
    job_kind="review_queue",
    project_id=project.id,
    params=QUEUE_PARAMS,
    recompute=lambda: review_queue(ws.db, project.id, limit=QUEUE_SHOWN, recompute=True),
    what="ranking of disagreements",
)
ranked = _queue(project.id, token, watched.stamp)
queue, suspects = ranked.queue, _suspects(project.id, token)

st.title("Review")
if not ranked.fresh:
    watched.notice(
        user,
        ranked.computed_at,
        message="Ranked at {when}: clips settled since are left out, and new disagreements join the queue "
        "when it is ranked again.",
    )
top = st.columns([3, 1], vertical_alignment="center")
waiting = queue.attrs.get("n_total", len(queue))
top[0].caption(
    f"{waiting:,} clips wait for a decision"
    + (f" (the first {QUEUE_SHOWN} are listed)" if waiting > QUEUE_SHOWN else "")
    + ", most instructive first: even splits, often confused classes, many annotators, unsure flags."
)
if rule is not None:
    top[1].button(f"Auto-resolve ({rule})", key="review.auto", on_click=run_rule, icon=":material/done_all:")
if flash := ss.pop("review.flash", None):
    getattr(st, flash[0])(flash[1])
if not suspects.empty:
    with st.expander(f"Suspected label errors from the model ({len(suspects):,})", icon=":material/report:"):
        st.caption(
            "Clips whose final label the fixed model doubts most (confident learning on out-of-fold "
            "probabilities). Listen, then keep the label or change it; either way the flag closes."
        )
        ids = suspects["clip_id"].tolist()
        chosen = st.selectbox("Suspect", ids, key="review.suspect", format_func=lambda c: f"clip {c}")
        suspect = suspects.set_index("clip_id").loc[chosen]
        with ws.db.read() as s:
            detail = clip_detail(s, ws.store, int(chosen), project_id=project.id)
        audio.play_clip(detail.id, detail.audio_path)
        st.caption(
            f"{suspect['original_name']} · given **{suspect['given_label']}**, the model suggests "
            f"**{suspect['suggested_label']}** (self-confidence {suspect['self_confidence']:.2f})"
        )
        keep, change = st.columns(2)
        keep.button(
            f"Keep '{suspect['given_label']}'",
            key="review.suspect_keep",
            on_click=settle,
            args=(int(chosen), suspect["given_label"]),
        )
        change.button(
            f"Relabel as '{suspect['suggested_label']}'",
            key="review.suspect_change",
            type="primary",
            on_click=settle,
            args=(int(chosen), suspect["suggested_label"]),
        )
audio.missing_audio_panel(project.id)
if queue.empty:
    st.success("No open disagreements in this project.", icon=":material/done_all:")
    st.stop()

ids = queue["clip_id"].tolist()
if ss.get("review.clip") not in ids:
    ss["review.clip"] = ids[0]
why = dict(zip(ids, queue["why"], strict=True))
st.selectbox("Clip", ids, key="review.clip", format_func=lambda c: f"clip {c} · {why[c]}")
row = queue.set_index("clip_id").loc[ss["review.clip"]]
clip_id = int(ss["review.clip"])

left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader(f"Clip {clip_id}")
    st.caption(f"{row['original_name']} · {', '.join(row['tags'])}")
    audio.play_clip(clip_id, ws.store.path(row["storage_key"]))
    cols = st.columns(len(row["ratings"]))
    for col, r in zip(cols, row["ratings"], strict=True):
        # Reviewers may see who said what; this page is theirs alone (the review permission).
        col.metric(
            r["annotator"],
            r["label"] or "—",
            delta="unsure" if r["unsure"] else None,
            delta_color="off",
            delta_arrow="off",
            border=True,
        )
        if r["transcript"]:
            col.caption(f"“{r['transcript']}”")
    if row["resolution_method"]:
        st.caption(f"Current final label: {row['resolution_label']} ({row['resolution_method']})")

with right, st.form("review.form"):
    if project.classifies:
        options = list(project.classes)
        default = options.index(row["top_label"]) if row["top_label"] in options else 0
        st.radio("Final class", options, index=default, key=field("label", clip_id), horizontal=True)
    if project.transcribes:
        typed = [r["transcript"] for r in row["ratings"] if r["transcript"]]
        st.text_input("Final transcript", value=typed[0] if typed else "", key=field("transcript", clip_id))
    st.checkbox("Also add this clip to the gold examples", key=field("gold", clip_id))
    st.text_area(
        "Why this is the right label (shown to annotators with the gold example)", key=field("why", clip_id)
    )
    st.form_submit_button("Resolve", type="primary", key="review.resolve", on_click=resolve, args=(clip_id,))

st.page_link(
    "pages/labeling/conventions.py",
    label="Propose a convention change from this clip",
    icon=":material/edit_note:",
    query_params=common.project_params(**convention_proposal_params(clip_id, row["votes"], row["tags"])),
)
