"""Augmented training clips for a slice: call :func:`augment_slice`.

A slice is chosen by a tag (``noise:car``) and/or metadata values (``{"accent": "scottish"}``); its
training clips with a final label are transformed by one recipe (:data:`RECIPES`: car noise or
babble at an SNR, a telephone channel, a pitch shift, a speed change — the signal processing is
:mod:`analysis.augment`) and stored as NEW clips: content-addressed audio, ``parent_clip_id`` and
the recipe in ``derivation``, the parent's tags with the condition's tag replacing its group's (a
car-noise copy of a clean clip is ``noise:car``, not ``noise:clean``; a metadata field of that name
changes with it) plus ``augmented:<recipe>``,
the parent's final label as their own (method ``imported``), and split ``train`` always: an augmented
copy in dev or test would grade the model on audio it has, in effect, seen.

:func:`store_derived_clips` is the shared way to add clips made from other clips (the data-check fixes
in :mod:`labeling.data.checks` use it too).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from analysis.augment import (
    babble_noise,
    car_noise,
    mix_at_snr,
    peak_normalize,
    pitch_shift,
    speed_change,
    telephone_channel,
)
from analysis.quality import audio_quality
from db.models import Clip, ClipTag, Resolution, utcnow
from labeling.data.clip_metadata import index_clip_metadata
from labeling.data.clips import load_audio
from labeling.data.projects import ProjectInfo, get_project
from labeling.data.supersede import carry_workflow
from labeling.platform.audit import record_many
from labeling.platform.jobs import queue_report_refreshes
from labeling.platform.storage import sha256_bytes
from labeling.platform.workspace import Workspace

Progress = Callable[[int, int], None]

#: Recipe kinds and the tag of the condition each creates (None: no condition tag).
RECIPES: dict[str, str | None] = {
    "car": "noise:car",
    "babble": "noise:babble",
    "telephone": "channel:telephone",
    "pitch": None,
    "speed": None,
}
#: Above this peak a written clip is scaled down to -1 dBFS rather than clipped by the PCM encoder.
_MAX_PEAK = 0.999


class AugmentError(ValueError):
    """The augmentation cannot be made as asked; nothing was written. The message says why."""


@dataclass(frozen=True)
class Recipe:
    """One augmentation: ``kind`` in :data:`RECIPES` with its setting."""

    kind: str
    snr_db: float = 10.0  # car, babble
    n_steps: float = 2.0  # pitch (semitones)
    factor: float = 1.1  # speed

    def __post_init__(self) -> None:
        if self.kind not in RECIPES:
            raise AugmentError(f"unknown augmentation {self.kind!r}; choose one of {', '.join(RECIPES)}")
        if self.kind == "speed" and not 0.5 <= self.factor <= 2.0:
            raise AugmentError("a speed factor between 0.5 and 2 keeps speech intelligible")
        if self.kind == "pitch" and abs(self.n_steps) > 12:
            raise AugmentError("pitch shifts beyond an octave do not sound like speech")

    @property
    def tag(self) -> str:
        """``augmented:car@10dB``, ``augmented:telephone``, ``augmented:pitch+2``, ``augmented:speed1.1``."""
        if self.kind in ("car", "babble"):
            return f"augmented:{self.kind}@{self.snr_db:g}dB"
        if self.kind == "pitch":
            return f"augmented:pitch{self.n_steps:+g}"
        if self.kind == "speed":
            return f"augmented:speed{self.factor:g}"
        return f"augmented:{self.kind}"

    @property
    def condition_tag(self) -> str | None:
        return RECIPES[self.kind]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("car", "babble"):
            d["snr_db"] = self.snr_db
        elif self.kind == "pitch":
            d["n_steps"] = self.n_steps
        elif self.kind == "speed":
            d["factor"] = self.factor
        return d


def apply_recipe(
    y: np.ndarray,
    sr: int,
    recipe: Recipe,
    *,
    babble_sources: Sequence[np.ndarray] = (),
    random_state: int = 0,
) -> np.ndarray:
    """The transformed signal (float64, mono)."""
    rng = np.random.default_rng(random_state)
    if recipe.kind == "car":
        return mix_at_snr(
            y, car_noise(len(y), sr=sr, random_state=rng), snr_db=recipe.snr_db, random_state=rng
        )
    if recipe.kind == "babble":
        if not babble_sources:
            raise AugmentError("babble needs other clips of the project to build the crowd from")
        noise = babble_noise(babble_sources, n_samples=len(y), random_state=rng)
        return mix_at_snr(y, noise, snr_db=recipe.snr_db, random_state=rng)
    if recipe.kind == "telephone":
        return telephone_channel(y, sr=sr, channel_sr=min(8000, sr))
    if recipe.kind == "pitch":
        return pitch_shift(y, sr=sr, n_steps=recipe.n_steps)
    return speed_change(y, factor=recipe.factor)


# --- derived clips -----------------------------------------------------------------------------------


@dataclass
class DerivedAudio:
    """A clip to be made from ``parent_id``: its samples, recipe and tags."""

    parent_id: int
    samples: np.ndarray
    sample_rate: int
    derivation: dict[str, Any]
    name_suffix: str
    add_tags: list[str] = field(default_factory=list)
    split: str | None = None  # None: the parent's


def encode_wav(y: np.ndarray, sr: int) -> tuple[bytes, bool]:
    """16-bit PCM WAV bytes, scaled to -1 dBFS when the peak would clip; (bytes, rescaled)."""
    y = np.asarray(y, dtype=np.float64)
    rescaled = bool(np.max(np.abs(y), initial=0.0) > _MAX_PEAK)
    if rescaled:
        y = peak_normalize(y, peak_dbfs=-1.0)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue(), rescaled


def _groups(tag: str) -> str:
    return tag.split(":", 1)[0] if ":" in tag else tag


def store_derived_clips(
    ws: Workspace,
    project_id: int,
    items: Sequence[DerivedAudio],
    *,
    tag_source: str,
    actor_id: int | None = None,
    supersede: bool = False,
) -> list[tuple[int, bool]]:
    """Store clips made from other clips; returns ``(clip_id, created)`` per item.

    Audio is encoded as 16-bit WAV and stored content-addressed before the write transaction; the
    clips, their tags and their final labels (the parent's, method ``imported``) are inserted in one
    transaction with an audit event per clip. A result identical to a clip the project already holds
    is not stored twice (``created`` is False). Derived clips need no annotation: they are never
    offered in the labeling queue. With ``supersede`` each new clip takes its parent's place: it
    takes over the parent's whole workflow (:func:`labeling.data.supersede.carry_workflow`: annotations,
    final label, flags, gold examples, claims and queue state) instead of a copy of its final label,
    and the parent is soft-deleted in the same transaction (its audit event names the clip that
    replaced it and what moved). A parent whose result is a clip that exists already is left as it is.
    """
    prepared = []
    for item in items:
        data, rescaled = encode_wav(item.samples, item.sample_rate)
        digest = sha256_bytes(data)
        key, _ = ws.store.put(data, "wav", sha256=digest)
        decoded, _ = sf.read(io.BytesIO(data), dtype="float32")
        quality = audio_quality(decoded, item.sample_rate).to_dict()
        derivation = {**item.derivation, "parent_clip_id": item.parent_id}
        if rescaled:
            derivation["rescaled_to_dbfs"] = -1.0
        prepared.append((item, digest, key, len(decoded), quality, derivation))

    out: list[tuple[int, bool]] = []
    with ws.db.write() as s:
        parent_ids = sorted({it.parent_id for it in items})
        # Superseded parents are locked first: nothing may be annotated on them while their work moves.
        q = select(Clip).where(Clip.id.in_(parent_ids))
        parents = {c.id: c for c in s.scalars(q.with_for_update() if supersede else q)}
        resolutions = (
            {}
            if supersede
            else {
                r.clip_id: r for r in s.scalars(select(Resolution).where(Resolution.clip_id.in_(parent_ids)))
            }
        )
        tags_of: dict[int, list[str]] = {}
        for cid, tag in s.execute(
            select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(parent_ids))
        ):
            tags_of.setdefault(cid, []).append(tag)
        existing = dict(
            s.execute(
                select(Clip.sha256, Clip.id).where(
                    Clip.project_id == project_id, Clip.sha256.in_([p[1] for p in prepared])
                )
            ).all()
        )
        now = utcnow()
        events = []
        for item, digest, key, frames, quality, derivation in prepared:
            parent = parents.get(item.parent_id)
            if parent is None or parent.project_id != project_id:
                raise AugmentError(f"clip {item.parent_id} is not a clip of this project")
            if digest in existing:
                out.append((existing[digest], False))
                continue
            stem = parent.original_name.rsplit(".", 1)[0]
            conditions = dict(
                t.split(":", 1) for t in item.add_tags if ":" in t and not t.startswith("augmented:")
            )
            clip = Clip(
                project_id=project_id,
                sha256=digest,
                storage_key=key,
                original_name=f"{stem}~{item.name_suffix}.wav",
                duration_s=frames / item.sample_rate,
                sample_rate=item.sample_rate,
                channels=1,
                frames=frames,
                audio_format="WAV",
                # A metadata field named like a condition's group says what the copy now is, not the parent
                # (a telephone copy of a wideband clip is channel=telephone), so tag and metadata agree.
                meta={
                    **(parent.meta or {}),
                    **{g: v for g, v in conditions.items() if g in (parent.meta or {})},
                },
                split=item.split or parent.split,
                import_batch_id=parent.import_batch_id,
                annotations_needed=0,
                annotation_count=0,
                parent_clip_id=parent.id,
                derivation=derivation,
                created_at=now,
                **quality,
            )
            s.add(clip)
            s.flush()
            existing[digest] = clip.id
            replaced = set(conditions)
            tags = [t for t in tags_of.get(parent.id, []) if _groups(t) not in replaced]
            tags = list(dict.fromkeys([*tags, *item.add_tags]))
            if tags:
                s.execute(
                    insert(ClipTag),
                    [
                        {
                            "clip_id": clip.id,
                            "tag": t,
                            "source": tag_source,
                            "created_by": actor_id,
                            "created_at": now,
                        }
                        for t in tags
                    ],
                )
            res = resolutions.get(parent.id)
            if res is not None:
                s.add(
                    Resolution(
                        clip_id=clip.id,
                        project_id=project_id,
                        label=res.label,
                        transcript=res.transcript,
                        method="imported",
                        resolved_by=actor_id,
                        convention_version=res.convention_version,
                        agreement=res.agreement,
                        created_at=now,
                        updated_at=now,
                    )
                )
            events.append(
                {
                    "entity": "clip",
                    "entity_id": clip.id,
                    "action": "create",
                    "new": {
                        "sha256": digest,
                        "parent_clip_id": parent.id,
                        "derivation": derivation,
                        "tags": tags,
                    },
                }
            )
            out.append((clip.id, True))
        if supersede:
            for item, (new_id, created) in zip(items, out, strict=True):
                parent = parents[item.parent_id]
                if parent.deleted_at is None and created:
                    moved = carry_workflow(s, parent, s.get_one(Clip, new_id))
                    parent.deleted_at = now
                    events.append(
                        {
                            "entity": "clip",
                            "entity_id": parent.id,
                            "action": "update",
                            "old": {"deleted_at": None},
                            "new": {"deleted_at": now, "superseded_by": new_id, "carried": moved},
                        }
                    )
        s.flush()
        index_clip_metadata(s, project_id)
        record_many(s, events, actor_id=actor_id, project_id=project_id)
        if events:
            queue_report_refreshes(s, project_id)
    return out


# --- augmenting a slice ------------------------------------------------------------------------------


@dataclass
class AugmentReport:
    project: str
    slice: str
    recipe: dict[str, Any]
    tag: str
    n_parents: int
    n_created: int
    n_existing: int
    clip_ids: list[int]

    def summary(self) -> str:
        return (
            f"{self.n_created:,} augmented training clips ({self.tag}) made from {self.n_parents:,} clips of "
            f"{self.slice}" + (f"; {self.n_existing:,} existed already" if self.n_existing else "")
        )


def slice_parents(
    s: Session, project_id: int, *, tag: str | None = None, where: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Training clips of a slice that may be augmented: live, labelled, not themselves augmented.

    Columns ``clip_id, storage_key, sample_rate, speaker`` (the ``speaker`` metadata value or None).
    """
    q = (
        select(Clip.id, Clip.storage_key, Clip.sample_rate, Clip.meta, Clip.derivation)
        .join(Resolution, Resolution.clip_id == Clip.id)
        .where(
            Clip.project_id == project_id,
            Clip.deleted_at.is_(None),
            Clip.split == "train",
            (Resolution.label.is_not(None)) | (Resolution.transcript.is_not(None)),
        )
        .order_by(Clip.id)
    )
    if tag:
        q = q.where(Clip.id.in_(select(ClipTag.clip_id).where(ClipTag.tag == tag)))
    rows = []
    for cid, key, sr, meta, derivation in s.execute(q):
        meta = meta or {}
        if isinstance(derivation, dict) and str(derivation.get("kind", "")).startswith("augment"):
            continue
        if where and any(str(meta.get(k)) != str(v) for k, v in where.items()):
            continue
        rows.append({"clip_id": cid, "storage_key": key, "sample_rate": sr, "speaker": meta.get("speaker")})
    return pd.DataFrame(rows, columns=["clip_id", "storage_key", "sample_rate", "speaker"])


def _slice_name(tag: str | None, where: Mapping[str, str] | None) -> str:
    parts = ([tag] if tag else []) + [f"{k}={v}" for k, v in (where or {}).items()]
    return " & ".join(parts) if parts else "all training clips"


def _parents(
    ws: Workspace, project: str | int, tag: str | None, where: Mapping[str, str] | None
) -> tuple[ProjectInfo, pd.DataFrame]:
    """The project and its slice's augmentable training clips; refused when there are none."""
    with ws.db.read() as s:
        info = get_project(s, project)
        parents = slice_parents(s, info.id, tag=tag, where=where)
    if parents.empty:
        raise AugmentError(f"the slice {_slice_name(tag, where)} has no labelled training clip to augment")
    return info, parents


@dataclass(frozen=True)
class AugmentPreview:
    """One clip of a slice and what a recipe makes of it, to listen to before augmenting the slice."""

    clip_id: int
    original_name: str
    sample_rate: int
    original: np.ndarray
    augmented: np.ndarray
    n_parents: int


def preview_augmentation(
    ws: Workspace,
    project: str | int,
    *,
    recipe: Recipe,
    tag: str | None = None,
    where: Mapping[str, str] | None = None,
    random_state: int = 0,
) -> AugmentPreview:
    """What :func:`augment_slice` would make of one clip of the slice (the first, by id); nothing is stored.

    The copy is the one :func:`augment_slice` with the same ``random_state`` stores for that clip.
    """
    info, parents = _parents(ws, project, tag, where)
    first = parents.iloc[[0]]
    with ws.db.read() as s:
        name = s.scalar(select(Clip.original_name).where(Clip.id == int(first["clip_id"].iloc[0])))
    items = _augmented(ws, info.id, first, recipe, random_state)
    original, sr = load_audio(ws.store.path(first["storage_key"].iloc[0]))
    return AugmentPreview(
        clip_id=items[0].parent_id,
        original_name=str(name),
        sample_rate=sr,
        original=original,
        augmented=items[0].samples,
        n_parents=len(parents),
    )


def _augmented(
    ws: Workspace,
    project_id: int,
    parents: pd.DataFrame,
    recipe: Recipe,
    random_state: int,
    progress: Progress | None = None,
) -> list[DerivedAudio]:
    """The recipe applied to each parent, each with its own seeded noise stream."""
    babble_pool: list[tuple[Any, np.ndarray]] = []
    if recipe.kind == "babble":
        with ws.db.read() as s:
            sources = slice_parents(s, project_id)
        pool = sources.sample(n=min(40, len(sources)), random_state=random_state) if len(sources) else sources
        babble_pool = [(r.speaker, load_audio(ws.store.path(r.storage_key))[0]) for r in pool.itertuples()]
    items = []
    for done, row in enumerate(parents.itertuples(index=False), 1):
        y, sr = load_audio(ws.store.path(row.storage_key))
        seed = int(np.random.SeedSequence([random_state, int(row.clip_id)]).generate_state(1)[0])
        others = [a for spk, a in babble_pool if spk is None or spk != row.speaker]
        # Babble built only from the target speaker's own voice is a different, easier condition.
        out = apply_recipe(y, sr, recipe, babble_sources=others, random_state=seed)
        items.append(
            DerivedAudio(
                parent_id=int(row.clip_id),
                samples=out,
                sample_rate=sr,
                derivation={"kind": "augment", "recipe": recipe.to_dict(), "seed": seed},
                name_suffix=recipe.tag.split(":", 1)[1],
                add_tags=[t for t in (recipe.condition_tag, recipe.tag) if t],
                split="train",
            )
        )
        if progress is not None:
            progress(done, len(parents))
    return items


def augment_slice(
    ws: Workspace,
    project: str | int,
    *,
    recipe: Recipe,
    tag: str | None = None,
    where: Mapping[str, str] | None = None,
    limit: int | None = None,
    actor_id: int | None = None,
    progress: Progress | None = None,
    random_state: int = 0,
) -> AugmentReport:
    """Make one augmented training clip per training clip of a slice.

    Parameters
    ----------
    project
        Name or id.
    recipe
        What to do to each clip.
    tag, where
        The slice: clips with this tag and/or these metadata values (both optional; neither means
        every training clip).
    limit
        At most this many parents (a random sample of the slice, seeded by ``random_state``).
    progress
        ``progress(done, total)`` per clip transformed.
    random_state
        Seeds the noise; each parent gets its own stream derived from it and its clip id, so adding
        clips to a slice never changes the copies made of the others.

    Raises
    ------
    AugmentError
        If the slice holds no labelled training clip.
    """
    info, parents = _parents(ws, project, tag, where)
    if limit is not None and len(parents) > int(limit):
        # A random sample, not the first clips: those often come from a handful of speakers or words.
        parents = parents.sample(n=int(limit), random_state=random_state).sort_values("clip_id")
    items = _augmented(ws, info.id, parents, recipe, random_state, progress)
    stored = store_derived_clips(ws, info.id, items, tag_source="augment", actor_id=actor_id)
    return AugmentReport(
        project=info.name,
        slice=_slice_name(tag, where),
        recipe=recipe.to_dict(),
        tag=recipe.tag,
        n_parents=len(parents),
        n_created=sum(created for _, created in stored),
        n_existing=sum(not created for _, created in stored),
        clip_ids=[cid for cid, _ in stored],
    )
