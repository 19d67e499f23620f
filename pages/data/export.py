"""Export: the project's labelled clips as csv, jsonl, audiofolder, NeMo or Label Studio, in one zip."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import streamlit as st

from labeling.data.export import (
    EXCLUSION_REASONS,
    EXPORT_FORMATS,
    PER_ANNOTATOR_FORMATS,
    SPLITS,
    ExportError,
    ExportFilters,
)
from labeling.data.versions import list_versions
from labeling.job_kinds import download_bytes, zip_available
from pages.widgets import common, job_status

FORMATS = {
    "csv": "CSV for spreadsheets: metadata.csv and the audio",
    "jsonl": "JSON Lines: metadata.jsonl and the audio",
    "audiofolder": "Hugging Face audiofolder: a folder per split",
    "nemo": "NeMo: a manifest per split",
    "kaldi": "Kaldi: a data directory per split",
    "labelstudio": "Label Studio: tasks.json and a labeling config",
    "lhotse": "lhotse: recordings and supervisions per split (jsonl.gz)",
    "webdataset": "WebDataset: .tar shards of audio and JSON per split (100 MB each)",
    "commonvoice": "Common Voice: clips/ and train/dev/test/validated.tsv",
    "librispeech": "LibriSpeech: <split>/<speaker>/<chapter>/ FLAC files and .trans.txt",
    "annotations": "Annotations: one row per annotation, for agreement work in R or a spreadsheet",
}
CURRENT = "(current final labels)"

user = common.require_permission("manage_data")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()
st.title("Export")
st.caption(
    "The clips with their final labels, tags, split and metadata, and the audio, packed as one zip. "
    "MANIFEST.json lists every file's SHA-256, the dataset version and the model code fingerprints."
)
with ws.db.read() as s:
    versions = list_versions(s, project.id)["name"].tolist()
formats = list(EXPORT_FORMATS)
if project.labels_regions:
    # Annotators' work is time regions here, which a clip table cannot hold.
    formats = [f for f in formats if f not in PER_ANNOTATOR_FORMATS]
    st.info(
        "This project labels time regions: the recordings export here with their metadata; the regions "
        f'themselves with `earmark regions export PATH --project "{project.name}" --format F --all`.',
        icon=":material/timeline:",
    )

with st.form("export.form"):
    left, right = st.columns(2)
    fmt = left.selectbox("Format", formats, format_func=lambda f: FORMATS.get(f, f), key="export.format")
    version = right.selectbox(
        "Labels from",
        [CURRENT, *versions],
        key="export.version",
        help="A dataset version exports the labels, tags and splits frozen in it.",
    )
    splits = left.multiselect("Only these splits (none chosen: all)", SPLITS, key="export.splits")
    min_agreement = right.slider(
        "Minimum agreement with the final label",
        0.0,
        1.0,
        0.0,
        0.05,
        key="export.min_agreement",
        help="0 keeps every clip; above 0, clips without annotations to measure are left out.",
    )
    resolved_only = left.checkbox("Only clips with a final label", key="export.resolved_only")
    exclude_flagged = left.checkbox("Leave out clips with an open flag", key="export.exclude_flagged")
    exclude_derived = right.checkbox(
        "Leave out clips derived from others (trimmed, normalised, augmented)", key="export.exclude_derived"
    )
    exclude_augmented = right.checkbox("Leave out augmented clips", key="export.exclude_augmented")
    submitted = st.form_submit_button("Prepare the export", type="primary", key="export.submit")

if submitted:
    try:
        filters = ExportFilters(
            resolved_only=resolved_only,
            min_agreement=min_agreement or None,
            exclude_flagged=exclude_flagged,
            exclude_derived=exclude_derived,
            exclude_augmented=exclude_augmented,
            splits=tuple(splits),
        )
    except ExportError as exc:
        st.error(str(exc))
    else:
        labels_from = None if version == CURRENT else version
        params = {"fmt": fmt, "filters": filters.to_dict(), "version": labels_from}
        job_status.start("export", user, project_id=project.id, params=params)

job = job_status.show(job_status.latest("export", project_id=project.id), user, key="export.job")
report = job.result if job is not None and job.status == "succeeded" else None
if report is not None and zip_available(report.get("zip")):
    name = Path(report["zip"]).name
    st.success(
        f"{report['n_clips']:,} clips exported as {report['format']}"
        + (f" from version {report['version_name']!r}" if report["version_name"] else "")
        + f" — {report['zip_bytes'] / 2**20:,.1f} MiB zipped."
    )
    st.download_button(
        f"Download {name}",
        data=functools.partial(download_bytes, report["zip"]),  # read only when clicked
        file_name=name,
        mime="application/zip",
        type="primary",
        icon=":material/download:",
        key="export.download",
    )
    left_out = {EXCLUSION_REASONS.get(k, k): n for k, n in report["excluded"].items() if n}
    if left_out:
        st.caption("Left out")
        st.dataframe(
            pd.DataFrame({"reason": list(left_out), "clips": list(left_out.values())}),
            hide_index=True,
            key="export.excluded",
        )
    with st.expander("Manifest details"):
        st.json(
            {
                "dataset_version": report["dataset_version"],
                "model_fingerprints": report["model_fingerprints"],
                "annotations": report["n_annotations"],
                "predictions": report["n_predictions"],
                "filters": report["filters"],
            }
        )
