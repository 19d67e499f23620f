"""The demo's annotators: :func:`step_annotators` labels part of the demo corpus the way three people would.

They disagree for reasons a reviewer can find and the conventions can fix:

- **ana** is careful: a few slips between words that sound alike.
- **ben** ignores the rule about noise: in car or babble noise he mixes up "off" and "on", and "go"
  and "no", more often than not, until version 2 of the conventions spells the rule out.
- **cho** is careless on teenagers' voices (a quarter wrong, often unsure) and quick everywhere.

Their annotations go through :func:`labeling.annotate.annotations.submit_annotation`, one write transaction
per annotator, spread over three simulated weeks (version 1 of the conventions in the first two);
then clips all three agree on are resolved by the project's unanimous rule, so the Review page shows
the rest. Everything is drawn from a fixed seed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select, update

from db.models import Annotation, Clip, ClipTag, ConventionVersion, Resolution, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.review import auto_resolve
from labeling.data import conventions as cv
from labeling.data.projects import get_project, update_project
from labeling.platform.auth import create_demo_users, get_user

if TYPE_CHECKING:
    from labeling.demo.context import DemoContext
    from labeling.platform.workspace import Workspace

#: Clips the simulated annotators label at most (the rest stay open for the Label page).
MAX_CLIPS = 300
SHARE = 0.75
V1_SHARE = 0.6  # of the labelled clips, annotated under version 1 (the first two weeks)

# Words a listener mistakes for one another.
SOUNDS_LIKE = {
    "yes": ("left",),
    "no": ("go", "down"),
    "up": ("off", "stop"),
    "down": ("no",),
    "left": ("yes", "right"),
    "right": ("left",),
    "on": ("off",),
    "off": ("on", "up"),
    "stop": ("up",),
    "go": ("no",),
}
NOISE_RULE = """
6. **Noise.** In car or babble noise the end of a word is the first thing to go. Listen for it before
   you choose: "off" ends in a hiss that "on" does not have, and "go" starts with a hard *g* where
   "no" starts with a hum. If you still cannot tell, choose the closer one and mark **unsure**.
"""
NOISE_NOTE = "Say how to tell off from on and go from no in noise (reviewers kept resolving these)."
# Systematic confusions of the annotator who ignores the noise rule.
MISHEARD_IN_NOISE = {"off": "on", "on": "off", "go": "no", "no": "go"}


def _slip(rng: np.random.Generator, word: str) -> str:
    options = SOUNDS_LIKE.get(word, ())
    return str(rng.choice(options)) if options else word


def _answer(who: str, rng: np.random.Generator, truth: str, tags: set[str], version: int) -> tuple[str, bool]:
    """The label and unsure flag one simulated annotator gives a clip."""
    noisy = bool(tags & {"noise:car", "noise:babble"})
    teen = "age:teen" in tags
    if (
        who == "ben"
        and noisy
        and truth in MISHEARD_IN_NOISE
        and rng.random() < (0.6 if version == 1 else 0.12)
    ):
        return MISHEARD_IN_NOISE[truth], version > 1 and rng.random() < 0.5
    if who == "cho" and teen:
        if rng.random() < 0.25:
            return _slip(rng, truth), rng.random() < 0.3
        return truth, rng.random() < 0.08
    slip = {"ana": 0.03, "ben": 0.05, "cho": 0.04}[who]
    if rng.random() < slip:
        return _slip(rng, truth), rng.random() < 0.4
    return truth, rng.random() < 0.02


def _conventions(s, project_id: int, text: str, author_id: int) -> tuple[int, int]:
    """Version numbers to annotate under: the current one, and a newer one with the noise rule."""
    current = cv.current_convention(s, project_id)
    if current is None:
        current = cv.save_convention(s, project_id, text=text, author_id=author_id)
    later = cv.save_convention(
        s,
        project_id,
        text=current.text.rstrip() + "\n" + NOISE_RULE,
        note=NOISE_NOTE,
        author_id=author_id,
        based_on=current.version,
    )
    return current.version, later.version


#: The demo's labelling history: 20 days, each label up to four hours into its day, ending before now.
HISTORY_DAYS, V1_DAYS, DAY_MINUTES = 20, 14, 240


def labelling_start(now: datetime) -> datetime:
    return now - timedelta(days=HISTORY_DAYS, minutes=DAY_MINUTES)


def labelled_at(start: datetime, i: int, n: int, cut: int, minutes: float) -> datetime:
    """When the demo's ``i``-th of ``n`` clips was labelled: the first ``cut`` under conventions v1
    over two weeks, the rest under v2 over the remaining days; ``minutes`` into that day."""
    if i < cut:
        days = V1_DAYS * i / max(cut, 1)
    else:
        days = V1_DAYS + (HISTORY_DAYS - V1_DAYS) * (i - cut) / max(n - cut, 1)
    return start + timedelta(days=days, minutes=minutes)


def published_at(start: datetime) -> tuple[datetime, datetime]:
    """When conventions v1 and v2 were published: a day before the first label, and an hour before
    the first label made under v2."""
    return start - timedelta(days=1), start + timedelta(days=V1_DAYS, hours=-1)


def step_annotators(ws: Workspace, ctx: DemoContext) -> str:
    """Demo step: three annotators label part of the corpus under two versions of the conventions."""
    rng = np.random.default_rng([7, ctx.random_state])
    project_id = ctx.facts["project_id"]
    accounts = ctx.report("Creating the demo accounts")
    if accounts is not None:
        accounts(0, 1)
    with ws.db.write() as s:
        create_demo_users(s)
        ids = {name: get_user(s, name).id for name in ("ana", "ben", "cho", "rosa")}
        truth: dict[int, str] = dict(
            s.execute(  # type: ignore[arg-type]  # the label is never NULL here
                select(Resolution.clip_id, Resolution.label)
                .join(Clip, Clip.id == Resolution.clip_id)
                .where(Clip.project_id == project_id, Resolution.label.is_not(None))
                .order_by(Resolution.clip_id)
            ).all()
        )
        tags: dict[int, set[str]] = {}
        for clip_id, tag in s.execute(select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(truth))):
            tags.setdefault(clip_id, set()).add(tag)
        n = min(MAX_CLIPS, int(len(truth) * SHARE))
        chosen = sorted(rng.choice(sorted(truth), size=n, replace=False).tolist()) if n else []
        v1, v2 = _conventions(s, project_id, ctx.facts.get("conventions", "# Conventions"), ids["rosa"])
        cut = int(len(chosen) * V1_SHARE)
        # A gold example of the new rule: "off" in noise, the case that needed it.
        noisy_off = [c for c in chosen[cut:] if truth[c] == "off" and tags[c] & {"noise:car", "noise:babble"}]
        example = noisy_off[0] if noisy_off else None
        if example is not None:
            cv.add_gold_example(
                s,
                project_id,
                clip_id=example,
                label="off",
                explanation="The hiss at the end is faint under the noise, but it is there: off, not on.",
                actor_id=ids["rosa"],
            )
    start = labelling_start(utcnow())
    published = dict(zip((v1, v2), published_at(start), strict=True))
    times: list[dict[str, object]] = []
    labelling = ctx.report("Labelling as ana, ben and cho, annotation")
    for n_done, who in enumerate(("ana", "ben", "cho")):
        speed = {"ana": 2600, "ben": 2200, "cho": 1100}[who]
        with ws.db.write() as s:
            for i, clip_id in enumerate(chosen):
                version = v1 if i < cut else v2
                label, unsure = _answer(who, rng, truth[clip_id], tags.get(clip_id, set()), version)
                result = submit_annotation(
                    s,
                    project_id,
                    ids[who],
                    clip_id,
                    label=label,
                    unsure=unsure,
                    time_spent_ms=int(rng.lognormal(np.log(speed), 0.4)),
                    convention_version=version,
                    source="demo",
                )
                at = labelled_at(start, i, len(chosen), cut, float(rng.uniform(0, DAY_MINUTES)))
                times.append({"id": result.annotation_id, "created_at": at, "updated_at": at})
                if labelling is not None:
                    labelling(n_done * len(chosen) + i + 1, 3 * len(chosen))
    with ws.db.write() as s:
        s.execute(update(Annotation), times)
        for version, at in published.items():
            s.execute(
                update(ConventionVersion)
                .where(ConventionVersion.project_id == project_id, ConventionVersion.version == version)
                .values(created_at=at)
            )
        info = get_project(s, project_id)
        update_project(s, project_id, settings={**info.settings, "auto_resolve": "unanimous"})
        resolved = auto_resolve(s, project_id, rule="unanimous", actor_id=ids["rosa"])
    return (
        f"annotators ana, ben and cho labelled {len(chosen)} clips under conventions v{v1}-v{v2}; "
        f"{resolved} unanimous clips resolved, {len(chosen) - resolved} left for review"
    )
