"""Conventions: read the current version, compare any two, and (reviewers and up) publish a new one.

``?clip=123&note=...`` prefills a change proposal from a clip
(see ``labeling.data.conventions.proposal_link``).
"""

from __future__ import annotations

import streamlit as st

from labeling.data import conventions as cv
from labeling.platform import auth
from pages.widgets import audio, common

user = common.require_permission("read_conventions")
project = common.current_project()
ws = common.workspace()
ss = st.session_state
proposal = cv.proposal_from_query(st.query_params.to_dict())

with ws.db.read() as s:
    current = cv.current_convention(s, project.id)
    history = cv.convention_history(s, project.id)
    gold = cv.gold_examples(s, project.id)

st.title("Conventions")
for problem in proposal.problems:
    st.warning(problem)
can_edit = auth.allowed(user.role, "edit_conventions")
tabs = st.tabs(["Current", "History", *(["Edit", "Gold examples"] if can_edit else [])])

with tabs[0]:
    if current is None:
        st.info("No conventions yet." + (" Write the first version in the Edit tab." if can_edit else ""))
    else:
        st.caption(
            f"Version {current.version} · {current.author or 'unknown'} · "
            f"{current.created_at:%Y-%m-%d %H:%M} UTC · {current.note or 'first version'}"
        )
        st.markdown(current.text)
        if current.rules:
            st.json(current.rules, expanded=False)
        for g in gold:
            audio.play_clip(g.clip_id, ws.store.path(g.storage_key))
            said = f" “{g.transcript}”" if g.transcript else ""
            st.markdown(f"**{g.label or ''}**{said} — {g.explanation} *(clip {g.clip_id})*")

with tabs[1]:
    st.dataframe(history, hide_index=True, key="conventions.history")
    if len(history) >= 2:
        versions = sorted(history["version"].tolist())
        c1, c2, c3 = st.columns([1, 1, 2])
        a = c1.selectbox("From", versions, index=len(versions) - 2, key="conventions.diff.from")
        b = c2.selectbox("To", versions, index=len(versions) - 1, key="conventions.diff.to")
        view = c3.segmented_control(
            "View", ["Unified", "Side by side"], default="Unified", key="conventions.diff.view"
        )
        with ws.db.read() as s:
            old, new = cv.get_convention(s, project.id, a), cv.get_convention(s, project.id, b)
        if view == "Side by side":
            st.html(
                "<style>table.diff{font-family:monospace;font-size:.8rem}.diff_add{background:#d4f8d4}"
                ".diff_chg{background:#fff3b0}.diff_sub{background:#ffd6d6}</style>"
                + cv.side_by_side_diff(old, new)
            )
        else:
            st.code(cv.unified_diff(old, new) or "(no differences)", language="diff")


def publish() -> None:
    rules = {}
    if ss["conventions.rule.silence"]:
        rules["silence_margin_ms"] = {
            "min": ss["conventions.silence.min"],
            "max": ss["conventions.silence.max"],
        }
    if ss["conventions.rule.loudness"]:
        rules["loudness_dbfs"] = {
            "target": ss["conventions.loud.target"],
            "tolerance": ss["conventions.loud.tol"],
        }
    if ss["conventions.rule.transcript"]:
        fillers = [w.strip() for w in ss["conventions.fillers"].split(",") if w.strip()]
        rules["transcript"] = {
            "case": ss["conventions.case"],
            "punctuation": ss["conventions.punctuation"],
            "fillers": ss["conventions.filler_rule"],
            "filler_words": fillers,
        }
    try:
        with ws.db.write() as s:
            auth.require(common.signed_in_user(), "edit_conventions")
            saved = cv.save_convention(
                s,
                project.id,
                text=ss["conventions.text"],
                rules=rules,
                note=ss["conventions.note"],
                author_id=user.id,
                based_on=ss["conventions.based_on"],
            )
        ss["conventions.flash"] = ("success", f"Published version {saved.version}.")
        # The history's diff selectors show what this version changed.
        ss["conventions.diff.to"] = saved.version
        ss["conventions.diff.from"] = ss["conventions.based_on"] or saved.version
        ss.pop("conventions.based_on")
    except (cv.ConventionError, auth.PermissionDenied) as exc:
        ss["conventions.flash"] = ("error", str(exc))


def remove_gold(gold_id: int) -> None:
    with ws.db.write() as s:
        auth.require(common.signed_in_user(), "edit_conventions")
        cv.remove_gold_example(s, project.id, gold_id, actor_id=user.id)


if can_edit:
    with tabs[2]:
        rules = current.rules if current else {}
        latest = current.version if current else None
        if "conventions.based_on" not in ss:
            ss["conventions.based_on"] = latest
            ss["conventions.text"] = current.text if current else f"# {project.name}: labeling conventions\n"
            note = f"From clip {proposal.clip_id}: " if proposal.clip_id else ""
            ss["conventions.note"] = note + proposal.note
        elif ss["conventions.based_on"] != latest:
            st.warning(f"Version {latest} was published while you were editing; your text is kept.")
            st.button(
                "Start again from the latest version",
                key="conventions.reload",
                on_click=ss.pop,
                args=("conventions.based_on",),
            )
        if flash := ss.pop("conventions.flash", None):
            getattr(st, flash[0])(flash[1])
        write, preview = st.columns(2)
        write.text_area("Markdown", key="conventions.text", height=420)
        with preview.container(height=460, border=True):
            st.markdown(ss["conventions.text"])
        sil, loud, text = (
            rules.get("silence_margin_ms"),
            rules.get("loudness_dbfs"),
            rules.get("transcript", {}),
        )
        with st.expander("Checkable rules", expanded=bool(rules)):
            c1, c2, c3 = st.columns(3)
            c1.toggle("Silence margins (ms)", value=sil is not None, key="conventions.rule.silence")
            c1.number_input("min", 0.0, 10_000.0, (sil or {}).get("min", 50.0), key="conventions.silence.min")
            c1.number_input(
                "max", 0.0, 10_000.0, (sil or {}).get("max", 500.0), key="conventions.silence.max"
            )
            c2.toggle("Loudness (dBFS RMS)", value=loud is not None, key="conventions.rule.loudness")
            c2.number_input(
                "target", -80.0, 0.0, (loud or {}).get("target", -23.0), key="conventions.loud.target"
            )
            c2.number_input(
                "tolerance", 0.5, 40.0, (loud or {}).get("tolerance", 3.0), key="conventions.loud.tol"
            )
            c3.toggle("Transcript normalisation", value=bool(text), key="conventions.rule.transcript")
            c3.selectbox(
                "case", cv.CASES, index=cv.CASES.index(text.get("case", "keep")), key="conventions.case"
            )
            c3.selectbox(
                "punctuation",
                cv.PUNCTUATION,
                cv.PUNCTUATION.index(text.get("punctuation", "keep")),
                key="conventions.punctuation",
            )
            c3.selectbox(
                "filler words",
                cv.FILLERS,
                cv.FILLERS.index(text.get("fillers", "keep")),
                key="conventions.filler_rule",
            )
            c3.text_input(
                "fillers",
                ", ".join(text.get("filler_words", cv.DEFAULT_FILLER_WORDS)),
                key="conventions.fillers",
            )
        st.text_input("What changed and why", key="conventions.note")
        st.button("Publish new version", type="primary", key="conventions.publish", on_click=publish)

    with tabs[3]:
        if current is None:
            st.info("Publish a first version, then attach gold examples to it.")
        else:
            with st.form("conventions.gold"):
                clip_id = st.number_input(
                    "Clip id", min_value=1, step=1, value=proposal.clip_id, key="conventions.gold.clip"
                )
                label = st.selectbox(
                    "Canonical class", [None, *project.classes], key="conventions.gold.label"
                )
                transcript = st.text_input("Canonical transcript", key="conventions.gold.transcript")
                why = st.text_area("Why this is right", key="conventions.gold.why")
                if st.form_submit_button(f"Attach to version {current.version}", key="conventions.gold.add"):
                    try:
                        with ws.db.write() as s:
                            cv.add_gold_example(
                                s,
                                project.id,
                                clip_id=int(clip_id or 0),
                                label=label,
                                transcript=transcript,
                                explanation=why,
                                actor_id=user.id,
                            )
                        st.success("Attached.")
                    except cv.ConventionError as exc:
                        st.error(str(exc))
            for g in gold:
                c1, c2 = st.columns([5, 1], vertical_alignment="center")
                c1.markdown(f"clip {g.clip_id} · **{g.label or ''}** {g.transcript or ''} — {g.explanation}")
                c2.button("Remove", key=f"conventions.gold.remove.{g.id}", on_click=remove_gold, args=(g.id,))
