"""The built-in job kinds: each wraps an existing service, reporting its progress to the job.

A kind is ``fn(ctx) -> dict`` registered with :func:`labeling.platform.jobs.job_kind`; the dict (plain
JSON) is the job's result, and its ``summary`` the line shown beside the finished job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from labeling.platform.jobs import JobContext, job_kind
from labeling.platform.storage import is_remote_url, upload_file


@job_kind("train", title="Training")
def train(ctx: JobContext) -> dict[str, Any]:
    from labeling.model.runs import train_run

    run = train_run(
        ctx.ws,
        int(ctx.project_id or 0),
        version=ctx.params.get("version"),
        name=ctx.params.get("name"),
        actor_id=ctx.owner_id,
        progress=ctx.stages(),
    )
    scored = "test" if run.metrics.get("test", {}).get("n") else "overall"
    accuracy = run.metrics.get(scored, {}).get("accuracy")
    summary = f"Run {run.id} ({run.name})" + (
        f": {scored} accuracy {accuracy:.1%}" if accuracy is not None else ""
    )
    return {"run_id": run.id, "name": run.name, "scored": scored, "accuracy": accuracy, "summary": summary}


@job_kind("label_issues", title="Label-issue detection")
def label_issues(ctx: JobContext) -> dict[str, Any]:
    from labeling.quality.label_issues import find_label_issue_candidates

    found = find_label_issue_candidates(ctx.ws, int(ctx.project_id or 0), progress=ctx.stages())
    # Through pandas' JSON writer: numpy scalars and NaN become plain JSON values.
    records = json.loads(found.to_json(orient="records", date_format="iso"))
    return {
        "candidates": records,
        "columns": list(found.columns),
        "summary": f"{len(found):,} label-issue candidates",
    }


@job_kind("features", title="Feature extraction")
def features(ctx: JobContext) -> dict[str, Any]:
    from labeling.data.features import project_features

    frame = project_features(ctx.ws, int(ctx.project_id or 0), progress=ctx.stage("Computing features"))
    return {"clips": len(frame), "features": frame.shape[1], "summary": f"Features of {len(frame):,} clips"}


@job_kind("import", title="Import", needs_project=False, needs_params=True)
def import_(ctx: JobContext) -> dict[str, Any]:
    """A folder, zip or exported file readable by the worker (``path``) into project ``project``."""
    from labeling.data.importer import import_source

    p = ctx.params

    def path(key: str) -> Path | None:
        return Path(p[key]).expanduser() if p.get(key) else None

    report = import_source(
        ctx.ws,
        Path(p["path"]).expanduser(),
        str(p["project"]),
        fmt=p.get("fmt", "auto"),
        audio_root=path("audio_root"),
        pattern=p.get("pattern"),
        metadata=path("metadata"),
        join=p.get("join"),
        group_by=p.get("group_by") or "speaker",
        actor_id=ctx.owner_id,
        progress=ctx.stage("Reading files"),
    )
    return {**report.to_dict(), "summary": report.summary()}


@job_kind("production_import", title="Production batch", needs_params=True)
def production_import(ctx: JobContext) -> dict[str, Any]:
    """Production traffic into batch ``batch``: an upload the Import page staged (``upload``, named
    ``upload_name``), or a prediction log, folder of audio or zip the worker reads (``path``, with an
    optional ``audio_root`` for a log)."""
    from labeling.monitor.production_upload import discard_upload, log_production_batch
    from labeling.platform.jobs import LeaseLost

    p = ctx.params
    upload = p.get("upload")
    done_with_upload = True
    try:
        report = log_production_batch(
            ctx.ws,
            int(ctx.project_id or 0),
            batch=str(p.get("batch") or ""),
            upload=upload,
            upload_name=p.get("upload_name"),
            path=p.get("path"),
            audio_root=p.get("audio_root"),
            actor_id=ctx.owner_id,
            progress=ctx.stage("Reading requests"),
        )
    except (LeaseLost, KeyboardInterrupt):
        done_with_upload = False  # another worker runs it now, or the next attempt will
        raise
    finally:
        if upload and done_with_upload:
            discard_upload(upload)
    return {**report.to_dict(), "summary": report.summary()}


@job_kind("export", title="Export", permission="analyse", needs_params=True)
def export(ctx: JobContext) -> dict[str, Any]:
    """An export to ``out`` (a new folder or ``s3://`` prefix), or else one zip to download.

    With an object store the zip goes to its ``exports/`` prefix, so any app server can serve it.
    """
    from labeling.data.export import ExportFilters, export_project, export_zip

    p = ctx.params
    filters = ExportFilters(
        **{**p.get("filters", {}), "splits": tuple(p.get("filters", {}).get("splits", ()))}
    )
    if p.get("out"):
        report = export_project(
            ctx.ws,
            int(ctx.project_id or 0),
            fmt=p["fmt"],
            out=p["out"],
            filters=filters,
            version=p.get("version"),
            copy_audio=bool(p.get("copy_audio", True)),
            progress=ctx.stage("Writing clips"),
            overwrite=bool(p.get("overwrite", False)),
        )
        return {**report.to_dict(), "summary": report.summary()}
    report, zipped = export_zip(
        ctx.ws,
        int(ctx.project_id or 0),
        fmt=p["fmt"],
        filters=filters,
        version=p.get("version"),
        progress=ctx.stage("Writing clips"),
    )
    size = zipped.stat().st_size
    where = str(zipped)
    if not ctx.ws.store.is_local:
        ctx.progress(0, 1, "Uploading the zip")
        where = upload_file(zipped, f"{ctx.ws.store.base}exports/{zipped.name}")
        zipped.unlink()
    report.out = where
    # Said to the person who downloads it: the zip's name, not where the server keeps it.
    shown = replace(report, out=f"{zipped.name} (download it on the Export page)").summary()
    return {**report.to_dict(), "zip": where, "zip_bytes": size, "summary": shown}


def download_bytes(ref: str) -> bytes:
    """The bytes of an export job's zip, wherever it was kept."""
    from labeling.platform.storage import read_url

    return read_url(ref)


def zip_available(ref: str | None) -> bool:
    if not ref:
        return False
    return True if is_remote_url(ref) else Path(ref).is_file()


#: A report refresh computes again while the labels moved under it, this many times at most; changes
#: after that queue the next refresh.
REFRESH_PASSES = 3


def _keep_current(
    ctx: JobContext,
    kind: str,
    params: dict[str, Any],
    compute: Callable[[], object],
    *,
    fingerprint: Callable[[Any, int], tuple[object, ...]] | None = None,
) -> int:
    """Compute the stored report until it matches the data, or :data:`REFRESH_PASSES` times; how
    many times it was computed (0 when it was current already, e.g. after a page's "Compute now").
    ``fingerprint`` says what data the report describes (default: the clips and labels)."""
    from labeling.quality.report_store import is_current

    project_id = int(ctx.project_id or 0)
    passes = 0
    extra = {} if fingerprint is None else {"fingerprint": fingerprint}
    while passes < REFRESH_PASSES and not is_current(ctx.ws.db, project_id, kind, params, **extra):
        ctx.check()
        compute()
        passes += 1
    return passes


@job_kind("data_summaries", title="Data summaries", permission="analyse", refreshes_report=True)
def data_summaries(ctx: JobContext) -> dict[str, Any]:
    """Keep the stored Overview summary and Clips filter options current: queued after each change
    to the data, and by those pages when they show older ones. When only final labels changed, the
    changed clips are moved between the counts rather than every clip counted again."""
    from labeling.quality.data_summaries import (
        CLIP_FACETS,
        OVERVIEW,
        PARAMS,
        clip_facets,
        refresh_data_summaries,
    )

    step = ctx.stage("Summarising the clips")
    step(0, 1)
    db, project_id = ctx.ws.db, int(ctx.project_id or 0)
    how: list[str] = []
    passes = _keep_current(ctx, OVERVIEW, PARAMS, lambda: how.append(refresh_data_summaries(db, project_id)))
    # Both are stored together; this only computes when the two drifted apart.
    passes += _keep_current(ctx, CLIP_FACETS, PARAMS, lambda: clip_facets(db, project_id, recompute=True))
    step(1, 1)
    n_clips = clip_facets(db, project_id, allow_stale=True).value.n_clips
    incremental = how.count("incremental")
    return {
        "passes": passes,
        "incremental": incremental,
        "n_clips": n_clips,
        "summary": f"{n_clips:,} clips summarised"
        + (" (labels changed: counts updated)" if how and incremental == len(how) else "")
        + ("" if passes else " (already current)"),
    }


@job_kind("data_checks", title="Data checks", permission="manage_data", refreshes_report=True)
def data_checks(ctx: JobContext) -> dict[str, Any]:
    """Keep the Data page's stored checks current: queued after each change to the data, and by that
    page when it shows an older report."""
    from labeling.quality.check_summary import CHECKS, PARAMS, checks_fingerprint, stored_checks

    step = ctx.stage("Checking the clips' measures")
    step(0, 1)
    db, project_id = ctx.ws.db, int(ctx.project_id or 0)
    passes = _keep_current(
        ctx,
        CHECKS,
        PARAMS,
        lambda: stored_checks(db, project_id, recompute=True),
        fingerprint=checks_fingerprint,
    )
    report = stored_checks(db, project_id, allow_stale=True).report
    step(1, 1)
    found = int(report.summary["n_clips"].sum()) if len(report.summary) else 0
    return {
        "passes": passes,
        "n_clips": report.n_clips,
        "findings": found,
        "summary": f"{report.n_clips:,} clips checked, {found:,} findings"
        + ("" if passes else " (already current)"),
    }


@job_kind("duplicate_checks", title="Duplicate checks", permission="manage_data")
def duplicate_checks(ctx: JobContext) -> dict[str, Any]:
    """Every data check, with the duplicate checks that decode each clip's audio: asked for on the
    Data page (``earmark checks`` runs the same checks in the terminal)."""
    from labeling.quality.check_summary import stored_duplicate_checks

    stored = stored_duplicate_checks(
        ctx.ws, int(ctx.project_id or 0), compute=True, progress=ctx.stage("Decoding audio")
    )
    assert stored is not None
    report = stored.report
    found = int(report.summary["n_clips"].sum()) if len(report.summary) else 0
    return {
        "n_clips": report.n_clips,
        "findings": found,
        "seconds": round(stored.seconds, 2),
        "summary": f"{report.n_clips:,} clips checked, {found:,} findings",
    }


def _labels_clips(task_kind: str, settings: Any) -> bool:
    return task_kind != "regions"


def _labels_regions(task_kind: str, settings: Any) -> bool:
    return task_kind == "regions"


@job_kind(
    "agreement", title="Agreement report", permission="analyse", refreshes_report=True, wanted=_labels_clips
)
def agreement(ctx: JobContext) -> dict[str, Any]:
    """Keep the stored agreement report current: queued after each change to the labels, and by the
    Agreement page when it shows an older one."""
    from labeling.quality.agreement_service import AGREEMENT_VIEW, agreement_view, view_params

    step = ctx.stage("Computing agreement")
    step(0, 1)
    n_boot = int(ctx.params.get("n_boot", 500))
    project_id = int(ctx.project_id or 0)
    passes = _keep_current(
        ctx,
        AGREEMENT_VIEW,
        view_params(n_boot),
        lambda: agreement_view(ctx.ws.db, project_id, n_boot=n_boot, recompute=True),
    )
    view = agreement_view(ctx.ws.db, project_id, n_boot=n_boot, allow_stale=True)
    step(1, 1)
    alpha = view.report.get("krippendorff_alpha")
    return {
        "seconds": round(view.seconds, 2),
        "passes": passes,
        "krippendorff_alpha": alpha,
        "summary": f"Agreement over {view.report.get('n_ratings', 0):,} labels"
        + (f": alpha {alpha:.3f}" if alpha is not None else "")
        + ("" if passes else " (already current)"),
    }


@job_kind(
    "review_queue", title="Review ranking", permission="review", refreshes_report=True, wanted=_labels_clips
)
def review_ranking(ctx: JobContext) -> dict[str, Any]:
    """Keep the ranking of open disagreements current: queued after each change to the labels, and by
    the Review page when it shows an older one."""
    from labeling.quality.agreement_service import REVIEW_QUEUE, REVIEW_SHOWN, review_queue

    step = ctx.stage("Ranking disagreements")
    step(0, 1)
    project_id = int(ctx.project_id or 0)
    passes = _keep_current(
        ctx,
        REVIEW_QUEUE,
        {"limit": REVIEW_SHOWN},
        lambda: review_queue(ctx.ws.db, project_id, limit=REVIEW_SHOWN, recompute=True),
    )
    ranked = review_queue(ctx.ws.db, project_id, limit=REVIEW_SHOWN, allow_stale=True)
    step(1, 1)
    waiting = int(ranked.queue.attrs.get("n_total", len(ranked.queue)))
    return {
        "seconds": round(ranked.seconds, 2),
        "passes": passes,
        "waiting": waiting,
        "summary": f"{waiting:,} clips wait for review" + ("" if passes else " (already current)"),
    }


@job_kind(
    "region_agreement",
    title="Region agreement report",
    permission="analyse",
    refreshes_report=True,
    wanted=_labels_regions,
)
def region_agreement(ctx: JobContext) -> dict[str, Any]:
    """Keep a regions project's stored region agreement current: queued after each save of regions
    (at the default ±200 ms), and by the Agreement page (``tolerance_ms``) when it shows an older one."""
    from labeling.quality.region_agreement import (
        REGION_AGREEMENT_VIEW,
        region_agreement_view,
        region_data_fingerprint,
        region_view_params,
    )

    step = ctx.stage("Computing region agreement")
    step(0, 1)
    project_id = int(ctx.project_id or 0)
    params = region_view_params()
    if ctx.params.get("tolerance_ms") is not None:
        params = {"tolerance_ms": int(ctx.params["tolerance_ms"])}
    tolerance = params["tolerance_ms"] / 1000
    passes = _keep_current(
        ctx,
        REGION_AGREEMENT_VIEW,
        params,
        lambda: region_agreement_view(ctx.ws.db, project_id, tolerance=tolerance, recompute=True),
        fingerprint=region_data_fingerprint,
    )
    view = region_agreement_view(ctx.ws.db, project_id, tolerance=tolerance, allow_stale=True)
    step(1, 1)
    kappa = view.value.get("fleiss_kappa")
    return {
        "seconds": round(view.seconds, 2),
        "passes": passes,
        "fleiss_kappa": kappa,
        "summary": f"Region agreement over {view.value.get('n_recordings', 0):,} recordings"
        + (f": frame kappa {kappa:.3f}" if kappa is not None else "")
        + ("" if passes else " (already current)"),
    }


@job_kind(
    "region_review_queue",
    title="Region review ranking",
    permission="review",
    refreshes_report=True,
    wanted=_labels_regions,
)
def region_review_ranking(ctx: JobContext) -> dict[str, Any]:
    """Keep a regions project's ranking of recordings to review current: queued after each save of
    regions, and by the Review page when it shows an older one."""
    from labeling.quality.region_agreement import (
        REGION_REVIEW_QUEUE,
        region_data_fingerprint,
        region_review_ranking,
    )

    step = ctx.stage("Ranking recordings")
    step(0, 1)
    project_id = int(ctx.project_id or 0)
    passes = _keep_current(
        ctx,
        REGION_REVIEW_QUEUE,
        {},
        lambda: region_review_ranking(ctx.ws.db, project_id, recompute=True),
        fingerprint=region_data_fingerprint,
    )
    ranked = region_review_ranking(ctx.ws.db, project_id, allow_stale=True)
    step(1, 1)
    waiting = len(ranked.value)
    return {
        "seconds": round(ranked.seconds, 2),
        "passes": passes,
        "waiting": waiting,
        "summary": f"{waiting:,} recordings drawn by two or more annotators"
        + ("" if passes else " (already current)"),
    }


@job_kind("drift", title="Drift check", needs_params=True)
def drift(ctx: JobContext) -> dict[str, Any]:
    """A production batch (``batch``) against the live model's reference, or ``reference``."""
    from labeling.monitor.drift import run_drift_check

    result = run_drift_check(
        ctx.ws,
        int(ctx.project_id or 0),
        ctx.params["batch"],
        reference=ctx.params.get("reference"),
        actor_id=ctx.owner_id,
        progress=ctx.stages(),
    )
    why = "; ".join(result.reasons[:2])
    summary = f"Batch {result.batch}: {result.level}" + (f" — {why}" if why else "")
    return {"check_id": result.id, "batch": result.batch, "level": result.level, "summary": summary}


def _scoring_wanted(task_kind: str, settings: Any) -> bool:
    from labeling.model.queue_scores import scoring_wanted

    return scoring_wanted(settings)


@job_kind("queue_scores", title="Queue scoring", refreshes_report=True, wanted=_scoring_wanted)
def queue_scores(ctx: JobContext) -> dict[str, Any]:
    """Rank the labeling queue by the project's active-learning strategy and apply adaptive overlap:
    queued after each training run and after changes to the labels (it scores again once
    ``queue_rescore_every`` labels arrived); ``force`` scores whatever changed."""
    from labeling.model.queue_scores import score_queue
    from labeling.monitor.live import live_run

    project_id = int(ctx.project_id or 0)
    with ctx.ws.db.read() as s:
        live = live_run(s, project_id)
        run_id = live.id if live is not None and len(live.classes or []) >= 2 else None
    result = score_queue(
        ctx.ws,
        project_id,
        run_id=run_id,
        force=bool(ctx.params.get("force")),
        progress=ctx.stage("Scoring the queue"),
    )
    return result.to_dict()
