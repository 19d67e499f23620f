"""Shadow comparison: :func:`shadow_comparison` sets a candidate run's answers on a batch beside the live
model's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from db.models import (
    ClipTag,
    ModelRun,
)
from labeling.monitor.drift import plain
from labeling.monitor.live import live_model, score_audio
from labeling.monitor.measures import batch_frame
from labeling.monitor.settings import MonitoringError, resolve_project
from labeling.platform.workspace import Workspace


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class ShadowReport:
    batch: str
    live: str
    candidate: str
    n: int
    disagreement: float
    n_labelled: int
    live_accuracy: float | None
    candidate_accuracy: float | None
    live_only_right: int
    candidate_only_right: int
    p_value: float
    per_tag: pd.DataFrame  # tag, n_labelled, live_accuracy, candidate_accuracy, change
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "per_tag"}
        d["per_tag"] = self.per_tag.to_dict(orient="records")
        return plain(d)


def shadow_comparison(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    candidate_run: int,
    *,
    max_overall_drop: float = 0.01,
    max_tag_drop: float = 0.05,
) -> ShadowReport:
    """A candidate run's answers on a production batch beside the live model's.

    The candidate (a built-in run, e.g. the fixed model retrained on a newer version) scores the
    batch's audio; accuracy of each is measured on the labelled random sample, compared with an
    exact McNemar test, overall and per tag (the labelled clips' tags and the logged device).
    Promote only when the candidate is no worse by more than ``max_overall_drop`` overall and
    ``max_tag_drop`` on any tag with at least 10 labelled clips.
    """
    with ws.db.read() as s:
        info = resolve_project(s, project)
        cur = batch_frame(s, info, batch)
        live = live_model(s, info)
        run = s.get(ModelRun, candidate_run)
        if run is None or run.project_id != info.id:
            raise MonitoringError(f"run {candidate_run} is not a run of project {info.name!r}")
        cand_name = run.name
        tags = pd.DataFrame(
            s.execute(
                select(ClipTag.clip_id, ClipTag.tag).where(
                    ClipTag.clip_id.in_(cur["clip_id"].dropna().astype(int).tolist())
                )
            ).all(),
            columns=["clip_id", "tag"],
        )
    if "predicted" not in cur:
        raise MonitoringError("shadow comparison needs class predictions")
    ws.store.fetch_many(cur["storage_key"])
    paths = {
        f"{i}": str(ws.store.path(k))
        for i, k in zip(cur["production_clip_id"], cur["storage_key"], strict=True)
    }
    by_sha = cur.assign(key=cur["production_clip_id"].astype(str))
    scores = score_audio(ws, candidate_run, dict(zip(by_sha["key"], paths.values(), strict=True)))
    cand = by_sha["key"].map(scores["label"])
    live_pred = cur["predicted"]
    disagreement = float((cand != live_pred).mean()) if len(cur) else 0.0
    lab = cur["correct"].notna()  # the labelled random sample, as every other view counts it
    lr = cur["correct"][lab] == 1.0
    cr = (cand == cur["label"])[lab]
    b, c = int((lr & ~cr).sum()), int((~lr & cr).sum())
    p = mcnemar_exact(b, c)
    rows = []
    slices: dict[str, pd.Series] = {}
    for tag, group in tags.groupby("tag"):
        slices[str(tag)] = cur["clip_id"].isin(group["clip_id"])
    for device in cur["device"].dropna().unique():
        slices[f"device:{device}"] = cur["device"] == device
    for name, mask in slices.items():
        m = mask[lab]
        if m.sum() == 0:
            continue
        live_acc, cand_acc = float(lr[m].mean()), float(cr[m].mean())
        rows.append(
            {
                "tag": name,
                "n_labelled": int(m.sum()),
                "live_accuracy": live_acc,
                "candidate_accuracy": cand_acc,
                "change": cand_acc - live_acc,
            }
        )
    per_tag = pd.DataFrame(
        rows, columns=["tag", "n_labelled", "live_accuracy", "candidate_accuracy", "change"]
    )
    la = float(lr.mean()) if len(lr) else None
    ca = float(cr.mean()) if len(cr) else None
    if la is None or ca is None:
        rec = "No labelled random sample yet: send the batch to labeling before deciding."
    else:
        worse_tags = per_tag[(per_tag["n_labelled"] >= 10) & (per_tag["change"] < -max_tag_drop)]
        if ca < la - max_overall_drop:
            rec = (
                f"Keep the live model: the candidate is {100 * (la - ca):.1f} points worse "
                "on the labelled sample."
            )
        elif not worse_tags.empty:
            rec = (
                f"Keep the live model: the candidate is more than {100 * max_tag_drop:.0f} points "
                f"worse on {', '.join(worse_tags['tag'])}."
            )
        elif ca > la and p < 0.05:
            rec = (
                f"Promote the candidate: {100 * (ca - la):.1f} points better "
                f"(McNemar p = {p:.3g}), no tag worse."
            )
        else:
            rec = (
                f"Either will do: the candidate is no worse by more than {100 * max_overall_drop:.0f} "
                f"point overall or {100 * max_tag_drop:.0f} on any tag (McNemar p = {p:.3g})."
            )
    return ShadowReport(
        batch=str(cur.attrs["batch"]),
        live=live.run_name if live else "logged predictions",
        candidate=cand_name,
        n=len(cur),
        disagreement=disagreement,
        n_labelled=int(lab.sum()),
        live_accuracy=la,
        candidate_accuracy=ca,
        live_only_right=b,
        candidate_only_right=c,
        p_value=p,
        per_tag=per_tag,
        recommendation=rec,
    )
