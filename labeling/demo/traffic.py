"""The demo's production traffic (:func:`step_production_batches`): the model trained on ``v1`` goes
live, then two days of requests arrive as prediction logs — one from speakers and conditions like the
training data, one from a school pilot whose teenage voices the model never heard — and both are
checked for drift. The pilot's random sample is labelled (with the words the synthesiser spoke), so
its accuracy drop shows as concept drift beside the input drift."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from db.models import Clip, DatasetVersion, ModelRun, ProductionClip, Resolution
from labeling.data.projects import get_project, update_project
from labeling.monitor.drift import run_drift_check
from labeling.monitor.live import mark_live, score_audio
from labeling.monitor.loop import labeling_sample, send_to_labeling
from labeling.monitor.production import import_production
from labeling.monitor.settings import MonitoringError
from labeling.platform.workspace import Workspace

#: Requests per demo batch, by demo size (the tiny demo has no model to put live).
BATCH_SIZES = {"tiny": 0, "small": 60, "standard": 120}
#: The demo's batches: (name, synthesiser batch, day before the demo was built).
DEMO_TRAFFIC = (("2 days ago: app launch", "initial", 2), ("yesterday: school pilot", "teens", 1))


def _log(
    ws: Workspace,
    run_id: int,
    corpus: Any,
    folder: Path,
    *,
    day: datetime,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    scores = score_audio(ws, run_id, {f: str(folder / f) for f in corpus["file_name"]}, progress=progress)
    path = folder / "predictions.jsonl"
    with path.open("w") as fh:
        for i, row in enumerate(corpus.itertuples()):
            when = day + timedelta(seconds=int(i * rng.uniform(20, 40)))
            fh.write(
                json.dumps(
                    {
                        "audio": row.file_name,
                        "timestamp": when.isoformat(),
                        "model": str(scores.attrs.get("model", "live")),
                        "prediction": str(scores.at[row.file_name, "label"]),
                        "confidence": round(float(scores.at[row.file_name, "confidence"]), 4),
                        "latency_ms": round(float(rng.gamma(4.0, 9.0)), 1),
                        "request_id": f"{day:%Y%m%d}-{i:05d}",
                        "device": row.device,
                        "user_action": "retry" if rng.random() < 0.04 else None,
                    }
                )
                + "\n"
            )
    return path


def _label_random_sample(ws: Workspace, project_id: int, batch: str, words: dict[str, str]) -> int:
    """Queue the batch's labeling sample and give its random part the spoken words as final labels.

    The demo project asks for 40 random clips a batch (the default is the 30 labels a concept-drift
    verdict needs), for a tighter accuracy estimate on a batch of 120."""
    with ws.db.write() as s:
        info = get_project(s, project_id)
        monitoring = {**dict(info.settings.get("monitoring") or {}), "sample_minimum": 40}
        update_project(s, project_id, settings={**info.settings, "monitoring": monitoring})
    sample = labeling_sample(ws, project_id, batch)
    send_to_labeling(ws, project_id, batch, sample)
    with ws.db.write() as s:
        rows = s.execute(
            select(Clip.id, ProductionClip.original_name)
            .join(ProductionClip, ProductionClip.clip_id == Clip.id)
            .where(ProductionClip.project_id == project_id, ProductionClip.sample_reason == "random")
        ).all()
        known = set(s.scalars(select(Resolution.clip_id).where(Resolution.clip_id.in_([r[0] for r in rows]))))
        for clip_id, name in rows:
            if clip_id not in known and name in words:
                s.add(
                    Resolution(clip_id=clip_id, project_id=project_id, label=words[name], method="imported")
                )
    return len(rows)


def step_production_batches(ws: Workspace, ctx: Any) -> str:
    """Demo step: put the model trained on v1 live, log two production batches and check them for drift."""
    from labeling.demo.synth import synthesize_demo_corpus

    n = BATCH_SIZES.get(ctx.size, 0) if isinstance(ctx.size, str) else max(0, min(120, int(ctx.size) // 5))
    with ws.db.read() as s:
        project_id = ctx.facts["project_id"]
        run_id = s.scalar(
            select(ModelRun.id)
            .join(DatasetVersion, DatasetVersion.id == ModelRun.dataset_version_id)
            .where(ModelRun.project_id == project_id, DatasetVersion.kind == "named")
            .order_by(ModelRun.id)
            .limit(1)
        )
    if n < 50 or run_id is None:
        return "no production traffic: the demo is too small for a live model and drift verdicts"
    try:
        mark_live(ws, project_id, int(run_id))
    except MonitoringError as exc:
        return f"no production traffic: {exc}"
    rng = np.random.default_rng(ctx.random_state)
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    lines = []
    for name, source, days in DEMO_TRAFFIC:
        with tempfile.TemporaryDirectory(prefix="earmark-demo-live-") as tmp:
            folder = Path(tmp)
            corpus = synthesize_demo_corpus(
                folder,
                size=n,
                random_state=ctx.random_state + days,
                batch=source,
                progress=ctx.report(f"Synthesising the {name!r} traffic, clip"),
            )
            log = _log(
                ws,
                int(run_id),
                corpus,
                folder,
                day=today - timedelta(days=days),
                rng=rng,
                progress=ctx.report(f"Scoring {name!r} with the live model, clip"),
            )
            import_production(
                ws, log, project_id, batch=name, progress=ctx.report(f"Logging {name!r}, request")
            )
            words = dict(zip(corpus["file_name"], corpus["label"], strict=True))
        if source == "teens":
            _label_random_sample(ws, project_id, name, words)
        check = run_drift_check(ws, project_id, name, progress=ctx.progress)
        lines.append(f"{name}: {check.level}" + (f" ({check.reasons[0]})" if check.reasons else ""))
    return "production traffic: " + "; ".join(lines)
