"""Clips from a regions project's final regions: :func:`preview_cut`, then :func:`cut_final_regions`.

Each final region of each recording becomes a clip of a new project: its samples cut from the
recording exactly (the region's first frame is ``round(start × rate)``, its end ``round(end × rate)``,
written in the recording's own sample format when WAV can hold it), its class as the clip's final
label (a ``classification`` project) or its transcript as the final transcript (``transcription``),
and ``recording_id``, ``recording``, ``start_s``, ``end_s`` in the clip's metadata pointing back.
A clip that has its label or transcript needs no annotation; a transcription clip whose region had
no transcript goes to the queue like an imported clip.

Everything is read and stored before one write transaction makes the project, its clips and their
final labels, so a failure leaves nothing half-made.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analysis.quality import audio_quality
from db.models import Clip, Project, Resolution, utcnow
from labeling.data.clip_metadata import index_clip_metadata
from labeling.data.projects import ProjectError, create_project, validate_name
from labeling.data.regions import RegionsError, changed_after_final, list_regions, regions_project
from labeling.platform.audit import record_many
from labeling.platform.storage import sha256_bytes

if TYPE_CHECKING:
    from labeling.platform.workspace import Workspace

CUT_KINDS = ("classification", "transcription")
#: WAV subtypes a cut keeps as the recording has them; anything else is written as 16-bit PCM.
_WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


@dataclass(frozen=True)
class CutReport:
    """What a cut makes (or, previewed, would make): the new project and one row per clip."""

    project: str
    source: str
    kind: str
    clips: pd.DataFrame  # recording_id, recording, start, end, label, text, name (+ clip_id once made)
    recordings_without_final: int = 0
    classes: list[str] = field(default_factory=list)
    #: Recordings (name → annotators) changed by an annotator after their final set was saved: the
    #: cut takes the final set as it is, which may be due for another review.
    changed_after_final: dict[str, list[str]] = field(default_factory=dict)

    def changed_after_final_note(self) -> str | None:
        """What to say of :attr:`changed_after_final`, or None when every final set is settled."""
        if not self.changed_after_final:
            return None
        n = len(self.changed_after_final)
        lines = [
            f"{n} recording{'s' * (n != 1)} changed by annotators after {'their' if n != 1 else 'its'} "
            "final set was saved; the cut takes the final set as it is (adjudicate again on the Review "
            "page first to take their changes into account):"
        ]
        lines += [f"  {name}: changed by {', '.join(who)}" for name, who in self.changed_after_final.items()]
        return "\n".join(lines)

    def summary(self) -> str:
        made = "made" if "clip_id" in self.clips.columns else "would make"
        n = len(self.clips)
        out = (
            f"{self.kind} project {self.project!r} {made} from {self.source!r}: {n} clip{'s' * (n != 1)} "
            f"from {self.clips['recording_id'].nunique()} recordings"
        )
        if self.recordings_without_final:
            out += f"; {self.recordings_without_final} recordings have no final regions and give none"
        return out


def _clip_name(recording: str, start: float, end: float) -> str:
    stem = recording.rsplit(".", 1)[0]
    return f"{stem}~{start:09.3f}-{end:09.3f}.wav"


def preview_cut(s: Session, project: str | int, to: str, *, kind: str = "classification") -> CutReport:
    """The clips :func:`cut_final_regions` would make, checked (a new project name, a known kind,
    final regions to cut); nothing is written."""
    info = regions_project(s, project)
    if kind not in CUT_KINDS:
        raise RegionsError(f"a cut makes a project of kind {' or '.join(CUT_KINDS)}, not {kind!r}")
    try:
        to = validate_name(to)
    except ProjectError as exc:
        raise RegionsError(str(exc)) from None
    if s.scalar(select(Project.id).where(Project.name == to)) is not None:
        raise RegionsError(f"a project named {to!r} already exists: choose a new name for the clips")
    final = list_regions(s, info.id, sources=["final"])
    if final.empty:
        raise RegionsError(
            f"project {info.name!r} has no final regions yet: adjudicate recordings on the Review page first"
        )
    n_live = int(
        s.scalar(
            select(func.count())
            .select_from(Clip)
            .where(Clip.project_id == info.id, Clip.deleted_at.is_(None))
        )
        or 0
    )
    clips = final[["recording_id", "recording", "start", "end", "label", "text"]].reset_index(drop=True)
    names = dict(zip(clips["recording_id"].astype(int), clips["recording"].astype(str), strict=False))
    stale = changed_after_final(s, info.id, sorted(names))
    clips["name"] = [
        _clip_name(r, a, b) for r, a, b in zip(clips["recording"], clips["start"], clips["end"], strict=True)
    ]
    return CutReport(
        project=to,
        source=info.name,
        kind=kind,
        clips=clips,
        recordings_without_final=n_live - clips["recording_id"].nunique(),
        classes=sorted(set(clips["label"])),
        changed_after_final={names[c]: who for c, who in sorted(stale.items(), key=lambda x: names[x[0]])},
    )


def cut_span(path: Path, start: float, end: float) -> tuple[np.ndarray, int, str]:
    """The samples of ``[start, end)`` seconds of an audio file (frames × channels), its rate and the
    WAV subtype that keeps them exactly."""
    info = sf.info(str(path))
    first, last = round(start * info.samplerate), min(round(end * info.samplerate), info.frames)
    subtype = info.subtype if info.subtype in _WAV_SUBTYPES else "PCM_16"
    dtype = "int16" if subtype == "PCM_16" else ("int32" if subtype in ("PCM_24", "PCM_32") else "float64")
    y, sr = sf.read(str(path), start=first, stop=last, dtype=dtype, always_2d=True)
    return y, int(sr), subtype


def cut_final_regions(
    ws: Workspace,
    project: str | int,
    to: str,
    *,
    kind: str = "classification",
    actor_id: int | None = None,
) -> CutReport:
    """Make the project ``to`` of ``kind`` from ``project``'s final regions, one clip per region.

    Raises
    ------
    RegionsError
        The source is not a regions project or has no final regions, ``to`` exists or is not a valid
        name, ``kind`` is unknown, or a recording's audio is missing; nothing is written.
    """
    with ws.db.read() as s:
        plan = preview_cut(s, project, to, kind=kind)
        keys = dict(
            s.execute(
                select(Clip.id, Clip.storage_key).where(
                    Clip.id.in_(plan.clips["recording_id"].astype(int).tolist())
                )
            ).all()
        )
    prepared = []
    for row in plan.clips.itertuples(index=False):
        path = ws.store.path(keys[int(row.recording_id)])
        if not path.is_file():
            raise RegionsError(
                f"the audio of {row.recording!r} is missing from the audio store: nothing was cut"
            )
        y, sr, subtype = cut_span(path, float(row.start), float(row.end))
        if len(y) == 0:
            raise RegionsError(f"region {row.start}–{row.end} s of {row.recording!r} holds no audio")
        buf = io.BytesIO()
        sf.write(buf, y, sr, format="WAV", subtype=subtype)
        data = buf.getvalue()
        digest = sha256_bytes(data)
        key, _ = ws.store.put(data, "wav", sha256=digest)
        mono = y.astype(np.float64).mean(axis=1)
        if np.issubdtype(y.dtype, np.integer):
            mono = mono / float(np.iinfo(y.dtype).max + 1)
        prepared.append((row, digest, key, len(y), sr, y.shape[1], audio_quality(mono, sr).to_dict()))

    made: list[int | None] = []
    with ws.db.write() as s:
        # Checked again inside the transaction: another process may have taken the name meanwhile.
        preview_cut(s, project, to, kind=kind)
        info = create_project(
            s,
            name=to,
            task_kind=kind,
            classes=plan.classes if kind == "classification" else (),
            actor_id=actor_id,
        )
        now = utcnow()
        seen: dict[str, int] = {}
        events = []
        for row, digest, key, frames, sr, channels, quality in prepared:
            if digest in seen:  # two regions with identical audio: one clip (the project's sha is unique)
                made.append(seen[digest])
                continue
            text = row.text if isinstance(row.text, str) and row.text else None
            answer = row.label if kind == "classification" else text
            clip = Clip(
                project_id=info.id,
                sha256=digest,
                storage_key=key,
                original_name=row.name,
                duration_s=frames / sr,
                sample_rate=sr,
                channels=channels,
                frames=frames,
                audio_format="WAV",
                meta={
                    "recording_id": str(int(row.recording_id)),
                    "recording": str(row.recording),
                    "start_s": f"{float(row.start):.3f}",
                    "end_s": f"{float(row.end):.3f}",
                },
                split="train",
                annotations_needed=0 if answer is not None else info.annotations_per_clip,
                annotation_count=0,
                created_at=now,
                **quality,
            )
            s.add(clip)
            s.flush()
            seen[digest] = clip.id
            made.append(clip.id)
            if answer is not None:
                s.add(
                    Resolution(
                        clip_id=clip.id,
                        project_id=info.id,
                        label=row.label if kind == "classification" else None,
                        transcript=text,
                        method="imported",
                        resolved_by=actor_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            events.append(
                {
                    "entity": "clip",
                    "entity_id": clip.id,
                    "action": "create",
                    "new": {"sha256": digest, "cut_from": clip.meta, "label": answer},
                }
            )
        s.flush()
        index_clip_metadata(s, info.id)
        record_many(s, events, actor_id=actor_id, project_id=info.id)
    return CutReport(
        project=info.name,
        source=plan.source,
        kind=kind,
        clips=plan.clips.assign(clip_id=made),
        recordings_without_final=plan.recordings_without_final,
        classes=plan.classes,
        changed_after_final=plan.changed_after_final,
    )
