"""The demo's long recordings: :func:`step_regions_project` builds a ``regions`` project beside the clips.

Two recordings of a couple of minutes each, 16 kHz: two people (espeak-ng voices of the clip corpus)
take turns saying short sentences with pauses between, one recording has a stretch of music, the
other is a call from a car whose engine starts half-way. What was said where is known exactly, so
the final regions are the truth (with each region's transcript, its speaker and whether the car
was running as tags). Two annotators draw their own regions from it as people do:

- **ana** puts her boundaries within a few tens of milliseconds, but misses a quiet sentence in the
  car noise;
- **ben** is looser at the edges, calls the music speech, and drops a word here and there.

The built-in energy VAD proposes its regions on both recordings, the "model" the Error analysis
page scores against the final regions, with the annotators as human level.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy.orm import Session

from analysis.augment import car_noise
from labeling.annotate.region_labels import submit_regions
from labeling.data import conventions as cv
from labeling.data.clips import clip_frame
from labeling.data.formats.base import ImportPlan, SourceItem
from labeling.data.importer import import_plan
from labeling.data.projects import create_project
from labeling.data.regions import (
    clean_region_rows,
    propose_regions,
    recording,
    regions_project,
    replace_region_set,
)
from labeling.platform.auth import create_demo_users, get_user

if TYPE_CHECKING:
    from labeling.demo.context import DemoContext
    from labeling.platform.workspace import Workspace

DEMO_REGIONS_PROJECT = "Long recordings (demo)"
REGION_CLASSES = ("speech", "music")
REGION_TAG_GROUPS = {"speaker": ["a", "b"], "noise": ["car", "none"]}
SAMPLE_RATE = 16_000
ANNOTATORS = ("ana", "ben")
CONVENTIONS = """\
# Labeling conventions — long recordings

Mark every stretch of **speech** from its first to its last audible sound, one region per sentence,
and type what was said (lower case, no punctuation). Mark **music** as one region from where it
starts to where it stops. Pauses longer than a quarter of a second are not part of a region. Tick
who speaks (speaker a or b) and whether the car engine runs underneath.
"""

SENTENCES = (
    "shall we start with the budget for next quarter",
    "yes the numbers came in this morning",
    "travel costs went up again",
    "can we move the review to thursday",
    "thursday works for me",
    "please send the report to the whole team",
    "i will share the slides after the call",
    "the new office opens in march",
    "who is taking notes today",
    "let us keep the next meeting short",
    "the supplier wants an answer by friday",
    "i think we should say yes",
    "can you hear me now",
    "the signal drops in the tunnel",
    "we will call you back in ten minutes",
    "thanks everyone that is all for today",
)


@dataclass(frozen=True)
class _Layout:
    name: str
    turns: int
    music_after: int | None  # the turn after which music plays
    car_from: float | None  # share of the recording after which the engine runs
    setting: str


_LAYOUTS = (
    _Layout("team_meeting.wav", 40, 19, None, "office"),
    _Layout("call_from_car.wav", 40, None, 0.45, "car"),
)
_TINY_TURNS = 5


def _voiced_span(y: np.ndarray) -> tuple[int, int]:
    """First and last sample above -40 dB of the peak: espeak-ng pads its speech with silence."""
    loud = np.flatnonzero(np.abs(y) > np.abs(y).max() * 0.01)
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(y))


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """A few bars of a plucked chord progression: harmonic tones under decaying envelopes."""
    t = np.arange(n) / SAMPLE_RATE
    y = np.zeros(n)
    beat = int(0.5 * SAMPLE_RATE)
    roots = (220.0, 174.6, 261.6, 196.0)
    for k, start in enumerate(range(0, n, beat)):
        root = roots[(k // 4) % len(roots)]
        span = slice(start, min(n, start + 2 * beat))
        tt = t[span] - t[start]
        for ratio in (1.0, 1.25, 1.5):
            f = root * ratio * (2 if rng.random() < 0.3 else 1)
            y[span] += np.exp(-3.0 * tt) * sum(np.sin(2 * np.pi * f * h * tt) / h for h in (1, 2, 3))
    return y / np.abs(y).max()


def synthesize_recordings(
    out_dir: Path, *, tiny: bool = False, random_state: int = 0
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Write the demo recordings; return their metadata and their true regions (long).

    Returns
    -------
    (list of dict, DataFrame)
        Per recording ``file_name``, ``duration``, ``setting``, ``speakers``; the regions with
        ``file_name``, ``start``, ``end``, ``label``, ``text``, ``tags``, ``quiet`` (a sentence said
        under the engine).
    """
    from labeling.demo.synth import EspeakSynthesizer, demo_speakers, speak_as

    rng = np.random.default_rng([7, random_state])
    voices = demo_speakers("initial")
    people = {"a": voices[0], "b": voices[6]}  # a US man, a British woman
    said: dict[tuple[str, int], np.ndarray] = {}
    plan = []
    for layout in _LAYOUTS:
        turns = _TINY_TURNS if tiny else layout.turns
        order = np.concatenate([rng.permutation(len(SENTENCES)) for _ in range(turns // len(SENTENCES) + 1)])
        lines = [(("a", "b")[i % 2], int(order[i])) for i in range(turns)]
        plan.append((layout, lines))
    with EspeakSynthesizer() as tts:
        for _, lines in plan:
            for who, k in lines:
                if (who, k) not in said:
                    y = speak_as(tts, people[who], SENTENCES[k])
                    lo, hi = _voiced_span(y)
                    said[who, k] = y[lo:hi] / np.abs(y[lo:hi]).max()
    recordings, truth = [], []
    for layout, lines in plan:
        pieces: list[np.ndarray] = [np.zeros(int(rng.uniform(0.8, 1.5) * SAMPLE_RATE))]
        at = len(pieces[0])
        events: list[tuple[int, int, str, str | None, str | None]] = []
        music_at = None if layout.music_after is None else min(layout.music_after, len(lines) - 2)
        for i, (who, k) in enumerate(lines):
            y = said[who, k] * (0.5 if who == "b" else 0.7)
            events.append((at, at + len(y), "speech", SENTENCES[k], who))
            pieces.append(y)
            at += len(y)
            pause = np.zeros(int(rng.uniform(0.6, 2.2) * SAMPLE_RATE))
            pieces.append(pause)
            at += len(pause)
            if i == music_at:
                music = 0.3 * _music(int((4.0 if tiny else 12.0) * SAMPLE_RATE), rng)
                events.append((at, at + len(music), "music", None, None))
                pieces += [music, np.zeros(SAMPLE_RATE)]
                at += len(music) + SAMPLE_RATE
        y = np.concatenate(pieces)
        y += 10 ** (-60 / 20) * rng.standard_normal(len(y))  # the room is never digitally silent
        car_start = len(y)
        if layout.car_from is not None:
            car_start = int(layout.car_from * len(y))
            # A few seconds of engine, looped: synthesising minutes of it would cost seconds of the build.
            loop = car_noise(min(8 * SAMPLE_RATE, len(y) - car_start), sr=SAMPLE_RATE, random_state=rng)
            engine = np.resize(loop, len(y) - car_start)
            engine *= 0.12 / np.sqrt(np.mean(engine**2))
            y[car_start:] += engine
        y *= 0.9 / np.abs(y).max()
        buffer = io.BytesIO()
        sf.write(buffer, np.round(y * 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        (out_dir / layout.name).write_bytes(buffer.getvalue())
        recordings.append(
            {
                "file_name": layout.name,
                "duration": len(y) / SAMPLE_RATE,
                "setting": layout.setting,
                "speakers": "2",
            }
        )
        for start, end, label, text, speaker in events:
            noise = "noise:car" if end > car_start else "noise:none"
            tags = [] if speaker is None else [f"speaker:{speaker}", noise]
            truth.append(
                {
                    "file_name": layout.name,
                    "start": round(start / SAMPLE_RATE, 3),
                    "end": round(end / SAMPLE_RATE, 3),
                    "label": label,
                    "text": text,
                    "tags": tags,
                    "quiet": speaker == "b" and start > car_start,
                }
            )
    return recordings, pd.DataFrame(truth)


def annotator_regions(truth: pd.DataFrame, who: str, *, random_state: int = 0) -> pd.DataFrame:
    """What ``who`` (ana or ben) draws over one recording's true regions."""
    rng = np.random.default_rng([11, ANNOTATORS.index(who), random_state])
    out = truth.copy()
    jitter = 0.03 if who == "ana" else 0.12
    out["start"] = (out["start"] + rng.normal(0.0, jitter, len(out))).clip(lower=0.0)
    out["end"] = out["end"] + rng.normal(0.0, jitter, len(out))
    if who == "ana" and out["quiet"].any():  # she misses one quiet sentence under the engine
        out = out.drop(index=out.index[out["quiet"].to_numpy()][0])
    if who == "ben":
        out.loc[out["label"] == "music", "label"] = "speech"  # he hears the music as talk
        drop = rng.random(len(out)) < 0.3

        def slip(text: Any, dropped: bool) -> Any:
            if not isinstance(text, str) or not dropped:
                return text
            words = text.split()
            del words[int(rng.integers(len(words)))]
            return " ".join(words)

        out["text"] = [slip(t, d) for t, d in zip(out["text"], drop, strict=True)]
    return out[out["end"] > out["start"]]


def step_regions_project(ws: Workspace, ctx: DemoContext) -> str:
    """Demo step: long recordings with two annotators' regions, the final regions and the VAD's."""
    name = ctx.facts.get("regions_project", DEMO_REGIONS_PROJECT)
    tiny = ctx.size == "tiny"
    with tempfile.TemporaryDirectory(prefix="earmark-demo-regions-") as tmp:
        report = ctx.report("Synthesising the long recordings")
        if report:
            report(0, 3)
        recordings, truth = synthesize_recordings(Path(tmp), tiny=tiny, random_state=ctx.random_state)
        with ws.db.write() as s:
            create_demo_users(s)
            info = create_project(
                s,
                name=name,
                task_kind="regions",
                classes=list(REGION_CLASSES),
                tag_groups=REGION_TAG_GROUPS,
                annotations_per_clip=len(ANNOTATORS),
                normalization={"lowercase": True, "strip_punctuation": True},
                settings={"demo": True},
            )
            cv.save_convention(s, info.id, text=CONVENTIONS, author_id=get_user(s, "rosa").id)
        plan = ImportPlan(
            items=[
                SourceItem(
                    path=Path(tmp) / r["file_name"],
                    name=r["file_name"],
                    metadata={"setting": r["setting"], "speakers": r["speakers"]},
                )
                for r in recordings
            ],
            source_format="demo",
        )
        imported = import_plan(
            ws, info.name, plan, source="demo:recordings", create=False, batch_name="demo recordings"
        )
    if report:
        report(1, 3)
    with ws.db.write() as s:
        info = regions_project(s, info.id)
        ids = _recording_ids(s, info.id)
        users = {who: get_user(s, who).id for who in ANNOTATORS}
        for file_name, regions in truth.groupby("file_name", sort=False):
            clip_id = ids[str(file_name)]
            rec = recording(s, info, clip_id)
            final = regions[["start", "end", "label", "text", "tags"]].assign(
                end=regions["end"].clip(upper=rec.duration)
            )
            rows = clean_region_rows(final, info, rec, vocabulary=True)
            for who in ANNOTATORS:
                drawn = annotator_regions(regions, who, random_state=ctx.random_state)
                drawn = drawn.assign(end=drawn["end"].clip(upper=rec.duration))
                submit_regions(
                    s,
                    info.id,
                    users[who],
                    clip_id,
                    drawn[["start", "end", "label", "text"]].to_dict("records"),
                )
            # After the annotators' sets, as a reviewer's would be: a final set that predates them
            # reads as changed after adjudication.
            replace_region_set(s, info, rec, rows, annotator_id=None, source="final", actor_id=users["ana"])
    if report:
        report(2, 3)
    proposed = 0
    for clip_id in ids.values():
        with ws.db.write() as s:
            proposed += propose_regions(s, ws.store, info.id, clip_id).after
    if report:
        report(3, 3)
    minutes = sum(r["duration"] for r in recordings) / 60
    return (
        f"long recordings: {imported.summary()}; {minutes:.1f} min in project {name!r}, "
        f"{len(truth)} final regions, {len(ANNOTATORS)} annotators' sets, {proposed} VAD regions"
    )


def _recording_ids(s: Session, project_id: int) -> dict[str, int]:
    clips = clip_frame(s, project_id)
    return {str(n): int(i) for n, i in zip(clips["original_name"], clips["clip_id"], strict=True)}
