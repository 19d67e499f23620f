"""Project settings: classes, tag groups, k, task kind, transcript normalisation, the workflow
switches the services read and the monitoring thresholds. Every change is previewed, checked against
the labels already made, confirmed when it changes clips' workflow, and audited."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st

from analysis.text import NormalizationRules
from labeling.data.monitoring_settings import MONITORING_DEFAULTS, MONITORING_SETTINGS
from labeling.data.projects import (
    AUTO_RESOLVE_RULES,
    FIELD_NAMES,
    SETTING_DEFAULTS,
    TASK_KINDS,
    ProjectError,
    SettingsNeedConfirmation,
    SettingsPreview,
    apply_settings,
    format_tag_groups,
    parse_tag_groups,
    preview_settings,
    settings_history,
    split_names,
)
from labeling.data.queue_order import QUEUE_ORDERS, OverlapSettings, overlap_settings
from pages.widgets import common

PENDING = "settings.pending"
FIELDS: tuple[str, ...] = (
    "kind",
    "classes",
    "tags",
    "k",
    "auto",
    "pre",
    "raise_k",
    "lease",
    "skip",
    "lower",
    "punct",
)
FIELDS += ("numbers", "spaces", "fillers", "command", "files", "order", "share", "rescore")
FIELDS += ("adaptive", "min_k", "max_k", "target")
FIELDS += tuple(f"monitoring.{m.key}" for m in MONITORING_SETTINGS)

user = common.require_permission("edit_settings")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()
ss = st.session_state
st.title("Project settings")
st.caption(f"{project.name} · every change is checked against the labels already made and recorded")

# Widget keys carry the stored settings' hash: after any change (here or elsewhere) the form shows it.
version = hashlib.sha256(json.dumps(project.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
setting = {**SETTING_DEFAULTS, **project.settings}
monitoring = {**MONITORING_DEFAULTS, **dict(setting["monitoring"] or {})}
rules = NormalizationRules.from_dict(project.normalization)
overlap = overlap_settings(project.settings)


def key(name: str) -> str:
    return f"settings.{project.id}.{version}.{name}"


def _changes() -> dict[str, Any]:
    """The form's values as :func:`~labeling.data.projects.apply_settings` takes them."""
    v = {name: ss[key(name)] for name in FIELDS}
    return {
        "task_kind": v["kind"],
        "classes": split_names(v["classes"]),
        "tag_groups": parse_tag_groups(v["tags"]),
        "annotations_per_clip": int(v["k"]),
        "normalization": {
            "lowercase": v["lower"],
            "strip_punctuation": v["punct"],
            "numbers_to_words": v["numbers"],
            "collapse_whitespace": v["spaces"],
            "remove_fillers": split_names(v["fillers"]),
        },
        "settings": {
            "auto_resolve": v["auto"],
            "pre_annotation": v["pre"],
            "imports_raise_k": v["raise_k"],
            "lease_seconds": int(v["lease"]) * 60,
            "skip_seconds": int(v["skip"]) * 3600,
            "training_command": v["command"],
            "training_files": split_names(v["files"]),
            "queue_order": v["order"],
            "queue_random_share": float(v["share"]) / 100,
            "queue_rescore_every": int(v["rescore"]),
            "adaptive_overlap": (
                {"min_k": int(v["min_k"]), "max_k": int(v["max_k"]), "target": float(v["target"]) / 100}
                if v["adaptive"]
                else {}
            ),
            "monitoring": {m.key: v[f"monitoring.{m.key}"] for m in MONITORING_SETTINGS},
        },
    }


def _apply(changes: dict[str, Any], token: str | None) -> None:
    """Apply (a button callback too): success, a refusal, or a preview that asks first."""
    ss.pop(PENDING, None)
    try:
        with ws.db.write() as s:
            before = preview_settings(s, project.id, changes)
            apply_settings(s, project.id, changes, token=token, actor_id=user.id)
    except SettingsNeedConfirmation as exc:
        ss[PENDING] = (project.id, changes, exc.preview)
    except ProjectError as exc:
        ss["settings.flash"] = ("error", str(exc))
    else:
        if not before.changes:
            ss["settings.flash"] = ("info", "Nothing to save: the settings are as they were.")
            return
        done = ", ".join(FIELD_NAMES[f] for f in before.changes)
        ss["settings.flash"] = ("success", f"Saved: {done}." + "".join(f" {e}." for e in before.effects))


def _keep() -> None:
    """Drop the change that asked first, and the form's edits with it: it shows the stored settings."""
    ss.pop(PENDING, None)
    for name in FIELDS:
        ss.pop(key(name), None)


def _save() -> None:
    try:
        changes = _changes()
    except ProjectError as exc:  # the tag groups could not be read
        ss["settings.flash"] = ("error", str(exc))
        return
    _apply(changes, None)


with st.form(key("form")):
    labels_col, workflow_col = st.columns(2)
    with labels_col:
        st.subheader("What annotators answer")
        st.selectbox("Task", TASK_KINDS, index=TASK_KINDS.index(project.task_kind), key=key("kind"))
        st.text_area(
            "Classes (comma-separated; the first ten get the number keys 1–9 and 0)",
            ", ".join(project.classes),
            key=key("classes"),
            height=68,
        )
        st.text_area(
            "Tag groups (one per line: group: value, value)",
            format_tag_groups(project.tag_groups),
            key=key("tags"),
            height=150,
            placeholder="noise: car, babble\nchannel: telephone",
        )
        st.number_input("Annotations per clip (k)", 1, 50, project.annotations_per_clip, key=key("k"))
    with workflow_col:
        st.subheader("Workflow")
        st.selectbox(
            "Auto-resolve",
            AUTO_RESOLVE_RULES,
            index=AUTO_RESOLVE_RULES.index(setting["auto_resolve"] or "off"),
            key=key("auto"),
            help="Review's rule for clips the annotators settle themselves",
        )
        st.toggle("Show annotators the model's prediction", setting["pre_annotation"], key=key("pre"))
        st.toggle(
            "Label imports may add annotations beyond k", setting["imports_raise_k"], key=key("raise_k")
        )
        st.selectbox(
            "Queue order",
            list(QUEUE_ORDERS),
            index=list(QUEUE_ORDERS).index(project.queue_order.name),
            format_func=lambda name: QUEUE_ORDERS[name].title.capitalize(),
            key=key("order"),
            help="Which clips the Label page hands out first.\n\n"
            + "\n".join(f"- **{o.title.capitalize()}**: {o.description}" for o in QUEUE_ORDERS.values()),
        )
        share, every = st.columns(2)
        share.number_input(
            "Random share (%)",
            0,
            100,
            round(100 * setting["queue_random_share"]),
            key=key("share"),
            help="Active-learning orders only: this share of the queue is a random sample of the clips, "
            "so estimates from labelled clips stay unbiased",
        )
        every.number_input(
            "Rescore every … labels",
            1,
            100_000,
            int(setting["queue_rescore_every"]),
            key=key("rescore"),
            help="The queue-scoring job ranks the clips again after each training run and after this "
            "many new labels",
        )
        st.number_input(
            "Minutes a served clip stays reserved",
            1,
            24 * 60,
            setting["lease_seconds"] // 60,
            key=key("lease"),
        )
        st.number_input(
            "Hours a skipped clip stays away", 0, 24 * 30, setting["skip_seconds"] // 3600, key=key("skip")
        )
        shown = overlap or OverlapSettings()
        st.toggle(
            "Adaptive overlap",
            overlap is not None,
            key=key("adaptive"),
            help="Instead of k for every clip: at least min k and at most max k annotations, more only "
            "while the majority label is less likely than the target (annotators' reliabilities by "
            "Dawid–Skene). The queue-scoring job sets how many each open clip needs.",
        )
        lo, hi, target = st.columns(3)
        lo.number_input("Min k", 1, 50, shown.min_k, key=key("min_k"))
        hi.number_input("Max k", 1, 50, shown.max_k, key=key("max_k"))
        target.number_input("Target accuracy (%)", 50.0, 99.9, 100 * shown.target, key=key("target"))
        st.subheader("Transcripts", help="How transcripts are compared (WER/CER) and exported")
        a, b = st.columns(2)
        a.checkbox("Lower case", rules.lowercase, key=key("lower"))
        b.checkbox("Strip punctuation", rules.strip_punctuation, key=key("punct"))
        a.checkbox("Numbers as words", rules.numbers_to_words, key=key("numbers"))
        b.checkbox("Collapse whitespace", rules.collapse_whitespace, key=key("spaces"))
        st.text_input("Filler words to drop", ", ".join(rules.remove_fillers), key=key("fillers"))
    with st.expander("Your own training command", icon=":material/terminal:"):
        st.text_input(
            "Command ({manifest} and {predictions} are filled in)",
            setting["training_command"],
            key=key("command"),
        )
        st.text_area(
            "Files that fingerprint it (one per line)", "\n".join(setting["training_files"]), key=key("files")
        )
    with st.expander("Monitoring thresholds", icon=":material/monitoring:"):
        st.caption(
            "Alarm levels and accuracy verdicts follow a change at once; α, the batch size and the "
            "low-confidence threshold judge the measures from the next drift check."
        )
        cols = st.columns(2)
        for i, m in enumerate(MONITORING_SETTINGS):
            now = monitoring[m.key]
            if m.whole:
                cols[i % 2].number_input(
                    m.label, int(m.low), int(m.high), int(now), key=key(f"monitoring.{m.key}"), help=m.help
                )
            else:
                cols[i % 2].number_input(
                    m.label,
                    0.0,
                    float(m.high),
                    float(now),
                    step=0.001 if m.high <= 0.5 else 0.05,
                    format="%g",
                    key=key(f"monitoring.{m.key}"),
                    help=m.help,
                )
    st.form_submit_button("Save settings", type="primary", key=key("save"), on_click=_save)


flash = ss.pop("settings.flash", None)
if flash:
    {"success": st.success, "info": st.info}.get(flash[0], st.error)(flash[1])
pending: tuple[int, dict[str, Any], SettingsPreview] | None = ss.get(PENDING)
if pending is not None and pending[0] == project.id:
    _, changes, preview = pending
    with st.container(border=True):
        st.warning("This change affects clips in the labeling queue. Check what it does first:")
        st.dataframe(
            [
                {"setting": FIELD_NAMES[f], "now": json.dumps(old), "after": json.dumps(new)}
                for f, (old, new) in preview.changes.items()
            ],
            hide_index=True,
            key="settings.preview",
        )
        for effect in preview.effects:
            st.markdown(f"- {effect}")
        left, right = st.columns(2)
        left.button(
            "Apply these changes",
            type="primary",
            key="settings.confirm",
            on_click=_apply,
            args=(changes, preview.token),
        )
        right.button("Keep the settings as they are", key="settings.cancel", on_click=_keep)

with st.expander("History of this project's settings", icon=":material/history:"), ws.db.read() as s:
    st.dataframe(settings_history(s, project.id), hide_index=True, key="settings.history")
