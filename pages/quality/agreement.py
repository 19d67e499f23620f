"""Agreement: how consistently annotators label, where they split, and whether the conventions help.

Everything shown comes from ``labeling.quality.agreement_service.agreement_view``: the report of
``project_agreement`` and the split clips of ``disagreements``, stored per data change so that a large
project's report shows at once (``earmark agreement --project NAME --json`` prints the same report).
"""

from __future__ import annotations

import streamlit as st

from labeling.platform import auth
from labeling.quality.agreement_service import AGREEMENT_VIEW, AgreementView, agreement_view, view_params
from pages.quality import agreement_regions
from pages.quality import charts_agreement as charts
from pages.widgets import audio, common, plots, stored_report

user = common.require_permission("analyse")
project = common.current_project()
ws = common.workspace()
if project.labels_regions:  # long recordings: agreement of time regions, not of clip labels
    agreement_regions.show(project, user)
    st.stop()


PARAMS = view_params()


@st.cache_data(ttl=600, show_spinner="Computing agreement…", max_entries=8)
def load(project_id: int, token: tuple[object, ...], stored: object) -> AgreementView:
    # Keyed on the labels and on the stored report, so a report a worker stores shows at once.
    return agreement_view(ws.db, project_id, allow_stale=True)


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


watched = stored_report.stamp_or_wait(
    kind=AGREEMENT_VIEW,
    job_kind="agreement",
    project_id=project.id,
    params=PARAMS,
    recompute=lambda: agreement_view(ws.db, project.id, recompute=True),
    what="agreement report",
)
view = load(project.id, common.data_token(project.id), watched.stamp)
report, split = view.report, view.split
st.title("Agreement")
if not view.fresh:
    watched.notice(user, view.computed_at)
lo, hi = report["krippendorff_alpha_ci"]
st.caption(
    f"{report['n_pairable_items']:,} clips with two or more class labels from "
    f"{report['n_raters']} annotators ({report['n_ratings']:,} labels); the interval: bootstrap over clips."
)
c1, c2, c3, c4 = st.columns(4)
c1.metric(
    "Krippendorff's alpha",
    fmt(report["krippendorff_alpha"]),
    help="1 is perfect agreement, 0 what chance alone gives; above 0.8 is usually reliable enough to use.",
    border=True,
)
c2.metric("Alpha, 95% interval", f"{lo:.2f} – {hi:.2f}" if lo is not None else "n/a", border=True)
c3.metric(
    "Fleiss' kappa",
    fmt(report["fleiss_kappa"]),
    help="Shown only when every clip has the same number of labels.",
    border=True,
)
c4.metric(
    "Percent agreement",
    fmt(report["percent_agreement"]),
    help="Share of label pairs that match.",
    border=True,
)

if report["n_pairable_items"] == 0 and report["transcripts"] is None:
    st.info("No clip has two labels yet: agreement appears here once clips reach their k annotations.")
    st.stop()

names = ["Annotators", "Classes", "Over time", "Slices", "Disagreements"]
if report["transcripts"] is not None:
    names.insert(4, "Transcripts")
tabs = dict(zip(names, st.tabs(names), strict=True))

with tabs["Annotators"]:
    left, right = st.columns([2, 3])
    if len(report["kappa_matrix"]) > 1:
        plots.show(left, charts.kappa_heatmap(report["kappa_matrix"]), key="agreement.kappa")
    right.dataframe(
        report["annotators"],
        hide_index=True,
        key="agreement.annotators",
        column_order=[
            "annotator",
            "n",
            "agreement_with_consensus",
            "kappa_vs_consensus",
            "agreement_with_gold",
            "n_gold",
            "unsure_rate",
            "median_seconds",
        ],
        column_config={
            "n": st.column_config.NumberColumn("labels"),
            "n_gold": st.column_config.NumberColumn("gold clips"),
            "agreement_with_consensus": st.column_config.ProgressColumn("agrees with others", format="%.2f"),
            "kappa_vs_consensus": st.column_config.NumberColumn("kappa vs others", format="%.3f"),
            "agreement_with_gold": st.column_config.ProgressColumn("agrees with gold", format="%.2f"),
            "unsure_rate": st.column_config.NumberColumn("unsure", format="percent"),
            "median_seconds": st.column_config.NumberColumn("median s", format="%.1f"),
        },
    )
    right.caption("Each annotator against the majority of the *other* annotators of the same clips.")

with tabs["Classes"]:
    left, right = st.columns([3, 2])
    if len(report["confusion"]):
        plots.show(left, charts.confusion_heatmap(report["confusion"]), key="agreement.confusion")
    right.dataframe(report["per_class"], hide_index=True, key="agreement.per_class")
    right.caption(
        "Specific agreement: of the label pairs that involve a class, the share where both chose it."
    )

with tabs["Over time"]:
    left, right = st.columns(2)
    if len(report["by_version"]):
        plots.show(
            left,
            charts.agreement_trend(report["by_version"], x="version", title="By conventions version"),
            key="agreement.by_version",
        )
    if len(report["by_week"]):
        plots.show(
            right,
            charts.agreement_trend(report["by_week"], x="week", title="By week (UTC, Mondays)"),
            key="agreement.by_week",
        )

with tabs["Slices"]:
    left, right = st.columns(2)
    tags = report["by_slice"]
    plots.show(
        left,
        charts.slice_dots(
            tags, column="krippendorff_alpha", title="Alpha by slice", overall=report["krippendorff_alpha"]
        ),
        key="agreement.slices",
    )
    hlp = report["hlp"]
    overall = hlp.loc[hlp["slice"] == "all", "hlp"]
    plots.show(
        right,
        charts.slice_dots(
            hlp[hlp["slice"] != "all"],
            column="hlp",
            title="Human-level performance by slice",
            overall=float(overall.iloc[0]) if len(overall) else None,
        ),
        key="agreement.hlp",
    )
    right.caption("HLP: share of annotations equal to the clip's final label.")

if "Transcripts" in tabs:
    with tabs["Transcripts"]:
        o = report["transcripts"]["overall"]
        st.caption(f"WER {fmt(o['wer'])}, CER {fmt(o['cer'])} over {o['n_pairs']:,} transcript pairs.")
        if len(report["transcripts"]["per_clip"]):
            plots.show(st, charts.wer_histogram(report["transcripts"]["per_clip"]), key="agreement.wer")

with tabs["Disagreements"]:
    show_names = auth.allowed(user.role, "review")
    if split.empty:
        st.success("Annotators agree on every clip so far.")
    for row in split.itertuples(index=False):
        with st.container(border=True):
            a, b = st.columns([2, 3], vertical_alignment="center")
            a.markdown(f"**Clip {row.clip_id}** · {row.original_name}")
            audio.play_clip(int(row.clip_id), ws.store.path(row.storage_key), where=a)
            if show_names:
                said = " · ".join(f"{r['annotator']}: **{r['label']}**" for r in row.ratings)
            else:
                said = " · ".join(f"**{label}** ×{n}" for label, n in row.votes.items())
            b.markdown(said)
            b.caption(
                f"{row.why} · final: {row.resolution_label or '—'} ({row.resolution_method or 'open'}) · "
                f"{', '.join(row.tags)}"
            )
