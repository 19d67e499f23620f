"""The Data page's "Augment a slice" tab (no page of its own): choose a slice and one recipe, see only
that recipe's settings, listen to one example, then make the training copies."""

from __future__ import annotations

import streamlit as st

from labeling.data.augment import RECIPES, AugmentError, Recipe, augment_slice, preview_augmentation
from labeling.data.projects import ProjectInfo
from labeling.platform.auth import UserInfo
from labeling.platform.progress import progress_text
from labeling.platform.workspace import Workspace
from pages.widgets import common

NAMES = {
    "car": "Car noise",
    "babble": "Babble (other speakers of the project)",
    "telephone": "Telephone channel (300–3400 Hz at 8 kHz)",
    "pitch": "Pitch shift",
    "speed": "Speed change",
}
PREVIEW = "data.augment_preview"


def _recipe(kind: str, col) -> Recipe:
    """The recipe's own setting, and only that one."""
    if kind in ("car", "babble"):
        return Recipe(
            kind,
            snr_db=col.slider("Signal-to-noise ratio, dB", -5.0, 30.0, 10.0, 1.0, key="data.augment_snr"),
        )
    if kind == "pitch":
        return Recipe(kind, n_steps=col.slider("Semitones", -4.0, 4.0, 2.0, 0.5, key="data.augment_steps"))
    if kind == "speed":
        return Recipe(kind, factor=col.slider("Speed factor", 0.8, 1.2, 1.1, 0.05, key="data.augment_factor"))
    col.caption("The telephone channel has no setting.")
    return Recipe(kind)


def augment_form(ws: Workspace, project: ProjectInfo, user: UserInfo, tags: list[str]) -> None:
    if not tags:
        st.info("No clip carries a tag yet: a slice to augment is chosen by its tag.")
        return
    left, right = st.columns(2)
    tag = left.selectbox("Slice (tag)", tags, key="data.augment_tag")
    kind = right.selectbox(
        "Augmentation", list(RECIPES), format_func=lambda k: NAMES.get(k) or k, key="data.augment_kind"
    )
    recipe = _recipe(kind or next(iter(RECIPES)), left)
    limit = right.number_input("At most this many clips", 1, 100_000, 500, key="data.augment_limit")
    listen, make = st.columns(2)
    if listen.button("Listen to one example", key="data.augment_listen", icon=":material/hearing:"):
        try:
            st.session_state[PREVIEW] = (
                project.id,
                tag,
                recipe,
                preview_augmentation(ws, project.id, recipe=recipe, tag=tag),
            )
        except AugmentError as exc:
            st.error(str(exc))
    held = st.session_state.get(PREVIEW)
    if held is not None and held[:3] == (project.id, tag, recipe):
        example = held[3]
        st.caption(
            f"{example.original_name}, one of the slice's {example.n_parents:,} labelled training clips"
        )
        before, after = st.columns(2)
        before.audio(example.original, sample_rate=example.sample_rate)
        before.caption("as recorded")
        after.audio(example.augmented, sample_rate=example.sample_rate)
        after.caption(f"as the {recipe.tag} copy would sound")
    if make.button("Make augmented training clips", type="primary", key="data.augment_go"):
        bar = st.progress(0.0, text="Reading the slice…")
        try:
            made = augment_slice(
                ws,
                project.id,
                recipe=recipe,
                tag=tag,
                limit=int(limit),
                actor_id=user.id,
                progress=common.on_bar(
                    bar, lambda d, t: progress_text(f"Making {recipe.tag} copies, clip", d, t)
                ),
            )
            st.success(made.summary() + ". Freeze a new version to train on them.")
        except AugmentError as exc:
            st.error(str(exc))
        bar.empty()
